"""Run plots (PNG): confusion matrix, learning curves, 2-D PCA of fused representations, and the
low-resource curve (metric vs % of labels, pretrained vs scratch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def run_plots(res: dict, run_dir: Path, data) -> None:  # noqa: ANN001 - StoreData
    run_dir.mkdir(parents=True, exist_ok=True)
    if "confusion" in res:
        cm = np.array(res["confusion"])
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(res["classes"])), res["classes"], rotation=45)
        ax.set_yticks(range(len(res["classes"])), res["classes"])
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.tight_layout()
        fig.savefig(run_dir / "confusion.png", dpi=100)
        plt.close(fig)
    if res.get("history"):
        h = res["history"]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([e["epoch"] for e in h], [e["train_loss"] for e in h], label="train loss")
        ax2 = ax.twinx()
        ax2.plot([e["epoch"] for e in h], [e["val_score"] for e in h], color="C1", label="validation score")
        ax.set_xlabel("epoch")
        fig.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(run_dir / "learning_curves.png", dpi=100)
        plt.close(fig)
    fused, labels = res.get("_fused"), res.get("_labels")
    if fused is not None and labels is not None and len(fused) > 2 and fused.shape[1] > 1:
        from sklearn.decomposition import PCA

        z = PCA(2).fit_transform(fused.reshape(len(fused), -1))
        fig, ax = plt.subplots(figsize=(4, 4))
        for k, name in enumerate(data.classes):
            sel = labels == k
            ax.scatter(z[sel, 0], z[sel, 1], s=12, label=name)
        ax.legend(fontsize=7)
        ax.set_title("PCA of fused representations")
        fig.tight_layout()
        fig.savefig(run_dir / "pca.png", dpi=100)
        plt.close(fig)


def low_resource_curve(summary: dict, path: Path, metric: str = "unweighted_accuracy") -> None:
    curves: dict[str, list[tuple[int, float]]] = {}
    for variant, vals in summary.items():
        name, _, pct = variant.rpartition("_")
        if metric in vals and pct.endswith("pct"):
            curves.setdefault(name, []).append((int(pct[:-3]), vals[metric]["mean"]))
    if not any(len(c) > 1 for c in curves.values()):
        return
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, pts in sorted(curves.items()):
        pts.sort()
        ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=name)
    ax.set_xlabel("% of training labels")
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
