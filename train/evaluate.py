"""`pipeline evaluate`: rebuild a run's models from its saved config and best checkpoints, and score
them on the test partitions again (optionally on another store with the same features)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from train import classical
from train.build import build
from train.config import CLASSICAL, TrainConfig
from train.data import StoreData
from train.partitions import low_resource
from train.report import public
from train.trainer import cfg_partitions, device_for, evaluate, load_data, zscore_inputs


def _refit_classical(cfg: TrainConfig, data: StoreData) -> dict:
    """Classical models keep no checkpoint (no pickle: a model file must not be code): they are refit from the
    run's saved configuration on each training partition, deterministically (their seed), and scored on its
    test partition, as training scored them."""
    out: dict = {}
    for k, (fold, parts) in enumerate(cfg_partitions(data, cfg)):
        for percent in cfg.low_resource:
            repeats = cfg.low_resource_seeds if percent < 100 else 1
            for rep in range(repeats):
                train_idx = low_resource(data.meta, parts["train"], percent, cfg.label, [cfg.seed, k, rep])
                rcfg = dataclasses.replace(cfg, seed=cfg.seed + rep)
                key = f"model_{percent}pct" + (f"_seed{rep}" if repeats > 1 else "")
                out.setdefault(fold, {})[key] = public(classical.run(rcfg, data, train_idx, np.asarray(parts["test"])))
    return out


def evaluate_run(run_dir: Path, store: str | None = None) -> dict:
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    raw = json.loads(cfg_path.read_text())
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    raw.setdefault("validation", "next_fold")  # runs saved before inner validation existed used fold k+1
    cfg = TrainConfig(**raw)
    if store:
        cfg = dataclasses.replace(cfg, store=store)
    data = load_data(cfg)
    if cfg.model in CLASSICAL:
        return _refit_classical(cfg, data)
    device = device_for(cfg.device)
    out: dict = {}
    for k, (fold, parts) in enumerate(cfg_partitions(data, cfg)):
        for best in sorted((Path(run_dir) / fold).glob("*/best.pt")):
            variant = best.parent.name
            base, _, rep = variant.partition("_seed")  # the training subset and its statistics, as trained
            percent = int(base.rsplit("_", 1)[1].removesuffix("pct"))
            saved = torch.load(best, map_location="cpu", weights_only=True)
            data.norm = {}
            if zscore_inputs(cfg) and not data.load_norm(saved.get("norm", {})):  # runs saved without them
                data.fit_norm(low_resource(data.meta, parts["train"], percent, cfg.label,
                                           [cfg.seed, k, int(rep or 0)]))
            n_out = len(data.classes) if cfg.task == "classification" else (
                data.dims_targets if cfg.task == "frame_regression" else 1)
            model = build(cfg, data.dims, n_out).to(device)
            model.load_state_dict(saved["model"])
            res = evaluate(model, cfg, data, data.samples_of(np.asarray(parts["test"])), device)
            out.setdefault(fold, {})[variant] = public(res)
    return out
