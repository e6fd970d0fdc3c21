"""The `pipeline` command line. Choices (datasets, extractors) come from the registries."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from extractors import registry
from pipeline.cli import experiments as cli_experiment
from pipeline.cli import finetune as cli_finetune
from pipeline.cli import models as cli_models
from pipeline.cli import training as cli_train
from pipeline.datasets import manifest
from pipeline.engine.config import DEFAULT_EXTRACTORS, ExtractConfig
from pipeline.errors import ConfigError, StoreError, StoreLockedError
from pipeline.runtime.stop import RunStopped
from stores.views import DEFAULT_RATE

if TYPE_CHECKING:
    from pipeline.engine.run import RunReport

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Decode-once audio-visual feature extraction into a crash-safe Zarr store.")
out = Console(soft_wrap=True)
err = Console(stderr=True)


@app.callback()
def _driver_process() -> None:
    """Before any command: the driver reads many small index files, and Arrow's default allocator
    (mimalloc) keeps every freed page, so its RSS would only grow; the system allocator returns them."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def extract(
    dataset: str = typer.Option(..., help=f"dataset adapter: {', '.join(manifest.dataset_names())}"),
    root: Path = typer.Option(..., help="corpus root as unpacked (or the CSV file for --dataset csv)"),
    store: str = typer.Option(..., help="store path or URL (zarr/fsspec), created if missing"),
    extractors: str | None = typer.Option(
        None, help=f"comma-separated, from: {', '.join(registry.names())}", show_default=",".join(DEFAULT_EXTRACTORS)),
    set_: list[str] = typer.Option([], "--set", help="extractor option, EXTRACTOR.OPTION=VALUE (repeatable)"),
    rate: float = typer.Option(DEFAULT_RATE, help="common frame rate of the aligned view (Hz)"),
    min_confidence: float | None = typer.Option(None, help="alignment: drop frames below this confidence (Tran & "
                                                "Soleymani: 0.8 on OpenFace's)"),
    align_method: str = typer.Option("mean", help="alignment: mean (average the native frames in each window) or "
                                     "subsample (one native frame per window)"),
    max_duration_gap: float | None = typer.Option(1.0, help="alignment: exclude clips whose audio and video "
                                                     "durations differ by more (s); negative disables"),
    cluster: Path | None = typer.Option(None, help="dask_cluster.yaml (default: embedded LocalCluster)"),
    limit: int | None = typer.Option(None, help="only the first N clips of the manifest"),
    force: bool = typer.Option(False, help="recompute even what is cached"),
    dry_run: bool = typer.Option(False, help="print clips, frames, extractor calls and an estimate; do no work"),
    allow_failures: bool = typer.Option(False, help="exit 0 even when some clips failed (git-LFS pointers become "
                                                 "failed rows instead of refusing the run)"),
    shard_size: int | None = typer.Option(None, show_default="auto", help="clips per Dask task (auto: enough "
                                          "tasks to keep every worker busy, at most 16)"),
    dtype: str = typer.Option("float32", help="stored value type: float32 or float16"),
    device: str = typer.Option("auto", help="auto, cpu or cuda (GPU extractors)"),
    precision: str | None = typer.Option(None, show_default="fp32", help="fp32 or bf16 (bfloat16 autocast: GPU "
                                         "throughput, ~3 significant digits) for every PyTorch extractor; part of "
                                         "the cache key; one extractor: --set NAME.precision=bf16"),
    face_detector: str = typer.Option("auto", help="face detector of the shared face stage: mtcnn (CNN with "
                                      "landmarks; `pipeline models fetch MTCNN`), haar (needs nothing, finds fewer "
                                      "faces), or auto (mtcnn where installed, else haar)"),
    face_every: int = typer.Option(5, help="run the face detector every N frames, track with optical flow between"),
    min_face: float = typer.Option(0.05, help="smallest face to find, as a fraction of the frame's shorter side "
                                              "(at least 20 px)"),
    max_side: int | None = typer.Option(None, help="downscale frames whose longer side exceeds this"),
    models: Path | None = typer.Option(None, help="model directory for learned weights",
                                        show_default="$PIPELINE_MODELS or ~/.cache/affect-pipeline/models"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    fingerprint: str = typer.Option("content", help="how media is recognised for the cache: content (size + first "
                                    "and last 64 KiB; survives moves) or stat (size + mtime + inode; no reads, for "
                                    "network filesystems; a touch or move counts as a change) or full (every byte, "
                                    "xxHash3: a damaged copy with intact ends is told apart; reads whole files)"),
    progress_every: float = typer.Option(30.0, help="seconds between progress lines when stderr is not a terminal "
                                                    "(batch jobs)"),
    as_json: bool = typer.Option(False, "--json", help="print the run report as JSON on stdout"),
) -> None:
    """Extract features for every clip of a dataset into a store (only what is not cached)."""
    from pipeline.engine.run import extract as run_extract

    try:
        cfg = ExtractConfig.create(
            dataset, root, store, extractors=extractors, settings=set_, precision=precision, rate=rate,
            min_confidence=min_confidence, max_duration_gap=max_duration_gap, align_method=align_method,
            face_detector=face_detector, face_every=face_every, min_face=min_face, cluster_file=cluster,
            models_dir=models, limit=limit, force=force, dry_run=dry_run, allow_failures=allow_failures,
            shard_size=shard_size, dtype=dtype, device=device, max_side=max_side, progress=not quiet,
            progress_every=progress_every, fingerprint=fingerprint)
        report = run_extract(cfg, err)
    except (ConfigError, ValueError, StoreLockedError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    except RunStopped as exc:
        err.print(f"[yellow]stopped:[/yellow] {exc}", highlight=False, soft_wrap=True)
        if as_json and exc.report is not None:
            print(json.dumps(asdict(exc.report), indent=1))
        raise typer.Exit(exc.code) from None
    if as_json:
        print(json.dumps(asdict(report), indent=1))
    else:
        _print_report(report)
    if report.task_errors or (report.counts.get("failed", 0) and not allow_failures and not dry_run):
        raise typer.Exit(1)


def _print_report(r: RunReport) -> None:
    if r.dry_run:
        e = r.estimate
        calls = sum(e["extractor_calls"].values())
        out.print(f"dry run: {r.clips} clips, {r.planned} need work in {e['shards']} tasks ({calls} extractor calls; "
                  f"the rest of the work re-aligns or reuses stored results); {e['media_seconds']} s of media, "
                  f"{e['frames']} video frames")
        out.print(f"extractor calls (clips): {e['extractor_calls']}; cached: {r.cached}")
        if "stages" in e:
            t = Table(title="estimate per stage (one thread)")
            for col in ("stage", "media s", "s per media s", "seconds", "measured by"):
                t.add_column(col, overflow="fold")
            for stage, v in e["stages"].items():
                rate = "-" if v["s_per_media_s"] is None else f"{v['s_per_media_s']:.3f}"
                t.add_row(stage, f"{v['media_s']:.0f}", rate, "-" if v["seconds"] is None else f"{v['seconds']:.0f}",
                          escape(v["basis"]))
            out.print(t)
            out.print(f"estimated compute: {e['compute_seconds']} s on one thread", highlight=False)
            if "wall_seconds" in e:
                out.print(f"estimated wall time: {e['wall_seconds']} s ({e['wall_seconds_basis']})", highlight=False)
        return
    out.print(f"run {r.run_id}: {r.clips} clips, {r.planned} needed work; cached per extractor: {r.cached}")
    out.print(f"extractor calls: {r.calls}; entries ok {r.counts['ok']}, failed {r.counts['failed']}; "
              f"{r.wall_s:.1f} s")
    for line in r.failures[:20]:
        out.print(f"  [yellow]failed[/yellow] {line}", highlight=False)
    if len(r.failures) > 20:
        out.print(f"  ... and {len(r.failures) - 20} more (pipeline status STORE)")
    for line in r.task_errors:
        out.print(f"  [red]task error[/red] {line}", highlight=False)


@app.command()
def status(
    store: str = typer.Argument(..., help="store path or URL"),
    min_valid: float = typer.Option(0.5, help="warn about clips whose share of valid frames (mask True, e.g. a "
                                              "face found) is below this"),
) -> None:
    """Per extractor: done / failed / excluded counts, the share of valid frames, and the failures table."""
    from stores.feature_store import FeatureStore
    from stores.lock import StoreLock
    from stores.status import summary

    try:
        fs = FeatureStore(store)
        running = StoreLock.held_by(fs.fs)
        counts, problems, low = summary(fs, min_valid)
    except (FileNotFoundError, StoreError) as exc:
        raise _fail(str(exc)) from None
    if running:
        err.print(f"note: a run is in progress on this store ({escape(running)}): the counts are what it had "
                  "committed when they were read", highlight=False, soft_wrap=True)
    t = Table(title=f"store {store}")
    for col in ("stage", "view", "extractor", "ok", "failed", "excluded", "valid frames",
                f"clips < {min_valid:.0%} valid"):
        t.add_column(col)
    for r in counts.itertuples(index=False):
        share = "-" if r.valid != r.valid else f"{r.valid:.0%}"  # NaN: no ok entry, or a store from before
        t.add_row(r.stage, r.view, r.extractor, str(r.ok), str(r.failed), str(r.excluded), share,
                  str(r.low_valid) if r.low_valid else "")
    out.print(t)
    for ext, rows in low.groupby("extractor", sort=True):
        shown = ", ".join(f"{c} ({v:.0%})" for c, v in zip(rows["clip_id"][:5], rows["valid"][:5]))
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        out.print(f"[yellow]warning:[/yellow] {ext}: {len(rows)} clips have fewer than {min_valid:.0%} valid frames "
                  f"(stored as ok, but mostly empty: for face extractors, no face found): {shown}{more}",
                  highlight=False)
    if len(problems):
        p = Table(title="failures and exclusions")
        for col in ("clip_id", "stage", "extractor", "status", "reason"):
            p.add_column(col, overflow="fold")
        for r in problems.itertuples(index=False):
            p.add_row(r.clip_id, r.stage + (f"/{r.view}" if r.view else ""), r.extractor, r.status, r.reason)
        out.print(p)


@app.command()
def verify(
    store: str = typer.Argument(..., help="store path or URL"),
    repair: bool = typer.Option(False, help="mark every damaged entry as failed, so the next extract recomputes "
                                            "exactly those; rewrite the root metadata, move damaged index, "
                                            "manifest and group files aside into damaged/"),
    cluster: Path | None = typer.Option(None, help="dask_cluster.yaml (default: embedded LocalCluster)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Check every committed chunk (present, CRC-32C, decodes) and entry (finite, shapes and offsets match the index).

    Exit 1 when anything is wrong, one line per damaged entry."""
    from pipeline.engine.verify_tasks import run_verify

    try:
        r = run_verify(store, str(cluster) if cluster else None, fix=repair, console=err, progress=not quiet)
    except (ConfigError, StoreError, StoreLockedError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    except RunStopped as exc:
        err.print(f"[yellow]stopped:[/yellow] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.code) from None
    for p in r.problems:
        out.print(f"[red]problem[/red] {escape(p.line())}", highlight=False, soft_wrap=True)
    for line in r.files_repaired:
        out.print(f"repaired {escape(line)}", highlight=False, soft_wrap=True)
    if r.repaired:
        out.print(f"marked {r.repaired} entries for recomputation; run your `pipeline extract` command again to "
                  "recompute exactly those", highlight=False)
    if r.problems:
        if not repair:
            out.print(f"{len(r.problems)} problem(s) in {r.parts} parts / {r.entries} entries; "
                      f"`pipeline verify {store} --repair` marks the damaged entries for recomputation",
                      highlight=False)
        raise typer.Exit(1)
    out.print(f"store {store}: OK ({r.parts} parts, {r.entries} entries, every chunk present and checksummed)")


@app.command()
def prune(
    store: str = typer.Argument(..., help="store path"),
    dataset: str = typer.Option(..., help="the dataset whose clips to keep (as for extract)"),
    root: Path = typer.Option(..., help="its root (or the CSV file for --dataset csv)"),
) -> None:
    """Keep only the clips a dataset names now: drop the others from the manifest and the index (the manifest
    accumulates every run's clips; docs/own-data.md)."""
    from stores.feature_store import FeatureStore
    from stores.lock import StoreLock
    from stores.prune import prune as run_prune

    try:
        keep = set(manifest.build(dataset, root)["clip_id"])
        s = FeatureStore(store)
        with StoreLock(s.fs):
            clips, entries, parts = run_prune(s, keep)
    except (ConfigError, StoreError, StoreLockedError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"kept the {len(keep)} clips of {dataset} at {root}; dropped {clips} clips from the manifest, "
              f"{entries} index entries, {parts} parts no entry used", highlight=False)


datasets_app = typer.Typer(help="Dataset recipes: list them, or check a copy of a corpus.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """Every dataset recipe, with its expected layout (`pipeline datasets check` checks a copy)."""
    if ctx.invoked_subcommand is not None:
        return
    t = Table()
    for col in ("name", "description", "layout"):
        t.add_column(col, overflow="fold")
    for name in manifest.dataset_names():
        a = manifest.get_dataset(name)
        t.add_row(name, escape(a.description), escape(a.layout))
    out.print(t)


@datasets_app.command("check")
def datasets_check(
    dataset: str = typer.Option(..., help=f"dataset recipe: {', '.join(manifest.dataset_names())}"),
    root: Path = typer.Option(..., help="the corpus as unpacked from the official release"),
) -> None:
    """Compare a copy with the official counts; list missing, empty and LFS-pointer files. Exit 1 if unusable."""
    try:
        adapter = manifest.get_dataset(dataset)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    r = adapter.check(root)
    t = Table(title=f"{dataset} at {root}")
    for col in ("count", "found", "official"):
        t.add_column(col, overflow="fold")
    for key, found in r.found.items():
        t.add_row(escape(key), escape(str(found)), escape(str(r.expected.get(key, "-"))))
    out.print(t)
    for title, items in (("missing files", r.missing), ("empty files", r.empty),
                         ("git-LFS pointer files", r.lfs_pointers), ("unreadable media", r.unreadable),
                         ("extra files (not taken)", r.extra), ("known bad clips (kept, flagged)",
                                                                    r.known_issues), ("warnings", r.warnings)):
        if items:
            out.print(f"[bold]{title}[/bold] ({len(items)}):")
            for item in items[:50]:
                out.print(f"  {item}", highlight=False)
            if len(items) > 50:
                out.print(f"  ... and {len(items) - 50} more")
    for e in r.errors:
        out.print(f"[red]error[/red] {e}", highlight=False)
    if not r.usable:
        out.print(f"[red]this copy of {dataset} cannot be used[/red]")
        raise typer.Exit(1)
    out.print(f"[green]this copy of {dataset} is usable[/green]")


@app.command()
def extractors() -> None:
    """Every extractor, with its modality, size, rate and whether it runs on this machine."""
    t = Table()
    for col in ("name", "version", "modality", "input", "dim", "rate", "gpu", "available"):
        t.add_column(col)
    for name in registry.names():
        cls = registry.get(name)
        ok, why = cls.available()
        ext = cls()
        t.add_row(name, cls.version, cls.modality, cls.input, str(ext.dim), ext.rate_label,
                  "yes" if cls.wants_gpu else "no",
                  escape(("yes" if why == "ok" else f"yes: {why}") if ok else f"no: {why}"))
    out.print(t)


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--dir", help="where the corpus and the store go"),
    seed: int = typer.Option(0, help="corpus seed"),
    cluster: Path | None = typer.Option(None, help="dask_cluster.yaml (default: LocalCluster)"),
    train: bool = typer.Option(True, help="then pretrain, fine-tune and compare models on the store"),
) -> None:
    """Generate the synthetic corpus, extract every offline extractor, then train the papers' models on it."""
    from pipeline.datasets.demo import DEMO, generate
    from pipeline.engine.run import extract as run_extract

    corpus, store = out_dir / "corpus", out_dir / "store.zarr"
    err.print(f"generating the demo corpus in {corpus} (seed {seed}) ...")
    generate(corpus, seed=seed, **DEMO)
    cfg = ExtractConfig.create("demo", corpus, store, cluster_file=cluster)
    report = run_extract(cfg, err)
    _print_report(report)
    status(str(store), 0.5)
    if train:
        from train.demo import demo_training

        md = demo_training(str(store), out_dir / "runs", log=err.print)
        (out_dir / "results.md").write_text(md + "\n")
        out.print("\n" + md)
    out.print(f"\nThe store is at [bold]{store}[/bold]. Next:\n"
              f"  pipeline verify {store}\n"
              f"  pipeline extract --dataset demo --root {corpus} --store {store} --rate 10   "
              "(re-aligns from stored features, no decoding)\n"
              "  read it without this package: docs/store.md\n"
              f"  pipeline train --store {store} --model mult --size small --out runs/mine")
    if report.counts["failed"] or report.task_errors:
        raise typer.Exit(1)


app.add_typer(cli_models.app, name="models")
app.add_typer(cli_experiment.app, name="experiment")
app.command("pretrain")(cli_train.pretrain)
app.command("train")(cli_train.train)
app.command("evaluate")(cli_train.evaluate)
app.command("finetune")(cli_finetune.finetune)


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
