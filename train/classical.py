"""Feature fusion with classical classifiers (Babaali & Shayaninasab): pooled per-modality vectors,
early fusion by concatenation, sum or element-wise product, or late fusion of per-modality class
posteriors; SVM, XGBoost (scikit-learn API) or a 2-layer MLP; standardisation fitted on the training
fold only (inside the scikit-learn pipeline)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from train import metrics
from train.config import TrainConfig
from train.data import StoreData


def classifier(name: str, seed: int) -> BaseEstimator:
    if name == "svm":  # calibrated, so late fusion has class posteriors
        return CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, random_state=seed), ensemble=False, cv=3)
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1,
                             tree_method="hist")
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(256,), max_iter=500, random_state=seed)
    raise ValueError(f"unknown classical model {name!r}")


def fuse(vectors: list[np.ndarray], how: str) -> np.ndarray:
    if how == "concat":
        return np.concatenate(vectors, axis=1)
    dims = {v.shape[1] for v in vectors}
    if len(dims) != 1:
        raise ValueError(f"fusion {how!r} needs equal per-modality dimensions, got {sorted(dims)}; use concat")
    return np.sum(vectors, axis=0) if how == "sum" else np.prod(vectors, axis=0)


def run(cfg: TrainConfig, data: StoreData, train: np.ndarray, test: np.ndarray) -> dict:
    if cfg.task != "classification":
        raise ValueError("the classical models are classifiers: use task classification")
    vecs = [data.pooled(m) for m in data.modalities]
    y = data.targets
    present, y_fit = np.unique(y[train], return_inverse=True)  # classes 0..k-1 as the training set has them
    _check_counts(cfg.model, data.classes, present, np.bincount(y_fit))
    if cfg.fusion == "late":
        probs = []
        for v in vecs:
            model = make_pipeline(StandardScaler(), classifier(cfg.model, cfg.seed)).fit(v[train], y_fit)
            probs.append(_full_proba(model, v[test], present, len(data.classes)))
        pred = np.mean(probs, axis=0).argmax(1)
        fused = np.concatenate(probs, axis=1)
    else:
        x = fuse(vecs, cfg.fusion)
        model = make_pipeline(StandardScaler(), classifier(cfg.model, cfg.seed)).fit(x[train], y_fit)
        pred = present[model.predict(x[test]).astype(int)]
        fused = x[test]
    out = metrics.classification(y[test], pred, data.classes)
    out["_fused"], out["_labels"] = fused, y[test]
    return out


def _check_counts(model: str, classes: list, present: np.ndarray, counts: np.ndarray) -> None:
    """The SVM's posteriors come from a 3-fold calibration: each training class needs 3 clips; said in one
    line naming the class (scikit-learn's own message names none)."""
    if len(present) < 2:
        raise ValueError(f"{model}: the training clips hold one class ({classes[present[0]]!r}): nothing to tell "
                         "apart; add clips of other classes")
    if model != "svm":
        return
    few = [(classes[c], int(n)) for c, n in zip(present, counts) if n < 3]
    if few:
        listed = ", ".join(f"{name!r}: {n} clip(s)" for name, n in few)
        raise ValueError(f"svm: each class needs at least 3 training clips (its probabilities are calibrated by "
                         f"3-fold cross-validation); {listed}. Add clips of those classes, or use --model mlp "
                         "or xgboost")


def _full_proba(model: BaseEstimator, x: np.ndarray, present: np.ndarray, n: int) -> np.ndarray:
    """predict_proba over all classes, even ones absent from a (small) training fold (``present``: the
    training set's classes, which the model knows as 0..k-1)."""
    p = model.predict_proba(x)
    out = np.zeros((len(x), n))
    out[:, present[model.classes_.astype(int)]] = p
    return out
