"""`pipeline pretrain | train | evaluate`: the trainer's command line (registered in pipeline/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console(soft_wrap=True)

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


def _config(config: Path | None, **kw):  # noqa: ANN202
    from train.config import load

    try:
        return load(str(config) if config else None, **kw)
    except (ValueError, TypeError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def pretrain(
    store: str = _STORE,
    out: Path = typer.Option(Path("runs/pretrain"), help="run directory"),
    config: Path | None = _CONFIG,
    audio: str | None = typer.Option(None, help="audio extractor [egemaps]"),
    visual: str | None = typer.Option(None, help="visual extractor [face_hog]"),
    size: str | None = typer.Option(None, help="MulT size: base | large | small"),
    epochs: int | None = typer.Option(None), batch_size: int | None = typer.Option(None),
    lr: float | None = typer.Option(None), seed: int | None = typer.Option(None),
    window: int | None = typer.Option(None, help="frames per window [50 = 10 s at 5 Hz]"),
    device: str | None = typer.Option(None, help="auto | cpu | cuda"),
) -> None:
    """Masked-frame pretraining of MulT on a store (no labels needed)."""
    from train.pretrain import pretrain as run

    cfg = _config(config, store=store, out=str(out), audio=audio, visual=visual, size=size, epochs=epochs,
                  batch_size=batch_size, lr=lr, seed=seed, window=window, device=device, label=None)
    path = run(cfg, log=console.print)
    console.print(f"pretrained weights: {path}\nfine-tune: pipeline train --store STORE --pretrained {path}")


def train(
    store: str = _STORE,
    out: Path = typer.Option(Path("runs/train"), help="run directory"),
    config: Path | None = _CONFIG,
    model: str | None = typer.Option(None, help="mult, tfn, ef_gru, lf_gru, gru_probe, jmt, mater, svm, "
                                                   "xgboost, mlp [mult]"),
    audio: str | None = typer.Option(None), visual: str | None = typer.Option(None),
    label: str | None = typer.Option(None, help="manifest label column [label]"),
    task: str | None = typer.Option(None, help="classification | regression | frame_regression"),
    frame_targets: str | None = typer.Option(None, help="stream of frame-level targets (affwild2_va)"),
    protocol: str | None = typer.Option(None, help="manifest split/fold column [split]"),
    low_resource: str | None = typer.Option(None, help="comma-separated % of training labels, e.g. 10,100"),
    pretrained: str | None = typer.Option(None, help="pretraining checkpoint (MulT)"),
    compare_scratch: bool = typer.Option(False, help="also train from scratch for the low-resource curve"),
    size: str | None = typer.Option(None), fusion: str | None = typer.Option(None),
    epochs: int | None = typer.Option(None), batch_size: int | None = typer.Option(None),
    lr: float | None = typer.Option(None), seed: int | None = typer.Option(None),
    device: str | None = typer.Option(None),
    opt: list[str] = typer.Option([], "--opt", help="model option NAME=VALUE (repeatable)"),
    stop_after: int | None = typer.Option(None, help="stop after N epochs (run again to resume)"),
) -> None:
    """Train and evaluate a model under a protocol; writes metrics.json, checkpoints and plots."""
    from train.trainer import run

    lr_pcts = tuple(int(x) for x in low_resource.split(",")) if low_resource else None
    cfg = _config(config, store=store, out=str(out), model=model, audio=audio, visual=visual, label=label,
                  task=task, frame_targets=frame_targets, protocol=protocol, low_resource=lr_pcts,
                  pretrained=pretrained, compare_scratch=compare_scratch or None, size=size, fusion=fusion,
                  epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                  options=_parse_options(opt) or None, stop_after=stop_after)
    try:
        results = run(cfg, log=console.print)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print_json(json.dumps(results["summary"]))
    console.print(f"run directory: {out}")


def evaluate(run_dir: Path = typer.Argument(..., help="a run directory written by `pipeline train`"),
             store: str | None = typer.Option(None, help="evaluate on this store instead")) -> None:
    """Re-evaluate a run's best checkpoints on the test partitions of its protocol."""
    from train.evaluate import evaluate_run

    try:
        out = evaluate_run(run_dir, store)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print_json(json.dumps(out))
