"""`pipeline pretrain | train | evaluate`: the trainer's command line (registered in pipeline/cli/main.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from train.config import TrainConfig

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # errors: one line on stderr, as the other commands

_STORE = typer.Option(..., help="feature store (path or URL)")
_CONFIG = typer.Option(None, help="YAML file of TrainConfig fields (CLI options override it)")


def _parse_options(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--opt expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _config(config: Path | None, **kw: Any) -> TrainConfig:
    from train.config import load

    try:
        return load(str(config) if config else None, **kw)
    except (ValueError, TypeError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _opt(name: str, text: str) -> Any:  # a typer OptionInfo
    """An option whose default lives in TrainConfig (so a --config file can set it), shown in --help."""
    from train.config import TrainConfig

    default = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else "none" if default is None else default
    return typer.Option(None, help=text, show_default=str(shown))


def pretrain(
    store: str = _STORE,
    out: Path = typer.Option(Path("runs/pretrain"), help="run directory"),
    config: Path | None = _CONFIG,
    audio: str | None = _opt("audio", "audio extractor (a stream of the store)"),
    visual: str | None = _opt("visual", "visual extractor (a stream of the store)"),
    view: str | None = _opt("view", "aligned view to read (set by `extract --rate`: 5hz, 10hz, ...)"),
    size: str | None = _opt("size", "MulT size: base | large | small (small also shrinks the GRU baselines)"),
    epochs: int | None = _opt("epochs", "training epochs"),
    batch_size: int | None = _opt("batch_size", "windows per batch"),
    lr: float | None = _opt("lr", "peak learning rate (Adam; linear warm-up, then linear decay)"),
    seed: int | None = _opt("seed", "random seed (weights, masking, order)"),
    window: int | None = _opt("window", "frames per window (50 = 10 s at 5 Hz)"),
    select: str | None = _opt("select", "only clips whose manifest COLUMN=VALUE (e.g. split=pool)"),
    device: str | None = _opt("device", "auto | cpu | cuda"),
) -> None:
    """Masked-frame pretraining of MulT on a store (no labels needed)."""
    from train.pretrain import pretrain as run

    cfg = _config(config, store=store, out=str(out), audio=audio, visual=visual, view=view, size=size,
                  epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, window=window, device=device, label=None,
                  select=select)
    try:
        path = run(cfg, log=console.print)
    except (ValueError, FileNotFoundError) as exc:  # a --select matching nothing, no store there, ...
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"pretrained weights: {path}\nfine-tune: pipeline train --store STORE --pretrained {path}")


def train(
    store: str = _STORE,
    out: Path = typer.Option(Path("runs/train"), help="run directory"),
    config: Path | None = _CONFIG,
    model: str | None = _opt("model", "mult, tfn, ef_gru, lf_gru, gru_probe, jmt, mater, svm, xgboost, mlp"),
    audio: str | None = _opt("audio", "audio extractor (a stream of the store)"),
    visual: str | None = _opt("visual", "visual extractor (a stream of the store)"),
    view: str | None = _opt("view", "aligned view to read (set by `extract --rate`: 5hz, 10hz, ...)"),
    window: int | None = _opt("window", "frames per window (50 = 10 s at 5 Hz)"),
    label: str | None = _opt("label", "manifest label column"),
    task: str | None = _opt("task", "classification | regression | frame_regression"),
    frame_targets: str | None = _opt("frame_targets", "stream of frame-level targets (e.g. affwild2_va)"),
    protocol: str | None = _opt("protocol", "manifest column of splits (train/validation/test) or fold numbers"),
    validation: str | None = _opt("validation", "model selection on held-out training groups (inner) or on "
                                  "fold k+1 (next_fold)"),
    validation_group: str | None = _opt("validation_group", "manifest column held out whole for inner validation"),
    text: str | None = _opt("text", "text extractor (e.g. bert): a third modality for the classical models and "
                            "gru_probe"),
    only: str | None = _opt("only", "one modality (audio | visual | text) for gru_probe and the classical models"),
    select: str | None = _opt("select", "only clips whose manifest COLUMN=VALUE (e.g. split=pool)"),
    low_resource: str | None = _opt("low_resource", "comma-separated % of the training labels, e.g. 10,100"),
    low_resource_seeds: int | None = _opt("low_resource_seeds", "repeats of each N % < 100 subset: new stratified "
                                          "subset and initialisation each; the summary is mean ± sd over them"),
    pretrained: str | None = _opt("pretrained", "pretraining checkpoint (MulT)"),
    compare_scratch: bool = typer.Option(False, help="also train from scratch for the low-resource curve"),
    size: str | None = _opt("size", "MulT size: base | large | small (small also shrinks the GRU baselines)"),
    fusion: str | None = _opt("fusion", "classical models: concat | sum | product | late"),
    epochs: int | None = _opt("epochs", "training epochs"),
    batch_size: int | None = _opt("batch_size", "windows (or clips) per batch"),
    lr: float | None = _opt("lr", "(peak) learning rate"),
    optimizer: str | None = _opt("optimizer", "adam | adamw | sgd (momentum 0.9)"),
    schedule: str | None = _opt("schedule", "warmup_linear | plateau (cut on a validation plateau) | constant"),
    seed: int | None = _opt("seed", "random seed (weights, subsets, order)"),
    device: str | None = _opt("device", "auto | cpu | cuda"),
    opt: list[str] = typer.Option([], "--opt", help="model option NAME=VALUE (repeatable)"),
    stop_after: int | None = typer.Option(None, help="stop after N epochs (run again to resume)"),
    keep: str | None = _opt("keep", "files kept once a run is complete: all | best (best.pt, for evaluate) | "
                            "last (checkpoint.pt) | none (metrics only)"),
) -> None:
    """Train and evaluate a model under a protocol; writes metrics.json, checkpoints and plots."""
    from pipeline.runtime.stop import TrainingSignals
    from train.report import summary_table
    from train.trainer import run

    lr_pcts = tuple(int(x) for x in low_resource.split(",")) if low_resource else None
    cfg = _config(config, store=store, out=str(out), model=model, audio=audio, visual=visual, text=text,
                  view=view, window=window, label=label, task=task, frame_targets=frame_targets, protocol=protocol,
                  only=only, select=select, validation=validation, validation_group=validation_group,
                  optimizer=optimizer, schedule=schedule, low_resource=lr_pcts, low_resource_seeds=low_resource_seeds,
                  pretrained=pretrained,
                  compare_scratch=compare_scratch or None, size=size,
                  fusion=fusion, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                  options=_parse_options(opt) or None, stop_after=stop_after, keep=keep)
    signals = TrainingSignals()
    try:
        with signals:
            results = run(cfg, log=console.print)
    except KeyboardInterrupt:
        console.print(f"[yellow]stopped[/yellow]; every finished epoch is checkpointed: run the same command "
                      f"again to resume ({out})", highlight=False)
        raise typer.Exit(signals.exit_code()) from None
    except (ValueError, FileNotFoundError) as exc:  # no store at --store, a column missing, ...
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(summary_table(results["summary"], f"{cfg.model} on {cfg.store} ({cfg.protocol})"))
    console.print(f"run directory: {out} (metrics.json, plots)")


def evaluate(run_dir: Path = typer.Argument(..., help="a run directory written by `pipeline train`"),
             store: str | None = typer.Option(None, help="evaluate on this store instead")) -> None:
    """Re-evaluate a run's best checkpoints on the test partitions of its protocol."""
    from train.evaluate import evaluate_run

    try:
        out = evaluate_run(run_dir, store)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print_json(json.dumps(out))
