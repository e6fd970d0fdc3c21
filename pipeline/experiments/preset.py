"""Experiment presets: one YAML file per seed-paper experiment (pipeline/experiments/presets/), loaded and checked.

A preset holds what the paper fixes — corpus, features and their settings, alignment, the model(s),
optimiser, schedule, epochs, batch size, protocol, metrics — so that one command reproduces it. Keys:

``title``, ``paper`` (citation), ``dataset``; ``extract`` (``extractors: {name: {option: value}}``,
``rate``, ``method``, ``min_confidence``, ``max_duration_gap``); ``pretrain`` (TrainConfig fields of a
masked-frame pretraining run, optional); ``pretrained_from`` (the preset whose pretraining this one
fine-tunes); ``train`` (TrainConfig fields shared by every run); ``runs`` (``name``, ``train``
overrides, where ``pretrained: auto`` fine-tunes the ``pretrained_from`` checkpoint, and ``paper``
numbers by metric where the paper gives them); ``metrics`` (table columns); ``claims`` (the paper's
comparative claims, checked on our numbers); ``differs`` (what the preset cannot honour, printed with
every result). ``extends: other_preset`` starts from another preset.

Command-line changes (``--set``, ``--override``, ``--substitute``) are applied here and each one is
added to the "differs from the paper" list, so a table never hides how it was obtained."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.errors import ConfigError
from pipeline.experiments.merge import merge
from stores.views import DEFAULT_RATE, view_name

if TYPE_CHECKING:
    from train.config import TrainConfig

PRESETS = Path(__file__).parent / "presets"
KEYS = {"title", "paper", "dataset", "extract", "pretrain", "pretrained_from", "train", "runs", "metrics", "claims",
        "differs", "extends", "spec", "finetune"}
EXTRACT_KEYS = {"extractors", "rate", "method", "min_confidence", "max_duration_gap", "select"}


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    paper: str
    dataset: str
    extract: dict[str, Any]
    train: dict[str, Any]
    runs: list[dict[str, Any]]
    metrics: list[str]
    pretrain: dict[str, Any] | None = None
    pretrained_from: str | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)  # notes no config value carries, and command-line changes
    spec: list[dict[str, Any]] = field(default_factory=list)  # the paper's stated settings (paper_spec.py)
    finetune: dict[str, dict[str, Any]] = field(default_factory=dict)  # backbones trained first (backbones.py)
    changed: frozenset[str] = frozenset()  # resolved keys the command line changed (their reasons no longer hold)

    @property
    def view(self) -> str:
        return view_name(self.extract.get("rate", DEFAULT_RATE))


def names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def _raw(name: str, seen: tuple[str, ...] = ()) -> dict:
    path = Path(name) if name.endswith((".yaml", ".yml")) else PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown experiment preset {name!r}; presets: {', '.join(names())} (or a .yaml path)")
    if name in seen:
        raise ConfigError(f"preset {name}: `extends` loops through {' -> '.join(seen)}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"preset {path}: unknown key(s) {unknown}; known: {sorted(KEYS)}")
    if "extends" in raw:
        base = _raw(raw.pop("extends"), (*seen, name))
        differs = base.get("differs", []) + raw.pop("differs", [])
        own = {p["point"]: p for p in raw.pop("spec", []) or []}  # a point of the same name replaces the base's
        spec = [own.pop(p["point"], p) for p in base.get("spec", []) or []] + list(own.values())
        raw = merge(base, raw) | {"differs": differs, "spec": spec}
    return raw


def load(name: str) -> Preset:
    raw = _raw(name)
    missing = [k for k in ("title", "paper", "dataset", "extract", "train", "metrics") if k not in raw]
    if missing:
        raise ConfigError(f"preset {name}: missing {missing}")
    if set(raw["extract"]) - EXTRACT_KEYS:
        raise ConfigError(f"preset {name}: unknown extract key(s) {sorted(set(raw['extract']) - EXTRACT_KEYS)}")
    preset = Preset(name=Path(name).stem, title=raw["title"], paper=raw["paper"], dataset=raw["dataset"],
                    extract=raw["extract"], train=raw["train"], runs=raw.get("runs") or [], metrics=raw["metrics"],
                    pretrain=raw.get("pretrain"), pretrained_from=raw.get("pretrained_from"),
                    claims=raw.get("claims") or [], differs=raw.get("differs") or [], spec=raw.get("spec") or [],
                    finetune=raw.get("finetune") or {})
    check(preset)
    return preset


def check(preset: Preset) -> None:
    """Every extractor known with valid options, every run a valid TrainConfig: fail before any work."""
    from extractors import registry
    from train.build import model_config

    for ext, opts in preset.extract.get("extractors", {}).items():
        try:
            registry.spec(ext, opts or {})
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"preset {preset.name}: extractor {ext}: {exc}") from None
    from pipeline.datasets.manifest import dataset_names

    if preset.dataset not in dataset_names():
        raise ConfigError(f"preset {preset.name}: unknown dataset {preset.dataset!r}; known: {dataset_names()}")
    names = [r["name"] for r in preset.runs]
    for run in preset.runs:
        for ref in run.get("best_of", []):
            if ref.rsplit("/", 1)[0] not in names:
                raise ConfigError(f"preset {preset.name}, run {run['name']!r}: best_of names {ref!r}; runs: {names}")
    for run in [{"name": "pretrain", "train": preset.pretrain}] * bool(preset.pretrain) + preset.runs:
        if "best_of" in run:
            continue
        cfg = merge(preset.train, run.get("train") or {}) if run["name"] != "pretrain" else run["train"]
        try:
            model_config(train_config(cfg, store="-", out="-"))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"preset {preset.name}, run {run['name']!r}: {exc}") from None
    from pipeline.experiments import backbones
    from pipeline.experiments.paper_spec import check_spec

    backbones.check(preset)
    check_spec(preset)


def train_config(fields: dict[str, Any], **extra: Any) -> TrainConfig:
    from train.config import from_dict

    return from_dict({**fields, **extra})


def _value(text: str) -> Any:  # a YAML scalar or mapping
    return yaml.safe_load(text)


def customise(preset: Preset, sets: list[str] = (), overrides: list[str] = (),
              substitutes: list[str] = (), finetune_overrides: list[str] = (), no_finetune: bool = False) -> Preset:
    """Apply command-line changes; each becomes a line of ``differs``."""
    extract, train, pretrain = copy.deepcopy(preset.extract), copy.deepcopy(preset.train), copy.deepcopy(
        preset.pretrain)
    runs, differs = copy.deepcopy(preset.runs), list(preset.differs)
    finetune = {} if no_finetune else copy.deepcopy(preset.finetune)
    if no_finetune and preset.finetune:
        differs.append(f"backbones {', '.join(preset.finetune)} not fine-tuned (--no-finetune)")
    for item in finetune_overrides:
        key, _, value = item.partition("=")
        if not value or not finetune:
            raise ConfigError(f"--finetune-override {item!r}: expected OPTION=VALUE for a preset with a finetune step")
        for opts in finetune.values():
            opts[key] = _value(value)
        differs.append(f"fine-tuning {key} = {value} (--finetune-override)")
    exts = extract.setdefault("extractors", {})
    for item in substitutes:
        old, _, new = item.partition("=")
        if old not in exts or not new:
            raise ConfigError(f"--substitute {item!r}: expected OLD=NEW with OLD among {sorted(exts)}")
        from extractors import registry

        try:
            kinds = {n: registry.get(n).modality for n in (old, new)}
        except KeyError as exc:
            raise ConfigError(f"--substitute {item!r}: {exc}") from None
        if kinds[old] != kinds[new]:
            raise ConfigError(f"--substitute {item!r}: {new} is a {kinds[new]} extractor and {old} a {kinds[old]} "
                              f"one; substitute within a modality (`pipeline extractors` lists them)")
        exts = {new if k == old else k: ({} if k == old else v) for k, v in exts.items()
                if not (k == old and new in exts)}  # NEW already extracted: OLD's runs read it
        for cfg in [train, pretrain or {}] + [r.get("train") or {} for r in runs]:
            for key in ("audio", "visual", "text"):
                if cfg.get(key) == old:
                    cfg[key] = new
        finetune.pop(old, None)  # the substitute runs with its own weights
        differs.append(f"extractor {old} replaced by {new} (--substitute)")
    extract["extractors"] = exts
    for item in sets:
        lhs, _, value = item.partition("=")
        ext, _, option = lhs.partition(".")
        if ext not in exts or not option:
            raise ConfigError(f"--set {item!r}: expected EXTRACTOR.OPTION=VALUE with EXTRACTOR among {sorted(exts)}")
        exts[ext] = {**(exts[ext] or {}), option: _value(value)}
        differs.append(f"{ext}.{option} = {value} (--set)")
    for item in overrides:
        key, _, value = item.partition("=")
        if not value:
            raise ConfigError(f"--override {item!r}: expected TRAIN_OPTION=VALUE (e.g. epochs=1)")
        over = {key: _value(value)}
        train = merge(train, over)
        pretrain = merge(pretrain, over) if pretrain is not None else None
        for r in runs:  # an override wins over the runs' own settings of that option
            r["train"] = merge(r.get("train") or {}, over) if key in (r.get("train") or {}) else r.get("train")
        differs.append(f"{key} = {value} (--override)")
    out = dataclasses.replace(preset, extract=extract, train=train, pretrain=pretrain, runs=runs, differs=differs,
                              finetune=finetune)
    check(out)
    from pipeline.experiments.paper_spec import resolve, same

    before, after = resolve(preset), resolve(out)
    return dataclasses.replace(out, changed=frozenset(k for k, v in after.items()
                                                      if k not in before or not same(v, before[k])))
