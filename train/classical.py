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
    if cfg.fusion == "late":
        probs = []
        for v in vecs:
            model = make_pipeline(StandardScaler(), classifier(cfg.model, cfg.seed)).fit(v[train], y[train])
            probs.append(_full_proba(model, v[test], len(data.classes)))
        pred = np.mean(probs, axis=0).argmax(1)
        fused = np.concatenate(probs, axis=1)
    else:
        x = fuse(vecs, cfg.fusion)
        model = make_pipeline(StandardScaler(), classifier(cfg.model, cfg.seed)).fit(x[train], y[train])
        pred = model.predict(x[test])
        fused = x[test]
    out = metrics.classification(y[test], pred, data.classes)
    out["_fused"], out["_labels"] = fused, y[test]
    return out


def _full_proba(model: BaseEstimator, x: np.ndarray, n: int) -> np.ndarray:
    """predict_proba over all classes, even ones absent from a (small) training fold."""
    p = model.predict_proba(x)
    out = np.zeros((len(x), n))
    out[:, model.classes_.astype(int)] = p
    return out
