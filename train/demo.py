"""The demo's training half: the papers' claims in miniature on the demo store.

MulT (small) pretrained without labels, fine-tuned with 10 % and 100 % of the labels (and from
scratch), EF-GRU, and an SVM on each modality alone and fused. Prints and returns a table; the
numbers are whatever this run measures (tiny corpus: leave-one-speaker-out over 6 speakers, 8 test clips per fold)."""

from __future__ import annotations

from pathlib import Path

from train.config import TrainConfig
from train.pretrain import pretrain
from train.trainer import run

COMMON = dict(audio="egemaps", visual="face_hog", label="label", protocol="fold_lo_speaker", window=20, seed=0)


Row = tuple[str, str, float, float, float, float]  # model, labels, UA mean, sd, macro-F1 mean, sd


def demo_training(store: str, out: Path, log=print) -> list[Row]:  # noqa: ANN001
    quiet = lambda *a: None  # noqa: E731
    log("pretraining MulT (small) on the demo store, no labels ...")
    ckpt = pretrain(TrainConfig(store=store, out=str(out / "pretrain"), size="small", epochs=30, batch_size=16,
                                lr=1e-3, **COMMON), log=quiet)
    rows = []

    def add(name: str, cfg: TrainConfig) -> None:
        log(f"training {name} ...")
        res = run(cfg, log=quiet)
        for variant, s in sorted(res["summary"].items()):
            pct = variant.rsplit("_", 1)[1].removesuffix("pct") + " %"
            label = f"{name} ({variant.rsplit('_', 1)[0]})" if name.startswith("MulT") else name
            ua, f1 = s["unweighted_accuracy"], s["macro_f1"]
            rows.append((label, pct, ua["mean"], ua["std"], f1["mean"], f1["std"]))

    mult = dict(model="mult", size="small", epochs=25, batch_size=8, lr=1e-3, **COMMON)
    add("MulT", TrainConfig(store=store, out=str(out / "mult"), pretrained=str(ckpt), compare_scratch=True,
                            low_resource=(10, 100), **mult))
    add("EF-GRU", TrainConfig(store=store, out=str(out / "ef_gru"), model="ef_gru", epochs=25, batch_size=8,
                              lr=1e-3, options={"hidden": 64, "layers": 1}, **COMMON))
    for only in ("audio", "visual"):
        add(f"SVM {only} only", TrainConfig(store=store, out=str(out / f"svm_{only}"), model="svm", only=only,
                                            **COMMON))
    add("SVM fused (concat)", TrainConfig(store=store, out=str(out / "svm_fused"), model="svm", **COMMON))
    return rows


def table(rows: list[Row]) -> str:
    """Mean ± sd over the 6 leave-one-speaker-out folds (and, at 10 %, 3 seeded subsets per fold)."""
    lines = ["| model | labels | test UA (mean ± sd) | test macro-F1 (mean ± sd) |", "|---|---|---|---|"]
    lines += [f"| {m} | {p} | {ua:.3f} ± {uas:.3f} | {f1:.3f} ± {f1s:.3f} |" for m, p, ua, uas, f1, f1s in rows]
    return "\n".join(lines)
