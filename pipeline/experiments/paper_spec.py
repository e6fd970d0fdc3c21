"""A preset's paper spec, and the "differs from the paper" list generated from it.

Each preset lists what its paper states as spec points (``spec:`` in the YAML): a ``point`` (what it is), a
``key`` into the *resolved* run configuration (:func:`resolve`: every extractor option with its default,
the alignment, every training field of every run, the model's sizes, the protocol, facts of the trainer
such as gradient clipping and precision) and the paper's ``value`` (``null``: the paper does not say),
with an optional ``why`` for a deliberate deviation. The list is computed by comparing the two, after
``--set``/``--override``/``--substitute`` and, at run time, with facts of the data actually present
(``data.*`` keys: folds formed, clips). It cannot drift from the code: nothing in it is typed by hand
except the reasons.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pipeline.errors import ConfigError

Preset = Any  # pipeline.experiments.preset.Preset, which imports this module (check_spec): not imported back

UNSTATED = "unstated by the paper"
# facts of the trainer that every neural run has and no config field names (train/trainer.py, train/step.py)
TRAINER_FACTS = {"precision": "bf16 autocast on GPU, float32 on CPU"}


def _flat(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = list(obj) if isinstance(obj, tuple) else obj


def _validation(fields: dict[str, Any], pretraining: bool = False) -> str:
    from train.config import CLASSICAL

    if pretraining:
        return "a random 10 % of the clips, with static masks"
    if fields.get("model") in CLASSICAL:
        return "none (every non-test clip trains)"
    if fields.get("validation") == "none":
        return "none (every non-test clip trains)"
    if fields.get("validation") == "next_fold":
        return "the next fold"
    held = f"{round(fields.get('validation_fraction', 0.1) * 100)} % of the training " \
           f"{fields.get('validation_group', 'speaker')}s held out"
    return f"the split's validation partition (where it has none: {held})" if fields.get("protocol") == "split" \
        else held


def _selection(fields: dict[str, Any]) -> str:
    from train.config import CLASSICAL

    if fields.get("model") in CLASSICAL:
        return "none (fitted once)"
    return "the last epoch" if fields.get("validation") == "none" else "the epoch with the best validation score"


def _normalisation(fields: dict[str, Any]) -> str:
    if fields.get("model") == "mater":
        return "l2 per window embedding"
    if fields.get("model") in ("svm", "xgboost", "mlp"):
        return "z-score (StandardScaler) on the training clips"
    if fields.get("pretrained") and fields.get("pretrained_norm", True):
        return "z-score with the pretraining statistics (both arms)"
    return "z-score with the training clips' statistics"


def _run_facts(prefix: str, fields: dict[str, Any], out: dict[str, Any], dataset: str) -> None:
    from pipeline.datasets.manifest import get_dataset
    from train.build import model_config
    from train.classical import describe
    from train.config import CLASSICAL, from_dict

    cfg = from_dict({**fields, "store": "-", "out": "-"})
    full = {k: v for k, v in cfg.to_dict().items() if k not in ("store", "out")}
    _flat(prefix, full, out)
    mc = model_config(cfg)
    if mc is not None:
        _flat(f"{prefix}.model_config", dataclasses.asdict(mc), out)
    if cfg.model == "jmt":
        from train.models.jmt import attention_rule

        out[f"{prefix}.attention_rule"] = attention_rule(mc)
    pretraining = prefix == "pretrain"
    out[f"{prefix}.protocol_rule"] = get_dataset(dataset).protocol_rules.get(cfg.protocol, cfg.protocol)
    out[f"{prefix}.validation_rule"] = _validation(full, pretraining)
    out[f"{prefix}.checkpoint_selection"] = "the last epoch" if pretraining else _selection(full)
    out[f"{prefix}.normalisation"] = _normalisation(full)
    out[f"{prefix}.loss_name"] = cfg.loss_name
    out[f"{prefix}.fusion_rule"] = fusion_rule(cfg)
    if cfg.model in CLASSICAL:
        out[f"{prefix}.classifier"] = describe(cfg.model)
    else:
        out[f"{prefix}.grad_clip_norm"] = cfg.grad_clip
        for k, v in TRAINER_FACTS.items():
            out[f"{prefix}.{k}"] = v
        if cfg.schedule == "plateau":
            out[f"{prefix}.plateau_on"] = "the training loss" if cfg.validation == "none" else "the validation score"


def fusion_rule(cfg: Any) -> str:
    from train.build import MODEL_CLASSES
    from train.config import CLASSICAL

    if cfg.model in CLASSICAL:
        return f"{cfg.fusion} of the per-modality vectors" if cfg.fusion != "late" else "mean of per-modality " \
               "classifiers' class probabilities"
    return MODEL_CLASSES[cfg.model].fusion_rule


def resolve(preset: Preset) -> dict[str, Any]:
    """The run configuration as it will be used, flattened to dotted keys (see the module docstring)."""
    from extractors import registry
    from pipeline.experiments.merge import merge

    out: dict[str, Any] = {"dataset": preset.dataset, "subset": preset.extract.get("select") or "every clip",
                           "runs": [r["name"] for r in preset.runs], "metrics": list(preset.metrics)}
    faces = False
    for name, opts in preset.extract.get("extractors", {}).items():
        s = registry.spec(name, opts or {})
        _flat(f"extract.{name}", dataclasses.asdict(s.config), out)
        ext = s.create()
        faces |= ext.input == "faces"
        c = s.config
        if all(hasattr(c, k) for k in ("window_s", "win_ms", "hop_ms", "sample_rate")):  # spectrogram frames
            win, hop = round(c.win_ms * c.sample_rate / 1000), round(c.hop_ms * c.sample_rate / 1000)
            out[f"extract.{name}.frames_per_window"] = 1 + (round(c.window_s * c.sample_rate) - win) // hop
        w = getattr(ext, "weights_name", None)
        if w:
            from extractors.weights import WeightsError, get_weights

            chosen = getattr(s.config, "weights", "") or w
            try:
                trained_on = get_weights(chosen).meta.get("dataset", chosen)
            except WeightsError:  # the user's own weights, in a model directory not known yet here
                trained_on = f"the user's own ({chosen})"
            out[f"extract.{name}.weights_trained_on"] = trained_on
            if name in (preset.finetune or {}):  # the preset fine-tunes it first (backbones.py)
                out[f"extract.{name}.weights_trained_on"] = preset.dataset
                out[f"extract.{name}.fine_tuned_from"] = getattr(s.config, "weights", "") or w
            if name in (preset.finetune or {}):
                from pipeline.engine.finetune import FinetuneConfig
                from pipeline.experiments.backbones import OPTIONS

                defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig) if f.name in OPTIONS}
                for k, v in {**defaults, **(preset.finetune[name] or {})}.items():
                    out[f"finetune.{name}.{k}"] = v
                out[f"finetune.{name}.model_kept"] = "the last epoch"  # engine/finetune.py: no validation split
                out[f"finetune.{name}.head_dropout"] = 0.0  # a plain linear head on the embedding
    align = {"rate": preset.extract.get("rate"), "method": preset.extract.get("method", "mean"),
             "min_confidence": preset.extract.get("min_confidence"),
             "max_duration_gap": preset.extract.get("max_duration_gap", 1.0)}
    _flat("extract", align, out)
    if faces:
        out["extract.face_detector"] = "MTCNN (the Haar cascade where MTCNN weights are missing)"
    if preset.pretrain:
        _run_facts("pretrain", {"view": preset.view, **preset.pretrain}, out, preset.dataset)
    if preset.runs or preset.train.get("model"):
        first = merge(preset.train, preset.runs[0].get("train") or {}) if preset.runs else preset.train
        _run_facts("train", {"view": preset.view, **first}, out, preset.dataset)
    for run in preset.runs:
        if "best_of" in run:  # chosen among other runs' arms by validation (runner.best_of)
            out[f"runs.{run['name']}.best_of"] = list(run["best_of"])
            continue
        _run_facts(f"runs.{run['name']}", merge({"view": preset.view}, merge(preset.train, run.get("train") or {})),
                   out, preset.dataset)
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return "none" if v is None else str(v)


def differs(preset: Preset, facts: dict[str, Any] | None = None) -> list[str]:
    """The "differs from the paper" lines: one per spec point the resolved config does not match, one per
    point the paper leaves unstated; ``facts`` adds what only a run knows (``data.*``)."""
    resolved = {**resolve(preset), **(facts or {})}
    lines = []
    for p in preset.spec:
        key = p["key"]
        if key not in resolved:
            if key.startswith("data."):
                continue  # known once the data is read (experiment run)
            gone = _gone(preset, key)
            if gone:
                lines.append(f"{p['point']}: paper {_show(p.get('value'))}, ours not measured ({gone} is not run)")
                continue
            raise ConfigError(f"preset {preset.name}: spec point {p['point']!r} names {key!r}, which the resolved "
                              "configuration does not have (a renamed option?)")
        ours = resolved[key]
        changed = key in getattr(preset, "changed", ())
        why = " (changed on the command line)" if changed else f" ({p['why']})" if p.get("why") else ""
        if p.get("value") is None:
            lines.append(f"{UNSTATED}: {p['point']}; ours is {_show(ours)}{why}")
        elif not same(ours, p["value"]):
            lines.append(f"{p['point']}: paper {_show(p['value'])}, ours {_show(ours)}{why}")
    return lines


def check_spec(preset: Preset) -> None:
    """Every spec point well formed and naming a key the resolved configuration has (``data.*`` aside)."""
    resolved = resolve(preset)
    for p in preset.spec:
        if not isinstance(p, dict) or not {"point", "key", "value"} <= set(p) or set(p) - {"point", "key", "value",
                                                                                           "why"}:
            raise ConfigError(f"preset {preset.name}: spec point {p!r} needs point, key, value (and an optional why)")
        if p["key"] not in resolved and not p["key"].startswith("data.") and not _gone(preset, p["key"]):
            raise ConfigError(f"preset {preset.name}: spec point {p['point']!r} names {p['key']!r}, which the "
                              f"resolved configuration does not have")


def _gone(preset: Preset, key: str) -> str | None:
    """The extractor a spec key names when the run does not use it (replaced by ``--substitute``)."""
    parts = key.split(".")
    if parts[0] == "extract" and len(parts) > 2 and parts[1] not in preset.extract.get("extractors", {}):
        return f"extractor {parts[1]}"
    if parts[0] == "finetune" and len(parts) > 2 and parts[1] not in (preset.finetune or {}):
        return f"the fine-tuning of {parts[1]}"
    if parts[0] == "runs" and len(parts) > 2 and not any(key.startswith(f"runs.{r['name']}.") for r in preset.runs):
        return "the run it names (a preset of fewer runs)"
    return None
