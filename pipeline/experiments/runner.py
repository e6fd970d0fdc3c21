"""`pipeline experiment run PRESET`: a seed paper's experiment end to end from a corpus root.

Extract what the store lacks (cached results cost nothing), pretrain if the preset does, train and
evaluate every run, and write a table laid out like the paper's — our mean ± sd beside the paper's
number where the preset records one — with the paper's comparative claims checked on our numbers and
the "differs from the paper" list under it (``OUT/table.md``, ``OUT/experiment.json``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.engine.config import ExtractConfig
from pipeline.errors import ConfigError
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
                                allow_failures=True)


def run_configs(preset: Preset, store: str, out: Path, pretrained: str | None = None) -> list[tuple[str, Any]]:
    """(run name, TrainConfig) per run of the preset, in order."""
    configs = []
    for i, run in enumerate(preset.runs):
        fields = merge({"view": preset.view}, merge(preset.train, run.get("train") or {}))
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
                   quiet: bool = False, log: Log = print) -> dict:
    from pipeline.engine.run import extract
    from train.pretrain import pretrain
    from train.trainer import run

    out.mkdir(parents=True, exist_ok=True)
    store = store or str(out / "store.zarr")
    pretrained = find_pretrained(preset, out, pretrained)
    log(f"{preset.title}\nextracting {', '.join(preset.extract['extractors'])} from {root} into {store} ...")
    report = extract(extract_config(preset, root, store, models_dir, cluster_file, limit, quiet),
                     Console(stderr=True, quiet=quiet))
    if report.task_errors:
        raise ConfigError(f"preset {preset.name}: extraction tasks failed ({report.task_errors[0]}); "
                          "`pipeline status` lists them, and the same command retries only what is missing")
    result: dict[str, Any] = {"preset": preset.name, "title": preset.title, "paper": preset.paper,
                              "store": store, "extract": {"clips": report.clips, "counts": report.counts,
                                                          "failures": report.failures[:20]},
                              "differs": list(preset.differs), "runs": []}
    if report.counts.get("failed"):
        result["differs"].append(f"{report.counts['failed']} clip(s) failed extraction and are left out "
                                 "(`pipeline status` names them)")
    if preset.pretrain:
        cfg = train_config(merge({"view": preset.view}, preset.pretrain), store=store, out=str(out / "pretrain"),
                           label=None)
        log(f"pretraining {cfg.model} ({cfg.size}) without labels ...")
        path = pretrain(cfg, log=lambda *a: None)
        history = json.loads((out / "pretrain" / "pretrain.json").read_text())["history"]
        result["pretrain"] = {"checkpoint": str(path), "final": history[-1] if history else {}}
    for name, cfg in run_configs(preset, store, out, pretrained):
        log(f"training {name} ...")
        res = run(cfg, log=lambda *a: None)
        result["runs"].append({"name": name, "out": cfg.out, "summary": res["summary"]})
    result["claims"] = [check_claim(c, result["runs"]) for c in preset.claims]
    (out / "experiment.json").write_text(json.dumps(result, indent=1, default=str))
    text = table(preset, result)
    (out / "table.md").write_text(text + "\n")
    return result


def _variant_label(variant: str) -> str:
    kind, pct = variant.rsplit("_", 1)
    pct = pct.removesuffix("pct")
    return ("" if kind == "model" else f"{kind}, ") + f"{pct} % labels"


def _paper_value(run: dict, variant: str, metric: str, preset: Preset) -> str:
    spec = next((r for r in preset.runs if r["name"] == run["name"]), {})
    paper = (spec.get("paper") or {}).get(variant, spec.get("paper") or {})
    value = paper.get(metric) if isinstance(paper, dict) else None
    return "—" if value is None else f"{value}"


def table(preset: Preset, result: dict) -> str:
    """Markdown: one row per run and variant; ours (mean ± sd, n) then the paper's, per metric."""
    head = "| run | variant | " + " | ".join(f"{m} (ours) | {m} (paper)" for m in preset.metrics) + " |"
    lines = [f"## {preset.title}", "", f"Paper: {preset.paper}", ""]
    if result["runs"]:
        lines += [head, "|" + "---|" * (2 + 2 * len(preset.metrics))]
    for run in result["runs"]:
        for variant, s in sorted(run["summary"].items()):
            cells = []
            for m in preset.metrics:
                v = s.get(m)
                cells.append("—" if v is None else f"{v['mean']:.3f} ± {v['std']:.3f} (n={v['n']})")
                cells.append(_paper_value(run, variant, m, preset))
            lines.append(f"| {run['name']} | {_variant_label(variant)} | " + " | ".join(cells) + " |")
    if result.get("pretrain"):
        f = result["pretrain"]["final"]
        lines += ["", f"Pretraining: {f.get('epoch', 0)} epochs; last epoch's masked-frame L1: train "
                      f"{f.get('train_l1', math.nan):.4f}, validation {f.get('val_l1', math.nan):.4f} "
                      f"({result['pretrain']['checkpoint']})"]
    if result.get("claims"):
        lines += ["", "Claims of the paper, on our numbers:"]
        lines += [f"- {c['text']}: ours {c['ours']} — {c['verdict']}" for c in result["claims"]]
    lines += ["", "Differs from the paper:"] + ([f"- {d}" for d in result["differs"]] or ["- nothing known"])
    return "\n".join(lines)


def check_claim(claim: dict, runs: list[dict]) -> dict:
    """``better`` beats ``worse`` (run name / variant) on ``metric`` by at least ``margin``."""
    def value(ref: str) -> float:
        name, variant = ref.rsplit("/", 1)
        run = next((r for r in runs if r["name"] == name), None)
        s = (run or {}).get("summary", {}).get(variant, {}).get(claim["metric"])
        return s["mean"] if s else math.nan

    diff = value(claim["better"]) - value(claim["worse"])
    margin = float(claim.get("margin", 0.0))
    verdict = "not measured" if math.isnan(diff) else "holds" if diff >= margin else "does not hold here"
    return {"text": claim["text"], "ours": "—" if math.isnan(diff) else f"{diff:+.3f}", "verdict": verdict}
