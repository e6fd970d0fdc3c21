"""Every plot of a run (PNG), in one place so they share their conventions: a title naming the run
(model, fold, variant), labelled axes with units, and mean ± sd error bars wherever folds or seeds give
more than one value. Confusion matrix, learning curves, 2-D PCA of the fused representations, and the
low-resource curve (metric vs % of labels, pretrained vs scratch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from train.report import metric_name, variant_name  # noqa: E402

if TYPE_CHECKING:
    from train.data import StoreData


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(res: dict, path: Path, title: str) -> None:
    """Counts with a colour bar; numbers white on dark cells, black on light ones; rows = true class."""
    cm = np.array(res["confusion"])
    classes = res["classes"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(classes), 0.8 + 0.8 * len(classes)))
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="clips")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    dark = cm.max() / 2 if cm.max() else 1
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > dark else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ua = res.get("unweighted_accuracy")
    ax.set_title(title + (f"\nUA {ua:.3f}" if ua is not None else ""), fontsize=9)
    _save(fig, path)


def learning_curves(history: list[dict], path: Path, title: str, loss: str, score: str) -> None:
    """Training loss (left axis) and the validation score (right axis) per epoch."""
    epochs = [e["epoch"] for e in history]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(epochs, [e["train_loss"] for e in history], marker=".", label=f"train loss ({loss})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"train loss ({loss})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(epochs, [e["val_score"] for e in history], marker=".", color="C1", label=f"validation {score}")
    ax2.set_ylabel(f"validation {score}")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2,
              fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def pca(fused: np.ndarray, labels: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """The test clips' fused representations projected on their first two principal components."""
    from sklearn.decomposition import PCA

    p = PCA(2).fit(fused.reshape(len(fused), -1))
    z = p.transform(fused.reshape(len(fused), -1))
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for k, name in enumerate(classes):
        sel = labels == k
        ax.scatter(z[sel, 0], z[sel, 1], s=14, label=name)
    ev = p.explained_variance_ratio_
    ax.set_xlabel(f"PC 1 ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({ev[1]:.0%} of variance)")
    ax.legend(fontsize=7, title="true class", title_fontsize=7)
    ax.set_title(f"{title}\nPCA of the fused representations (test clips)", fontsize=9)
    _save(fig, path)


def run_plots(res: dict, run_dir: Path, data: StoreData, title: str = "", loss: str = "loss",
              score: str = "score") -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if "confusion" in res:
        confusion(res, run_dir / "confusion.png", title)
    if res.get("history"):
        learning_curves(res["history"], run_dir / "learning_curves.png", title, loss, score)
    fused, labels = res.get("_fused"), res.get("_labels")
    if fused is not None and labels is not None and len(fused) > 2 and fused.reshape(len(fused), -1).shape[1] > 1:
        pca(fused, labels, data.classes, run_dir / "pca.png", title)


def low_resource_curve(summary: dict, path: Path, title: str = "", metric: str = "unweighted_accuracy") -> None:
    """Metric vs % of training labels, one line per variant, mean ± sd over folds as error bars."""
    curves: dict[str, list[tuple[int, float, float]]] = {}
    for variant, vals in summary.items():
        name, _, pct = variant.rpartition("_")
        if metric in vals and pct.endswith("pct"):
            curves.setdefault(name, []).append((int(pct[:-3]), vals[metric]["mean"], vals[metric]["std"]))
    if not any(len(c) > 1 for c in curves.values()):
        return
    runs = sorted({v[metric]["n"] for v in summary.values() if metric in v})
    n = "/".join(map(str, runs))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, pts in sorted(curves.items()):
        pts.sort()
        ax.errorbar([p for p, _, _ in pts], [m for _, m, _ in pts], yerr=[s for _, _, s in pts], marker="o",
                    capsize=3, label=name)
    ax.set_xlabel("training labels used (%)")
    ax.set_ylabel(metric_name(metric))
    ax.legend(fontsize=8)
    note = f"mean ± sd over {n} runs (folds × seeded subsets)"
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    _save(fig, path)


__all__ = ["confusion", "learning_curves", "low_resource_curve", "pca", "run_plots", "variant_name"]
