"""`pipeline experiment run PRESET`: a seed paper's experiment end to end from a corpus root.

Extract what the store lacks (cached results cost nothing), pretrain if the preset does, train and
evaluate every run, and write a table laid out like the paper's — our mean ± sd beside the paper's
number where the preset records one — with the paper's comparative claims checked on our numbers and
the "differs from the paper" list under it (``OUT/table.md``, ``OUT/experiment.json``)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.engine.config import ExtractConfig
from pipeline.errors import ConfigError
from pipeline.experiments import backbones
from pipeline.experiments.preset import Preset, merge, train_config
from stores.views import DEFAULT_RATE

Log = Callable[[str], None]


def extract_config(preset: Preset, root: str, store: str, models_dir: str | None = None,
                   cluster_file: str | None = None, limit: int | None = None, quiet: bool = False) -> ExtractConfig:
    e = preset.extract
    return ExtractConfig.create(preset.dataset, root, store, extractors=e["extractors"],
                                rate=e.get("rate", DEFAULT_RATE), min_confidence=e.get("min_confidence"),
                                max_duration_gap=e.get("max_duration_gap", 1.0), align_method=e.get("method", "mean"),
                                models_dir=models_dir, cluster_file=cluster_file, limit=limit, progress=not quiet,
                                allow_failures=True, select=e.get("select"))


def run_configs(preset: Preset, store: str, out: Path, pretrained: str | None = None,
                keep: str = "best") -> list[tuple[str, Any]]:
    """(run name, TrainConfig) per run of the preset, in order; ``keep``: the checkpoints kept (TrainConfig.keep)."""
    configs = []
    for i, run in enumerate(preset.runs):
        if "best_of" in run:  # no training of its own (best_of below)
            continue
        fields = merge({"view": preset.view, "keep": keep}, merge(preset.train, run.get("train") or {}))
        if str(fields.get("pretrained")).startswith("auto:"):  # another preset's pretraining (the LARGE one)
            other = fields["pretrained"].split(":", 1)[1]
            path = out.parent / other / "pretrain" / "pretrained.pt"
            if not path.is_file():
                raise ConfigError(f"preset {preset.name}, run {run['name']!r} fine-tunes the pretraining of {other}, "
                                  f"and {path} does not exist: run `pipeline experiment run {other} --out "
                                  f"{out.parent / other} ...` first")
            fields["pretrained"] = str(path)
        if fields.get("pretrained") == "auto":  # the run fine-tunes the preset's pretraining
            if not pretrained:
                raise ConfigError(f"preset {preset.name}, run {run['name']!r}: `pretrained: auto` needs "
                                  "`pretrained_from` in the preset or --pretrained PATH")
            fields["pretrained"] = pretrained
        configs.append((run["name"], train_config(fields, store=store, out=str(out / f"run{i:02d}"))))
    return configs


def find_pretrained(preset: Preset, out: Path, given: str | None) -> str | None:
    if given or not preset.pretrained_from:
        return given
    path = out.parent / preset.pretrained_from / "pretrain" / "pretrained.pt"
    if not path.is_file():
        raise ConfigError(f"preset {preset.name} fine-tunes the pretraining of {preset.pretrained_from}, and "
                          f"{path} does not exist: run `pipeline experiment run {preset.pretrained_from} --out "
                          f"{out.parent / preset.pretrained_from} ...` first, or pass --pretrained PATH")
    return str(path)


def run_experiment(preset: Preset, root: str, out: Path, store: str | None = None, models_dir: str | None = None,
                   cluster_file: str | None = None, limit: int | None = None, pretrained: str | None = None,
                   quiet: bool = False, log: Log = print, keep: str = "best") -> dict:
    from pipeline.engine.run import extract
    from pipeline.experiments.paper_spec import differs
    from train.pretrain import pretrain

    if not Path(root).exists():  # before any weights check, fine-tuning or extraction
        raise ConfigError(f"--root {root} does not exist")
    store = store or str(out / "store.zarr")
    pretrained = find_pretrained(preset, out, pretrained)
    configs = run_configs(preset, store, out, pretrained, keep)  # a bad setting refused now, not after hours
    out.mkdir(parents=True, exist_ok=True)
    streams = backbones.finetune_all(preset, root, out, models_dir, limit, log)  # fine-tuned backbones first
    to_extract = dataclasses.replace(preset, extract={**preset.extract, "extractors": backbones.extractors_with_streams(
        preset, streams)}) if streams else preset
    log(f"{preset.title}\nextracting {', '.join(to_extract.extract['extractors'])} from {root} into {store} ...")
    report = extract(extract_config(to_extract, root, store, models_dir, cluster_file, limit, quiet),
                     Console(stderr=True, quiet=quiet))
    if report.task_errors:
        raise ConfigError(f"preset {preset.name}: extraction tasks failed ({report.task_errors[0]}); "
                          "`pipeline status` lists them, and the same command retries only what is missing")
    result: dict[str, Any] = {"preset": preset.name, "title": preset.title, "paper": preset.paper,
                              "store": store, "extract": {"clips": report.clips, "counts": report.counts,
                                                          "failures": report.failures[:20]},
                              "runs": [], "warnings": []}
    notes = list(preset.differs)
    if report.counts.get("failed"):
        notes.append(f"{report.counts['failed']} clip(s) failed extraction and are left out "
                     "(`pipeline status` names them)")
    if preset.pretrain:
        cfg = train_config(merge({"view": preset.view}, preset.pretrain), store=store, out=str(out / "pretrain"),
                           label=None)
        log(f"pretraining {cfg.model} ({cfg.size}) without labels ...")
        path = pretrain(cfg, log=lambda *a: None)
        history = json.loads((out / "pretrain" / "pretrain.json").read_text())["history"]
        result["pretrain"] = {"checkpoint": str(path), "final": history[-1] if history else {}}
    for name, cfg in configs:  # best_of rows come after
        log(f"training {name} ...")
        said: list[str] = []  # the trainer's warnings reach the table (classes absent from training, ...)
        try:
            res = _train(cfg, streams, lambda line, said=said: said.append(line.strip()) if "warning" in line else None)
        except (ValueError, RuntimeError) as exc:  # a run that cannot train is a row saying why; the rest runs
            result["runs"].append({"name": name, "out": cfg.out, "summary": {}, "error": str(exc)})
            log(f"  {name}: could not train: {exc}")
            continue
        finally:
            for line in dict.fromkeys(said):
                log(f"  {name}: {line}")
                result["warnings"].append(f"{name}: {line}")
        result["runs"].append({"name": name, "out": cfg.out, "summary": res["summary"],
                               "folds": len(res["folds"])})
    for i, spec in enumerate(preset.runs):  # rows chosen among other runs' arms by validation, fold by fold
        if "best_of" in spec:
            result["runs"].insert(i, best_of(spec, result["runs"], out))
    result["claims"] = [check_claim(c, result["runs"]) for c in preset.claims]
    folds = [r["folds"] for r in result["runs"] if "folds" in r]
    facts = {"data.clips": report.clips, **({"data.folds_formed": min(folds)} if folds else {})}
    used = [json.loads(p.read_text()).get("clips") for p in sorted(out.glob("run*/**/provenance.json"))[:1]]
    if used and used[0] is not None:  # the labelled clips with every feature that the first run trained on
        facts["data.clips_trained"] = used[0]
    result["differs"] = differs(preset, facts) + notes
    (out / "experiment.json").write_text(json.dumps(result, indent=1, default=str))
    text = table(preset, result)
    (out / "table.md").write_text(text + "\n")
    return result


def _train(cfg: Any, streams: backbones.Streams, log: Log) -> dict:
    """One run; with per-fold fine-tuned backbones, each fold on its own streams, then summarised together."""
    from train.trainer import run, summarise

    parts = backbones.fold_configs(cfg, streams)
    if len(parts) == 1:
        return run(parts[0][1], log=log)
    folds: dict = {}
    for _, fold_cfg in parts:
        folds |= run(fold_cfg, log=log)["folds"]
    return {"folds": folds, "summary": summarise(folds)}


def _variant_label(variant: str) -> str:
    kind, pct = variant.rsplit("_", 1)
    pct = pct.removesuffix("pct")
    return ("" if kind == "model" else f"{kind}, ") + f"{pct} % labels"


PERCENT = ("accuracy", "unweighted_accuracy", "macro_f1")  # shown in %, as the papers print them


def _percent(metric: str) -> bool:
    return metric in PERCENT or metric.endswith("_accuracy")


def _paper_value(run: dict, variant: str, metric: str, preset: Preset) -> str:
    spec = next((r for r in preset.runs if r["name"] == run["name"]), {})
    paper = (spec.get("paper") or {}).get(variant, spec.get("paper") or {})
    value = paper.get(metric) if isinstance(paper, dict) else None
    return "—" if value is None else f"{value}"


def _ours(v: dict | None, metric: str) -> str:
    if v is None:
        return "—"
    k = 100 if _percent(metric) else 1
    digits = 2 if _percent(metric) else 3
    return f"{v['mean'] * k:.{digits}f} ± {v['std'] * k:.{digits}f} (n={v['n']})"


def table(preset: Preset, result: dict) -> str:
    """Markdown: one row per run and variant; ours (mean ± sample sd, n runs) then the paper's figure, per metric,
    in the paper's unit (accuracies and F1 in %, CCC and MAE as fractions)."""
    unit = lambda m: " %" if _percent(m) else ""  # noqa: E731
    head = "| run | variant | " + " | ".join(f"{m}{unit(m)} (ours) | {m}{unit(m)} (paper)" for m in preset.metrics)
    lines = [f"## {preset.title}", "", f"Paper: {preset.paper}", ""]
    if result["runs"]:
        lines += [head + " |", "|" + "---|" * (2 + 2 * len(preset.metrics))]
    for run in result["runs"]:
        if run.get("error"):
            lines.append(f"| {run['name']} | could not train: {run['error']} |" + " — |" * (2 * len(preset.metrics)))
            continue
        variants = sorted(run["summary"].items()) or [("model_100pct", {})]
        for variant, s in variants:
            cells = []
            for m in preset.metrics:
                cells += [_ours(s.get(m), m), _paper_value(run, variant, m, preset)]
            lines.append(f"| {run['name']} | {_variant_label(variant)} | " + " | ".join(cells) + " |")
    if result.get("pretrain"):
        f = result["pretrain"]["final"]
        lines += ["", f"Pretraining: {f.get('epoch', 0)} epochs; last epoch's masked-frame L1: train "
                      f"{f.get('train_l1', math.nan):.4f}, validation {f.get('val_l1', math.nan):.4f} "
                      f"({result['pretrain']['checkpoint']})"]
    if result.get("claims"):
        lines += ["", "Claims of the paper, on our numbers:"]
        lines += [f"- {c['text']}: ours {c['ours']} — {c['verdict']}" for c in result["claims"]]
    if result.get("warnings"):
        lines += ["", "Warnings of the runs:"] + [f"- {w}" for w in result["warnings"]]
    lines += ["", "Differs from the paper (generated from the preset's paper spec and the resolved run):"]
    lines += [f"- {d}" for d in result["differs"]] or ["- nothing known"]
    return "\n".join(lines)


def best_of(run: dict, runs: list[dict], out: Path) -> dict:
    """The paper's "w/o pretraining" row: per fold and label fraction, the candidate arm (``"RUN/ARM"``) whose kept
    model scored best on validation, with its test metrics; summarised like any run."""
    from train.trainer import summarise

    chosen: dict[str, dict] = {}
    for ref in run["best_of"]:
        name, arm = ref.rsplit("/", 1)
        src = next((r for r in runs if r["name"] == name and "out" in r), None)
        path = Path(src["out"]) / "metrics.json" if src else None
        if not path or not path.exists():
            continue
        for fold, variants in json.loads(path.read_text())["folds"].items():
            for key, res in variants.items():
                if not key.startswith(f"{arm}_"):
                    continue
                new = key.replace(arm, "scratch", 1)
                old = chosen.setdefault(fold, {}).get(new)
                if old is None or res.get("validation_score", -math.inf) > old.get("validation_score", -math.inf):
                    chosen[fold][new] = {**res, "from": name}
    if not chosen:
        return {"name": run["name"], "summary": {}, "error": f"none of {run['best_of']} trained"}
    picked = sorted({r["from"] for f in chosen.values() for r in f.values()})
    return {"name": run["name"], "summary": summarise(chosen), "folds": len(chosen), "picked": picked}


def check_claim(claim: dict, runs: list[dict]) -> dict:
    """``better`` beats ``worse`` (run name / variant, or a number: a cited figure) on ``metric`` (``worse_metric``
    for the worse side: MATER's fused vs one branch) by at least ``margin``; a tie does not hold."""
    def value(ref: str | float, metric: str) -> float:
        if isinstance(ref, int | float):
            return float(ref)
        name, variant = ref.rsplit("/", 1)
        run = next((r for r in runs if r["name"] == name), None)
        s = (run or {}).get("summary", {}).get(variant, {}).get(metric)
        return s["mean"] if s else math.nan

    diff = value(claim["better"], claim["metric"]) - value(claim["worse"], claim.get("worse_metric", claim["metric"]))
    margin = float(claim.get("margin", 0.0))
    # "beats": strictly better, and by the margin where the paper states one (a tie does not hold)
    verdict = "not measured" if math.isnan(diff) else "holds" if diff > 0 and diff >= margin else "does not hold here"
    return {"text": claim["text"], "ours": "—" if math.isnan(diff) else f"{diff:+.3f}", "verdict": verdict}
