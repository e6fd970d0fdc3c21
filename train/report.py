"""What `pipeline train` prints: a readable table of the summary (mean ± sd over folds per variant)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

METRIC_NAMES = {"accuracy": "WA (accuracy)", "unweighted_accuracy": "UA (balanced accuracy)",
                "macro_f1": "macro F1", "mean_ccc": "mean CCC"}


def public(obj: Any) -> Any:
    """A result without the entries kept for plotting (keys starting with ``_``: arrays), as saved in JSON."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not str(k).startswith("_")}
    return obj


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def variant_name(key: str) -> str:
    """``pretrained_10pct`` -> ``pretrained, 10 % labels``; ``..._seed1`` -> ``..., repeat 2``."""
    key, _, seed = key.partition("_seed")
    name, _, pct = key.rpartition("_")
    out = f"{name}, {pct[:-3]} % labels" if pct.endswith("pct") and name else key
    return out + (f", repeat {int(seed) + 1}" if seed.isdigit() else "")


def summary_table(summary: dict, title: str) -> Table:
    """One row per variant, one column per metric: mean ± sd (n folds)."""
    metrics = [k for k in METRIC_NAMES if any(k in v for v in summary.values())]
    t = Table(title=title)
    t.add_column("variant")
    for k in metrics:
        t.add_column(metric_name(k), justify="right")
    for variant, vals in summary.items():
        cells = []
        for k in metrics:
            m = vals.get(k)
            cells.append("-" if m is None else f"{m['mean']:.3f} ± {m['std']:.3f} (n={m['n']})")
        t.add_row(variant_name(variant), *cells)
    return t
