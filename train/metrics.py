"""Metrics of the four papers. scikit-learn where it has the metric; CCC by Lin's formula with
population moments (identical to audmetric's ``concordance_cc``)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def ccc(pred: np.ndarray, truth: np.ndarray) -> float:
    """Lin's concordance correlation coefficient, 1/N moments; NaN when undefined (N < 2 or 0/0)."""
    x, y = np.asarray(pred, np.float64).ravel(), np.asarray(truth, np.float64).ravel()
    if len(x) < 2:
        return float("nan")
    a, b = x - x.mean(), y - y.mean()
    den = a @ a + b @ b + len(x) * (x.mean() - y.mean()) ** 2
    return float(2 * (a @ b) / den) if den > 0 else float("nan")


def classification(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    labels = list(range(len(classes)))
    p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),  # = weighted accuracy (WA)
        "weighted_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        # balanced accuracy = mean recall over the classes present in y_true (no warning when a prediction
        # falls in a class absent from this partition)
        "unweighted_accuracy": float(r[support > 0].mean()) if (support > 0).any() else 0.0,
        # macro-F1 over the classes present in y_true, as UA: a class the test set lacks (a small fold) would
        # otherwise count as F1 = 0 and pull the mean down for a reason that is not the model's
        "macro_f1": float(f[support > 0].mean()) if (support > 0).any() else 0.0,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": classes,
    }


def regression(pred: np.ndarray, truth: np.ndarray, names: list[str] | None = None) -> dict:
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.ndim == 1:
        pred, truth = pred[:, None], truth[:, None]
    names = names or [f"target_{i}" for i in range(pred.shape[1])]
    out = {}
    for i, n in enumerate(names):
        p, t = pred[:, i], truth[:, i]
        out[n] = {"ccc": ccc(p, t), "mae": float(skm.mean_absolute_error(t, p)),
                  "pearson": float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else float("nan")}
    out["mean_ccc"] = float(np.nanmean([out[n]["ccc"] for n in names]))
    return out
