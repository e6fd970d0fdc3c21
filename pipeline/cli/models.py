"""`pipeline models list | fetch | add`: the learned weights, where they are and whether they check out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Learned weights: list their state, fetch them (internet), or add a copy you have.")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # errors: one line on stderr, as the other commands
_DIR = typer.Option(None, "--models", help="model directory",
                    show_default="$PIPELINE_MODELS or ~/.cache/affect-pipeline/models")


@app.command("list")
def list_models(models: Path | None = _DIR) -> None:
    """Every registered model with its state: present / missing / checksum mismatch / unpinned."""
    from extractors import weights

    root = weights.models_dir(str(models) if models else None)
    t = Table(title=f"models in {root}")
    for col in ("name", "state", "source", "licence"):
        t.add_column(col, overflow="fold")
    for name, w in weights.all_weights().items():
        status, _ = weights.state(w, root)
        t.add_row(name, status, escape(w.source), escape(w.licence))
    console.print(t)


@app.command("fetch")
def fetch(name: str = typer.Argument(..., help="model name (pipeline models list)"),
          models: Path | None = _DIR) -> None:
    """Download a model (needs internet) and record its sha256."""
    from extractors import weights

    try:
        path = weights.fetch(name, models)
    except weights.WeightsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    console.print(f"{name}: installed in {path}")


@app.command("add")
def add(name: str = typer.Argument(..., help="model name (pipeline models list)"),
        path: Path = typer.Argument(..., help="the weights file, or the folder holding the model's files"),
        like: str | None = typer.Option(None, help="register NAME as your own weights (e.g. a fine-tuned "
                                                   "checkpoint) for the architecture of this registered model"),
        models: Path | None = _DIR) -> None:
    """Register weights you already have: copied into the model directory, checked, sha256 recorded."""
    from extractors import weights

    try:
        fresh = like is not None and not (weights.models_dir(str(models) if models else None) / name).exists()
        if like:
            weights.define_custom(name, like, models)
        try:
            folder = weights.add(name, path, models)
        except weights.WeightsError:
            if fresh:  # the declaration made for this call goes too: nothing is left of a refused add
                weights.forget_custom(name, models)
            raise
    except weights.WeightsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    console.print(f"{name}: installed in {folder}")
