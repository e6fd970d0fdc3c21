"""The demo's training half: the papers' two claims measured on the demo store, with their spread.

1. Pretraining helps when labels are scarce (Tran & Soleymani): MulT (small) pretrained by masked-frame
   reconstruction on the unlabelled pool (8 speakers, none of them a test speaker), then fine-tuned with
   10 % of the labels, against the same model from scratch. The pretraining must first beat the
   nearest-frame baseline, or there is nothing to transfer.
2. Fusion beats the best single modality: the demo's voice carries arousal and its face valence, so each
   alone tells two pairs of classes apart and only both tell all four. An SVM on each modality and the
   late fusion of the two (Babaali & Shayaninasab's classifiers).

Leave-one-speaker-out over the 6 labelled speakers. MulT at 10 %: 3 seeds (a new stratified subset and
initialisation each); a seed's score is its mean over the 6 folds, and the table gives mean ± sd over the
seeds, with the sd over all 18 (fold, seed) runs beside it (that one also holds the folds' differences in
difficulty: 12 test clips each). The SVMs are deterministic: their spread is over the folds. A claim holds
when the difference is larger than the sd of both sides (over seeds, or over folds for the SVMs); the paired
count (same fold and seed) is printed beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from train.config import TrainConfig
from train.pretrain import pretrain
from train.trainer import run

if TYPE_CHECKING:
    from collections.abc import Callable

COMMON = dict(audio="egemaps", visual="face_hog", label="label", protocol="fold_lo_speaker", window=15, seed=0)
SEEDS = 3
METRICS = ("unweighted_accuracy", "macro_f1")


def _spread(res: dict, variant: str, metric: str) -> dict:
    """Mean, sd over seeds (of the per-seed means over folds) and sd over all (fold, seed) runs."""
    folds = res["folds"].values()
    runs = [k for k in next(iter(folds)) if k == variant or k.startswith(variant + "_seed")]
    per_seed = [np.mean([f[r][metric] for f in folds]) for r in runs]
    every = [f[r][metric] for f in folds for r in runs]
    return {"mean": float(np.mean(every)), "sd_seeds": float(np.std(per_seed, ddof=1)) if len(runs) > 1 else None,
            "sd_runs": float(np.std(every, ddof=1)), "n_seeds": len(runs), "n_runs": len(every), "values": every}


def demo_training(store: str, out: Path, log: Callable[[str], None] = print) -> str:
    """Run both comparisons and return the results as markdown (table, pretraining check, claims)."""
    quiet = lambda *a: None  # noqa: E731
    log("pretraining MulT (small) on the unlabelled pool ...")
    ckpt = pretrain(TrainConfig(store=store, out=str(out / "pretrain"), size="small", epochs=30, batch_size=16,
                                lr=1e-3, select="split=pool", **{**COMMON, "label": None}), log=quiet)
    last = json.loads((ckpt.parent / "pretrain.json").read_text())["history"][-1]
    log("fine-tuning it with 10 % of the labels, and the same model from scratch, 3 seeds x 6 folds ...")
    mult = run(TrainConfig(store=store, out=str(out / "mult"), model="mult", size="small", epochs=25, batch_size=8,
                           lr=1e-3, pretrained=str(ckpt), compare_scratch=True, low_resource=(10,),
                           low_resource_seeds=SEEDS, **COMMON), log=quiet)
    rows = [(f"MulT small, {v}", "10 %", {m: _spread(mult, f"{v}_10pct", m) for m in METRICS})
            for v in ("pretrained", "scratch")]
    for name, folder, extra in (("SVM, audio only", "svm_audio", {"only": "audio"}),
                                ("SVM, visual only", "svm_visual", {"only": "visual"}),
                                ("SVM, late fusion", "svm_late", {"fusion": "late"}),
                                ("SVM, early fusion (concat)", "svm_concat", {})):
        log(f"training {name} ...")
        res = run(TrainConfig(store=store, out=str(out / folder), model="svm", **extra, **COMMON), log=quiet)
        rows.append((name, "100 %", {m: _spread(res, "model_100pct", m) for m in METRICS}))
    return report(rows, last)


def _cell(s: dict) -> str:
    seeds = f" ± {s['sd_seeds']:.3f}" if s["sd_seeds"] is not None else ""
    return f"{s['mean']:.3f}{seeds} | ± {s['sd_runs']:.3f} (n={s['n_runs']})"


def _beats(a: dict, b: dict) -> tuple[bool, str]:
    """a - b against the larger sd of the two, each over seeds where there are seeds, else over folds."""
    sd = max(s["sd_seeds"] if s["sd_seeds"] is not None else s["sd_runs"] for s in (a, b))
    diff = a["mean"] - b["mean"]
    text = f"{diff:+.3f} (sd {sd:.3f})"
    if len(a.get("values", ())) == len(b.get("values", ())) > 0:  # the same folds and seeds: paired
        wins = sum(x > y for x, y in zip(a["values"], b["values"]))
        text += f"; ahead in {wins} of {len(a['values'])} paired runs"
    return diff > sd, text


def report(rows: list, pre: dict) -> str:
    """The table and the two claims, checked on these numbers (not asserted: a run may fail them)."""
    lines = ["| model | labels | UA: mean ± sd over seeds | UA: sd over runs | macro-F1: mean ± sd over seeds "
             "| macro-F1: sd over runs |", "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {p} | {_cell(s['unweighted_accuracy'])} | {_cell(s['macro_f1'])} |" for m, p, s in rows]
    ua = {m: s["unweighted_accuracy"] for m, _, s in rows}
    pre_ok = pre["val_l1"] < pre["val_l1_nearest_frame"]
    claim1, d1 = _beats(ua["MulT small, pretrained"], ua["MulT small, scratch"])
    best = max(("SVM, audio only", "SVM, visual only"), key=lambda k: ua[k]["mean"])
    claim2, d2 = _beats(ua["SVM, late fusion"], ua[best])
    yes = {True: "**holds**", False: "**does not hold**"}
    lines += [
        "",
        f"Pretraining (unlabelled pool, masked frames): validation L1 {pre['val_l1']:.3f} vs "
        f"{pre['val_l1_nearest_frame']:.3f} for copying the nearest unmasked frame "
        f"({'beats' if pre_ok else 'does not beat'} the baseline).",
        f"- Pretrained > scratch at 10 % labels by more than one sd: {yes[claim1]}, UA {d1}.",
        f"- Late fusion > best single modality ({best.split(', ')[1]}) by more than one sd: {yes[claim2]}, UA {d2}.",
        "",
        "UA = unweighted accuracy (mean recall over the 4 classes; chance 0.25, one modality alone at most "
        "0.5 by design). Leave-one-speaker-out, 6 folds of 12 test clips. MulT: 3 seeds (stratified subset + "
        "initialisation) per fold; sd over seeds = sd of the 3 six-fold means. SVM rows are deterministic: one "
        "run per fold, sd over the 6 folds.",
    ]
    return "\n".join(lines)
