"""A preset's backbone fine-tuning step (``finetune:`` in its YAML), before extraction and fusion training.

JMT fine-tunes its backbones on Aff-Wild2's training videos; Babaali & Shayaninasab fine-tune BERT, wav2vec2
and VideoMAE on each fold's training sessions. For a fold protocol every fold gets its own weights
(``PRESET-EXT-foldK``, trained without fold K) and its own stream in the store (``EXT@PRESET-EXT-foldK``:
the extractor with those weights), beside the public checkpoint's; each fold of each run then trains on
its fold's streams. For a split protocol one set of weights learns from the train rows. Weights already
fine-tuned with the same settings are reused (the registry records them), so a rerun costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

Streams = dict[Any, dict[str, str]]  # fold (None: one split) -> extractor -> stream name

# the finetune options a preset may set per extractor (FinetuneConfig fields)
OPTIONS = {"label", "epochs", "lr", "batch_size", "weight_decay", "optimizer", "seed"}


def folds_of(preset: Any, root: str, limit: int | None) -> list[Any]:
    """The test folds of the preset's protocol ([None] for a split), read from the corpus manifest."""
    from pipeline.datasets.manifest import build_listing

    protocol = preset.train.get("protocol", "split")
    listing = build_listing(preset.dataset, root, limit, select=preset.extract.get("select"))[0]
    if protocol not in listing.columns:
        raise ConfigError(f"preset {preset.name}: protocol column {protocol!r} is not in the {preset.dataset} manifest")
    col = listing[protocol].dropna().astype(str)
    if col.isin(["train", "validation", "test"]).any():
        return [None]
    return sorted({int(v) if v.lstrip("-").isdigit() else v for v in col if v not in ("", "<NA>")})


def weights_name(preset: Any, ext: str, fold: Any) -> str:
    return f"{preset.name}-{ext}" + ("" if fold is None else f"-fold{fold}")


def check(preset: Any) -> None:
    for ext, opts in (preset.finetune or {}).items():
        if ext not in preset.extract.get("extractors", {}):
            raise ConfigError(f"preset {preset.name}: finetune names {ext}, which the preset does not extract")
        unknown = set(opts or {}) - OPTIONS
        if unknown:
            raise ConfigError(f"preset {preset.name}: finetune {ext}: unknown option(s) {sorted(unknown)}; "
                              f"known: {sorted(OPTIONS)}")


def finetune_all(preset: Any, root: str, out: Path, models_dir: str | None, limit: int | None,
                 log: Callable[[str], None]) -> Streams:
    """Fine-tune every listed backbone for every fold (or once); return the streams each fold trains on."""
    from extractors import weights
    from pipeline.engine.finetune import FinetuneConfig, finetune

    streams: Streams = {}
    if not preset.finetune:
        return streams
    label = preset.train.get("label")
    for fold in folds_of(preset, root, limit):
        for ext, opts in preset.finetune.items():
            name = weights_name(preset, ext, fold)
            cfg = FinetuneConfig(ext, preset.dataset, root, name, dict(preset.extract["extractors"][ext] or {}),
                                 **{"label": label if preset.train.get("task", "classification") == "classification"
                                    else None, **(opts or {})},
                                 protocol=preset.train.get("protocol", "split"),
                                 fold=None if fold is None else str(fold), limit=limit,
                                 out=str(out / "finetune" / name), models_dir=models_dir)
            record = weights.models_dir(models_dir) / name / weights.CUSTOM
            same = record.exists() and json.loads(record.read_text()).get("finetuned", {}).get("config") == \
                json.loads(json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k != "face"}, default=str))
            if same:
                log(f"  {name}: fine-tuned already (same settings): reused")
            else:
                log(f"fine-tuning {ext}" + ("" if fold is None else f" without fold {fold}") + f" -> {name} ...")
                finetune(cfg, log=lambda *a: None)
            streams.setdefault(fold, {})[ext] = f"{ext}@{name}"
    return streams


def extractors_with_streams(preset: Any, streams: Streams) -> dict[str, dict]:
    """What extraction runs: the preset's extractors, each fine-tuned one once per fold under its stream name
    (the public checkpoint's stream is not needed then)."""
    exts = dict(preset.extract["extractors"])
    for per_fold in streams.values():
        for ext, stream in per_fold.items():
            opts = {k: v for k, v in (exts.get(ext) or {}).items() if k != "weights"}
            exts[stream] = opts
    for ext in {e for per_fold in streams.values() for e in per_fold}:
        exts.pop(ext, None)
    return exts


def fold_configs(cfg: Any, streams: Streams) -> list[tuple[Any, Any]]:
    """(fold, TrainConfig) per fold, each reading its fold's streams; [(None, cfg)] without fine-tuning."""
    if not streams:
        return [(None, cfg)]
    out = []
    for fold, per_fold in streams.items():
        mods = {m: per_fold.get(getattr(cfg, m), getattr(cfg, m)) for m in ("audio", "visual", "text")}
        if fold is None:
            out.append((None, dataclasses.replace(cfg, **mods)))
        else:
            out.append((fold, dataclasses.replace(cfg, folds=(fold,), out=str(Path(cfg.out) / f"fold{fold}"), **mods)))
    return out
