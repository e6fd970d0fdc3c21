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


def describe(name: str) -> str:
    """The classifier in words, as built below (a preset's paper spec compares it)."""
    return {"svm": "SVC, RBF kernel, C 1 (late fusion: probabilities calibrated by 3-fold CV)",
            "xgboost": "XGBoost, 200 trees of depth 4, learning rate 0.1",
            "mlp": "MLP, one hidden layer of 256 ReLU units (Adam, up to 500 iterations)"}[name]


def classifier(name: str, seed: int, calibrate: int = 0) -> BaseEstimator:
    """``calibrate``: k of the SVM's k-fold probability calibration, which late fusion needs (0: a plain SVC,
    whose decision is the SVM's own; early fusion needs no posteriors)."""
    if name == "svm":
        svc = SVC(kernel="rbf", C=1.0, random_state=seed)
        return CalibratedClassifierCV(svc, ensemble=False, cv=calibrate) if calibrate else svc
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
    width = max(v.shape[1] for v in vectors)  # the paper's vectors are all 768-d; substitutes may not be:
    fill = 0.0 if how == "sum" else 1.0  # the shorter are padded with the operation's identity (declared)
    padded = [np.pad(v, ((0, 0), (0, width - v.shape[1])), constant_values=fill) for v in vectors]
    return np.sum(padded, axis=0) if how == "sum" else np.prod(padded, axis=0)


def run(cfg: TrainConfig, data: StoreData, train: np.ndarray, test: np.ndarray) -> dict:
    if cfg.task != "classification":
        raise ValueError("the classical models are classifiers: use task classification")
    vecs = [data.pooled(m) for m in data.modalities]
    y = data.targets
    present, y_fit = np.unique(y[train], return_inverse=True)  # classes 0..k-1 as the training set has them
    counts = np.bincount(y_fit)
    _check_counts(cfg.model if cfg.fusion == "late" else "", data.classes, present, counts)
    if cfg.fusion == "late":
        probs, k = [], int(min(3, counts.min()))  # 3-fold calibration; 2-fold where a small fold has 2 clips
        for v in vecs:
            model = make_pipeline(StandardScaler(), classifier(cfg.model, cfg.seed, k)).fit(v[train], y_fit)
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
    """Late fusion's SVM posteriors come from a k-fold calibration: each training class needs 2 clips; said in
    one line naming the class (scikit-learn's own message names none). ``model`` is "" for early fusion."""
    if len(present) < 2:
        raise ValueError(f"the training clips hold one class ({classes[present[0]]!r}): nothing to tell "
                         "apart; add clips of other classes")
    if model != "svm":
        return
    few = [(classes[c], int(n)) for c, n in zip(present, counts) if n < 2]
    if few:
        listed = ", ".join(f"{name!r}: {n} clip(s)" for name, n in few)
        raise ValueError(f"svm, late fusion: each class needs at least 2 training clips (its probabilities are "
                         f"calibrated by cross-validation); {listed}. Add clips of those classes, or use early "
                         "fusion, --model mlp or xgboost")


def _full_proba(model: BaseEstimator, x: np.ndarray, present: np.ndarray, n: int) -> np.ndarray:
    """predict_proba over all classes, even ones absent from a (small) training fold (``present``: the
    training set's classes, which the model knows as 0..k-1)."""
    p = model.predict_proba(x)
    out = np.zeros((len(x), n))
    out[:, present[model.classes_.astype(int)]] = p
    return out
