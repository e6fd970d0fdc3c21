"""`pipeline experiment list | show | run`: the seed papers' experiments as presets (pipeline/experiments/presets/)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Each seed paper's experiment as one preset: extract → (pretrain) → train → paper table.")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # errors: one line on stderr, as the other commands


@app.command("list")
def list_presets() -> None:
    """Every preset with its corpus and title."""
    from pipeline.experiments import preset

    t = Table(title="experiment presets (pipeline experiment show NAME)")
    for col in ("name", "dataset", "runs", "title"):
        t.add_column(col, overflow="fold")
    for name in preset.names():
        p = preset.load(name)
        t.add_row(name, p.dataset, str(len(p.runs)) + (" + pretraining" if p.pretrain else ""), escape(p.title))
    console.print(t)


@app.command("show")
def show(name: str = typer.Argument(..., help="preset name or .yaml path")) -> None:
    """The preset as resolved (after `extends`), with its generated "differs from the paper" list."""
    import yaml

    from pipeline.errors import ConfigError
    from pipeline.experiments import preset

    try:
        p = preset.load(name)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    from pipeline.experiments.paper_spec import differs

    shown = {k: v for k, v in p.__dict__.items() if k not in ("differs", "spec", "changed")}
    console.print(escape(yaml.safe_dump(shown, sort_keys=False, width=110)), highlight=False)
    console.print("differs from the paper (generated from its paper spec; a run adds what the data shows):",
                  highlight=False)
    for line in differs(p) + list(p.differs):
        console.print(escape(f"- {line}"), highlight=False)


@app.command("run")
def run(
    name: str = typer.Argument(..., help="preset name (pipeline experiment list) or .yaml path"),
    root: Path = typer.Option(..., help="corpus root as unpacked"),
    out: Path = typer.Option(..., help="experiment directory (store, runs, table.md, experiment.json)"),
    store: str | None = typer.Option(None, help="feature store", show_default="OUT/store.zarr"),
    models: Path | None = typer.Option(None, help="model directory for learned weights",
                                       show_default="$PIPELINE_MODELS or ~/.cache/affect-pipeline/models"),
    cluster: Path | None = typer.Option(None, help="dask_cluster.yaml (default: embedded LocalCluster)"),
    pretrained: str | None = typer.Option(None, help="pretraining checkpoint to fine-tune", show_default=(
        "OUT/../PRETRAINED_FROM/pretrain/pretrained.pt")),
    set_: list[str] = typer.Option([], "--set", help="extractor option EXTRACTOR.OPTION=VALUE (listed as a "
                                   "difference from the paper)"),
    override: list[str] = typer.Option([], help="training option NAME=VALUE for every run, e.g. epochs=1 "
                                       "(listed as a difference from the paper)"),
    substitute: list[str] = typer.Option([], help="use extractor NEW in place of OLD: OLD=NEW (listed as a "
                                         "difference from the paper)"),
    limit: int | None = typer.Option(None, help="only the first N clips of the manifest"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    no_finetune: bool = typer.Option(False, "--no-finetune", help="skip the preset's backbone fine-tuning step "
                                     "(public checkpoints; listed as a difference from the paper)"),
    finetune_override: list[str] = typer.Option([], help="fine-tuning option NAME=VALUE for every backbone, e.g. "
                                                "epochs=1 (listed as a difference from the paper)"),
    keep: str = typer.Option("best", help="checkpoints kept once each run is complete: all | best (best.pt, "
                             "for `pipeline evaluate`) | last (checkpoint.pt) | none (metrics only)"),
) -> None:
    """Run a preset end to end and print the paper-style table (also OUT/table.md)."""
    from extractors.weights import WeightsError
    from pipeline.errors import ConfigError
    from pipeline.experiments import preset
    from pipeline.experiments.runner import run_experiment, table
    from pipeline.runtime.stop import RunStopped, TrainingSignals

    signals = TrainingSignals()
    try:
        from extractors import weights

        weights.set_models_dir(str(models) if models else None)  # the user's own weights are named in checks
        p = preset.customise(preset.load(name), set_, override, substitute, finetune_override, no_finetune)
        with signals:  # extraction installs its own two-step handlers inside
            result = run_experiment(p, str(root), out, store, str(models) if models else None,
                                    str(cluster) if cluster else None, limit, pretrained, quiet, log=console.print,
                                    keep=keep)
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM while training: every finished epoch is checkpointed
        console.print("[yellow]stopped[/yellow] while training; finished runs and epochs are kept: run the same "
                      "command again to resume", highlight=False)
        raise typer.Exit(signals.exit_code()) from None
    except (ConfigError, FileNotFoundError, ValueError, WeightsError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RunStopped as exc:  # Ctrl-C / SIGTERM during extraction: the same command resumes
        console.print(f"[yellow]stopped:[/yellow] {exc}; run the same command again to resume", highlight=False)
        raise typer.Exit(exc.code) from None
    console.print(escape(table(p, result)), highlight=False)
