"""`pipeline train`: read it top to bottom.

data from the store -> partitions of the protocol -> for each fold and low-resource N %: build the
model, train with the configured optimiser and schedule (Adam + linear warm-up by default, SGD,
reduce-on-plateau), keep the best validation state, checkpoint the
full state every epoch (resume continues bit-for-bit on CPU), evaluate on test -> metrics.json and
plots in the run directory. Classical models (SVM/XGBoost/MLP) go through train/classical.py.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from stores.atomic_file import write_atomic
from train import classical, metrics, plots
from train.build import branches, build, forward
from train.config import CLASSICAL, TrainConfig
from train.data import Batch, StoreData
from train.losses import loss_fn
from train.optim import Schedule, make_optimizer
from train.partitions import low_resource, partitions
from train.pretrained import compatible_state
from train.report import public
from train.step import optimise


def device_for(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary name, then rename: a run stopped mid-write keeps the previous file."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def load_data(cfg: TrainConfig) -> StoreData:
    mods = {"audio": cfg.audio, "visual": cfg.visual} | ({"text": cfg.text} if cfg.text else {})
    if cfg.model == "gru_probe" or cfg.only:
        only = cfg.only or "audio"
        mods = {only: mods[only]}
    return StoreData(cfg.store, mods, cfg.view, None if cfg.task == "frame_regression" else cfg.label,
                     "classification" if cfg.task == "classification" else "regression", cfg.window,
                     cfg.frame_targets, select=cfg.select, max_frame_gap=cfg.max_frame_gap)


def run(cfg: TrainConfig, log: Callable[[str], None] = print) -> dict:
    data = load_data(cfg)  # first: a run that cannot read its store leaves no run directory behind
    if data.misaligned:
        log(f"warning: {len(data.misaligned)} clip(s) left out: audio and visual valid frames differ by more than "
            f"{cfg.max_frame_gap} (e.g. {data.misaligned[0]})")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=str))
    (out / "provenance.json").write_text(json.dumps(_provenance(data, cfg), indent=1, default=str))
    results: dict = {"folds": {}, "config": cfg.to_dict()}
    variants = [("pretrained" if cfg.pretrained else "model", cfg.pretrained)]
    if cfg.compare_scratch and cfg.pretrained:
        variants.append(("scratch", None))
    missing: dict[str, list[str]] = {}
    for k, (fold, parts) in enumerate(cfg_partitions(data, cfg)):
        if cfg.model in CLASSICAL or cfg.validation == "none":  # nothing to select: every non-test clip trains
            parts = {**parts, "train": np.union1d(parts["train"], parts["validation"]),
                     "validation": parts["validation"][:0]}
        for percent in cfg.low_resource:
            repeats = cfg.low_resource_seeds if percent < 100 else 1
            for rep in range(repeats):  # a new stratified subset per fold and repeat, and a new initialisation
                train_idx = low_resource(data.meta, parts["train"], percent,
                                         cfg.label if cfg.task == "classification" else None, [cfg.seed, k, rep])
                absent = _absent_classes(data, train_idx, cfg)
                if absent:
                    missing[f"{fold}, {percent} % labels"] = absent
                rcfg = replace(cfg, seed=cfg.seed + rep)
                for variant, pretrained in variants:
                    key = f"{variant}_{percent}pct" + (f"_seed{rep}" if repeats > 1 else "")
                    log(f"[{fold}/{key}] fold {fold}, {variant}, {percent} % of the training labels"
                        + (f" (repeat {rep + 1}/{repeats})" if repeats > 1 else "")
                        + f": train {len(train_idx)} clips, validation {len(parts['validation'])}, "
                        f"test {len(parts['test'])}")
                    run_dir = out / fold / key
                    if cfg.model in CLASSICAL:
                        res = classical.run(rcfg, data, train_idx, parts["test"])
                    else:
                        res = train_one(rcfg, data, train_idx, parts["validation"], parts["test"], run_dir,
                                        pretrained, log)
                    results["folds"].setdefault(fold, {})[key] = res
                    title = f"{cfg.model}: {fold}, {plots.variant_name(key)}"
                    plots.run_plots(res, run_dir, data, title, cfg.loss_name, _score_name(cfg))
    if missing:  # once, at the end, where it is not lost in the epoch lines
        log("warning: classes absent from the training partition (the model cannot learn them): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items()))
    results["summary"] = summarise(results["folds"])
    (out / "metrics.json").write_text(json.dumps(public(results), indent=1, default=str))
    plots.low_resource_curve(results["summary"], out / "low_resource.png", f"{cfg.model} on {Path(cfg.store).name}",
                             "unweighted_accuracy" if cfg.task == "classification" else "mean_ccc")
    return results


def cfg_partitions(data: StoreData, cfg: TrainConfig) -> list[tuple[str, dict]]:
    return partitions(data.meta, cfg.protocol, cfg.folds, "inner" if cfg.validation == "none" else cfg.validation,
                      cfg.validation_group,
                      cfg.validation_fraction, cfg.seed)


def train_one(cfg: TrainConfig, data: StoreData, train_clips: np.ndarray, val_clips: np.ndarray,
              test_clips: np.ndarray, run_dir: Path, pretrained: str | None,
              log: Callable[[str], None] = print) -> dict:
    seed_everything(cfg.seed)
    device = device_for(cfg.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = finished(run_dir, cfg)
    if done is not None:  # complete, its checkpoints perhaps not kept (--keep): the saved result stands
        log("  complete (result.json): not trained again")
        return done
    n_out = len(data.classes) if cfg.task == "classification" else (
        data.dims_targets if cfg.task == "frame_regression" else 1)
    saved = torch.load(pretrained, map_location="cpu", weights_only=True) if pretrained else {}
    # one normalisation policy for both arms of a pretrained-vs-scratch comparison: the scratch arm uses the
    # pretraining statistics too when the fine-tuned arm does, so the comparison measures pretraining alone
    norm_source = (pretrained or cfg.pretrained) if cfg.pretrained_norm else None
    data.norm.clear()
    if zscore_inputs(cfg):
        stats = torch.load(norm_source, map_location="cpu", weights_only=True).get("norm", {}) if norm_source else {}
        if data.load_norm(stats):
            log("  inputs standardised with the pretraining statistics saved in the checkpoint")
        else:
            data.fit_norm(train_clips)
    model = build(cfg, data.dims, n_out).to(device)
    if pretrained:
        usable = compatible_state(saved, model, cfg, data.dims, pretrained)
        model.load_state_dict(usable, strict=False)
        log(f"  loaded {len(usable)}/{len(model.state_dict())} tensors from {pretrained}")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"  {cfg.model}: {n_params:,} parameters")
    for line in small_data_warnings(cfg, data, train_clips, val_clips, n_params):
        log(f"  warning: {line}")
    train_s, val_s, test_s = (data.samples_of(c) for c in (train_clips, val_clips, test_clips))
    steps_per_epoch = max(1, math.ceil(len(train_s) / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, cfg.momentum)
    sched = Schedule(cfg.schedule, opt, total, cfg.warmup, cfg.plateau_patience, cfg.plateau_factor)
    criterion = loss_fn(cfg.loss_name)
    amp = "cuda" if device.type == "cuda" else None  # bf16 mixed precision on GPU
    state = {"epoch": 0, "best": -math.inf, "history": [], "best_model": None}
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists():  # resume: the full state, so the rest of the run is what it would have been
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = {k: saved[k] for k in ("epoch", "best", "history", "best_model")}
        log(f"  resumed at epoch {state['epoch']}")
    stop = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, state["epoch"] + cfg.stop_after)
    while state["epoch"] < stop:
        epoch = state["epoch"]
        model.train()
        order = data.epoch_order(train_s, np.random.default_rng([cfg.seed, epoch]))
        t0, losses = time.perf_counter(), []
        for i in range(0, len(order), cfg.batch_size):
            b = data.batch(order[i : i + cfg.batch_size])

            def loss_of(b: Batch = b) -> torch.Tensor:
                pred = forward(model, cfg, b, device).float()
                return criterion(pred, b.y.to(device), None if b.y_mask is None else b.y_mask.to(device))

            losses.append(optimise(model, opt, sched, loss_of, cfg.grad_clip, amp))
        # without a validation set (validation: none, MATER's protocol) the plateau schedule watches the
        # training loss and the last epoch is the model
        score = _score(evaluate(model, cfg, data, val_s, device), cfg) if len(val_s) else -float(np.mean(losses))
        sched.epoch_end(score)
        state["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                 "val_score": score if len(val_s) else float("nan"),
                                 "seconds": time.perf_counter() - t0})
        if score > state["best"] or not len(val_s):
            state["best"], state["best_model"] = score, {k: v.detach().cpu().clone()
                                                         for k, v in model.state_dict().items()}
        state["epoch"] = epoch + 1
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "rng": torch.get_rng_state(), **state}, ckpt)
        log(f"  epoch {epoch + 1}/{cfg.epochs} train loss ({cfg.loss_name}) {np.mean(losses):.4f}, "
            + (f"validation {_score_name(cfg)} {score:.4f}" if len(val_s) else "(no validation set: last epoch kept)"))
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    save_atomic({"model": model.state_dict(), "norm": data.norm_state()}, run_dir / "best.pt")
    result = evaluate(model, cfg, data, test_s, device, with_fused=True)
    result["history"], result["parameters"], result["complete"] = state["history"], n_params, state[
        "epoch"] >= cfg.epochs
    result["validation_score"] = float(state["best"]) if len(val_s) else float("nan")  # what selected it
    if result["complete"]:
        keep_files(run_dir, cfg, result)
    return result


def finished(run_dir: Path, cfg: TrainConfig) -> dict | None:
    """The saved result of a complete run of this many epochs, or None (train or resume)."""
    path = run_dir / "result.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("epochs") == cfg.epochs else None


def keep_files(run_dir: Path, cfg: TrainConfig, result: dict) -> None:
    """Write result.json (a rerun reads it), then drop the checkpoints ``keep`` does not ask for: a 12-fold
    MATER run kept 8 GB of them. ``best`` keeps best.pt (evaluate), ``last`` checkpoint.pt (train further)."""
    text = json.dumps({**public(result), "epochs": cfg.epochs}, default=str)
    write_atomic(run_dir / "result.json", lambda tmp: tmp.write_text(text))
    drop = {"all": (), "best": ("checkpoint.pt",), "last": ("best.pt",), "none": ("checkpoint.pt", "best.pt")}
    for name in drop[cfg.keep]:
        (run_dir / name).unlink(missing_ok=True)


@torch.no_grad()
def evaluate(model: torch.nn.Module, cfg: TrainConfig, data: StoreData, samples: np.ndarray,
             device: torch.device, with_fused: bool = False) -> dict:
    model.eval()
    preds, ys, masks, fused, per_mod = [], [], [], [], []
    for i in range(0, len(samples), 256):
        b = data.batch(samples[i : i + 256])
        p = forward(model, cfg, b, device).float().cpu()
        preds.append(p)
        ys.append(b.y)
        if b.y_mask is not None:
            masks.append(b.y_mask)
        if with_fused:
            fused.append(forward(model, cfg, b, device, fused=True).float().cpu())
        if cfg.task == "classification":
            per_mod.append({m: o.argmax(-1).cpu() for m, o in branches(model, b, device).items()})
    if not preds:
        return {"score": float("nan")}
    pred, y = torch.cat(preds), torch.cat(ys)
    if cfg.task == "classification":
        out = metrics.classification(y.numpy(), pred.argmax(-1).numpy(), data.classes)
        if per_mod and per_mod[0]:  # a model with branches: each one's accuracy
            out["per_modality_accuracy"] = {m: float((torch.cat([p[m] for p in per_mod]).numpy() == y.numpy()).mean())
                                            for m in per_mod[0]}
    elif cfg.task == "regression":
        out = metrics.regression(pred.reshape(-1).numpy(), y.numpy(), [cfg.label or "target"])
    else:
        m = torch.cat(masks).reshape(-1)
        out = metrics.regression(pred.reshape(-1, pred.shape[-1])[m].numpy(),
                                 y.reshape(-1, y.shape[-1])[m].numpy(), data.target_names)
    if with_fused:
        out["_fused"] = torch.cat(fused).numpy()
        out["_labels"] = y.numpy() if cfg.task == "classification" else None
    return out


PARAMS_PER_CLIP = 100_000  # above this many parameters per training clip, a model mostly memorises


def small_data_warnings(cfg: TrainConfig, data: StoreData, train_clips: np.ndarray, val_clips: np.ndarray,
                        n_params: int) -> list[str]:
    """One line each, with the numbers: a model far larger than its training set, a validation set that cannot
    select a model (one clip, or one class: every epoch scores alike)."""
    out = []
    n = max(1, len(train_clips))
    if n_params / n > PARAMS_PER_CLIP:
        out.append(f"{n_params / 1e6:.1f} M parameters for {len(train_clips)} training clips "
                   f"({n_params / n / 1e6:.2f} M per clip): the model can memorise them; try --size small"
                   + (" (MulT's small size)" if cfg.model == "mult" else "") + ", fewer --epochs, or more data")
    if len(val_clips) == 1:
        out.append("the validation set is 1 clip: model selection by it is noise; use more validation clips")
    elif cfg.task == "classification" and cfg.label and len(val_clips) and cfg.label in data.meta.columns:
        classes = set(data.meta.iloc[np.asarray(val_clips)][cfg.label].astype(str))
        if len(classes) == 1:
            out.append(f"the validation set holds one class ({classes.pop()!r}, {len(val_clips)} clips): its "
                       "unweighted accuracy cannot rank epochs; hold out clips of every class")
    return out


def _score(res: dict, cfg: TrainConfig) -> float:
    if cfg.task == "classification":
        return res.get("unweighted_accuracy", float("nan"))
    return res.get("mean_ccc", float("nan")) if cfg.task == "frame_regression" else res.get(
        cfg.label or "target", {}).get("ccc", float("nan"))


def zscore_inputs(cfg: TrainConfig) -> bool:
    """Inputs are standardised with the training clips' statistics, except for MATER, which l2-normalises
    the raw embeddings as its paper does (z-scoring first would change what the l2 norm sees)."""
    return cfg.model != "mater"


def _score_name(cfg: TrainConfig) -> str:
    if cfg.task == "classification":
        return "UA"
    return "mean CCC" if cfg.task == "frame_regression" else f"CCC of {cfg.label or 'target'}"


def _absent_classes(data: StoreData, train_clips: np.ndarray, cfg: TrainConfig) -> list[str]:
    if cfg.task != "classification" or not cfg.label or cfg.label not in data.meta.columns:
        return []
    present = set(data.meta.iloc[train_clips][cfg.label].astype(str))
    return [c for c in data.classes if str(c) not in present]


def summarise(folds: dict) -> dict:
    """mean +- std over folds (and the repeats of low-resource subsets), per run variant, of the headline
    metrics; ``n`` counts the runs."""
    out: dict = {}
    base = {v: v.split("_seed")[0] for f in folds.values() for v in f}
    flat = {f: {name: _flat(r) for name, r in runs.items()} for f, runs in folds.items()}
    keys = ["accuracy", "unweighted_accuracy", "macro_f1", "mean_ccc", "ccc", "mae", "validation_score"]
    keys += sorted({k for f in flat.values() for r in f.values() for k in r if k.endswith(("_ccc", "_accuracy", "_mae"))
                    and isinstance(r[k], float | int) and k not in keys})
    for v in sorted(set(base.values())):
        for k in keys:
            vals = [r[k] for f in flat.values() for name, r in f.items() if base[name] == v and k in r]
            if vals:
                out.setdefault(v, {})[k] = {"mean": float(np.mean(vals)), "n": len(vals),  # sample sd (n - 1)
                                            "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0}
    return out


def _flat(r: dict) -> dict:
    """Per-modality accuracies (MATER: each branch alone) and per-target CCCs (valence_ccc, ...) as keys."""
    out = {**r, **{f"{m}_accuracy": a for m, a in r.get("per_modality_accuracy", {}).items()}}
    targets = {k: v for k, v in r.items() if isinstance(v, dict) and "ccc" in v}
    out |= {f"{k}_ccc": v["ccc"] for k, v in targets.items()} | {f"{k}_mae": v["mae"] for k, v in targets.items()}
    if len(targets) == 1:  # a single-target run: its CCC and MAE under plain names (a preset's metric columns)
        (v,) = targets.values()
        out |= {"ccc": v["ccc"], "mae": v["mae"]}
    return out


def _provenance(data: StoreData, cfg: TrainConfig) -> dict:
    out = {"store": cfg.store, "view": cfg.view, "clips": len(data.clips), "samples": len(data)}
    for mod, ext in data.modalities.items():
        try:
            out[mod] = data.store.group_attrs("aligned", cfg.view, ext)
        except Exception:  # noqa: BLE001 - provenance is best effort
            out[mod] = {"name": ext}
    return out
