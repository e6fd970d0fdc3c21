"""`pipeline finetune EXTRACTOR`: train an extractor's backbone on a corpus partition and register the weights."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def finetune(
    extractor: str = typer.Argument(..., help="extractor whose backbone learns (r2plus1d, resnet18_spectrogram, "
                                    "bert, wav2vec2)"),
    dataset: str = typer.Option(..., help="corpus recipe (pipeline datasets list)"),
    root: Path = typer.Option(..., help="corpus root as unpacked"),
    name: str = typer.Option(..., help="weights name to register; extract with --set EXTRACTOR.weights=NAME"),
    label: str | None = typer.Option(None, help="label column (classification); default: the dataset's frame "
                                     "targets (Aff-Wild2 valence/arousal)"),
    protocol: str = typer.Option("split", help="manifest column: a split's train rows, or every fold but --fold"),
    fold: str | None = typer.Option(None, help="the test fold, left out of fine-tuning (fold protocols)"),
    set_: list[str] = typer.Option([], "--set", help="extractor option OPTION=VALUE (as extraction will use it)"),
    epochs: int = typer.Option(3, help="epochs"),
    lr: float = typer.Option(1e-3, help="learning rate"),
    batch_size: int = typer.Option(8, help="units per step (8-frame clips, spectrogram windows, utterances)"),
    weight_decay: float = typer.Option(0.0, help="weight decay"),
    optimizer: str = typer.Option("sgd", help="sgd (momentum 0.9) | adam | adamw"),
    limit: int | None = typer.Option(None, help="only the first N training clips"),
    out: Path = typer.Option(Path("runs/finetune"), help="checkpoint folder (a rerun resumes)"),
    models: Path | None = typer.Option(None, help="model directory", show_default="$PIPELINE_MODELS or "
                                       "~/.cache/affect-pipeline/models"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Fine-tune a backbone on a partition's clips (decoded and face-cropped as extraction does), then register
    it in the weights registry with its sha256: its features get their own cache keys beside the public ones."""
    import yaml

    from extractors.weights import WeightsError
    from pipeline.engine.finetune import FinetuneConfig
    from pipeline.engine.finetune import finetune as run
    from pipeline.errors import ConfigError

    try:
        options = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in set_)}
        cfg = FinetuneConfig(extractor, dataset, str(root), name, options, label, protocol, fold, epochs, lr,
                             batch_size, weight_decay, optimizer, device=device, limit=limit, out=str(out),
                             models_dir=str(models) if models else None)
        run(cfg, log=console.print)
    except (ConfigError, WeightsError, ValueError, KeyError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
