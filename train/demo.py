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


def demo_training(store: str, out: Path, log=print) -> list[tuple[str, str, float, float]]:  # noqa: ANN001
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
            rows.append((label, pct, s["unweighted_accuracy"]["mean"], s["macro_f1"]["mean"]))

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


def table(rows: list[tuple[str, str, float, float]]) -> str:
    lines = ["| model | labels | test UA | test macro-F1 |", "|---|---|---|---|"]
    lines += [f"| {m} | {p} | {ua:.3f} | {f1:.3f} |" for m, p, ua, f1 in rows]
    return "\n".join(lines)
