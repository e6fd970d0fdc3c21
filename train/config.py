"""The typed training configuration (YAML or CLI), resolved and saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stores.views import DEFAULT_VIEW

# Names only: train/optim.py builds them. Kept here so that reading a config (every CLI start) never
# imports torch.
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("warmup_linear", "plateau", "constant")

MODELS = ("mult", "tfn", "ef_gru", "lf_gru", "gru_probe", "jmt", "mater", "svm", "xgboost", "mlp")
CLASSICAL = ("svm", "xgboost", "mlp")
KEEP = ("all", "best", "last", "none")  # best.pt evaluates (`pipeline evaluate`); checkpoint.pt resumes


@dataclass(frozen=True)
class TrainConfig:
    store: str
    out: str = "runs/run"
    model: str = "mult"
    audio: str = "egemaps"  # extractor feeding the audio modality
    visual: str = "face_hog"  # extractor feeding the visual modality
    text: str | None = None  # extractor feeding a text modality (e.g. bert): classical models and gru_probe
    view: str = DEFAULT_VIEW
    label: str | None = "label"
    task: str = "classification"  # classification | regression | frame_regression
    frame_targets: str | None = None  # e.g. affwild2_va, for frame_regression
    protocol: str = "split"  # manifest column: train/validation/test values, or fold numbers
    folds: tuple[int, ...] = ()  # which folds to run (empty: all)
    validation: str = "inner"  # model selection on held-out training groups | next_fold (fold k+1) | none (last epoch)
    validation_group: str = "speaker"  # manifest column held out whole for inner validation
    validation_fraction: float = 0.1  # share of the training groups held out (at least one)
    low_resource: tuple[int, ...] = (100,)  # % of the training labels, one run each
    low_resource_seeds: int = 3  # repeats of each N % < 100 subset (new subset and initialisation each)
    window: int = 50
    epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw | sgd (JMT)
    momentum: float = 0.9  # sgd only
    schedule: str = "warmup_linear"  # warmup_linear (per step) | plateau (MATER: on the validation score) | constant
    plateau_patience: int = 5  # epochs without improvement before the rate is cut
    plateau_factor: float = 0.1
    warmup: float = 0.1
    grad_clip: float = 1.0
    loss: str = ""  # "" = ce (classification) / ccc (regression)
    seed: int = 0
    device: str = "auto"
    size: str = "base"  # MulT: base | large | small (small: the GRU baselines too, for CPU smoke runs)
    options: dict[str, Any] = field(default_factory=dict)  # model config overrides
    pretrained: str | None = None  # pretraining checkpoint for MulT fine-tuning
    pretrained_norm: bool = True  # fine-tune with pretraining's normalisation statistics (Tran & Soleymani)
    compare_scratch: bool = False  # also train from scratch (low-resource curve: pretrained vs scratch)
    fusion: str = "concat"  # classical models: concat | sum | product | late
    only: str | None = None  # one modality (audio | visual | text): gru_probe (default audio), classical baselines
    select: str | None = None  # "column=value": only these clips (e.g. split=pool: pretrain on an unlabelled pool)
    max_frame_gap: int | None = None  # drop clips whose audio and visual valid frames differ by more (Tran: 5)
    stop_after: int | None = None  # stop after this many epochs (resume continues)
    keep: str = "all"  # files kept once a run is complete: all | best (best.pt) | last (checkpoint.pt) | none

    def __post_init__(self) -> None:
        if self.only and self.model not in (*CLASSICAL, "gru_probe"):
            raise ValueError(f"only={self.only!r} is for gru_probe and the classical models, not {self.model}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {MODELS}")
        if self.task not in ("classification", "regression", "frame_regression"):
            raise ValueError(f"task must be classification, regression or frame_regression, not {self.task!r}")
        if self.task == "frame_regression" and not self.frame_targets:
            raise ValueError("task frame_regression needs frame_targets (e.g. affwild2_va)")
        if self.fusion not in ("concat", "sum", "product", "late"):
            raise ValueError(f"fusion must be concat, sum, product or late, not {self.fusion!r}")
        if self.only not in (None, "audio", "visual", "text"):
            raise ValueError(f"only must be audio, visual or text, not {self.only!r}")
        if self.only == "text" and not self.text:
            raise ValueError("only=text needs text=EXTRACTOR (e.g. bert)")
        if self.text and self.model not in (*CLASSICAL, "gru_probe"):
            raise ValueError(f"the text modality feeds the classical models and gru_probe; {self.model} is "
                             "audio-visual (leave text unset)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.validation not in ("inner", "next_fold", "none"):
            raise ValueError(f"validation must be inner, next_fold or none, not {self.validation!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in (0, 1)")
        if self.select is not None and "=" not in self.select:
            raise ValueError(f"select expects COLUMN=VALUE (e.g. split=pool), got {self.select!r}")
        if self.keep not in KEEP:
            raise ValueError(f"--keep must be one of {KEEP}, not {self.keep!r}")
        if self.low_resource_seeds < 1:
            raise ValueError("low_resource_seeds must be >= 1")
        if any(not 0 < n <= 100 for n in self.low_resource):
            raise ValueError("low_resource percentages must be in (0, 100]")

    @property
    def loss_name(self) -> str:
        return self.loss or ("ce" if self.task == "classification" else "ccc")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load(path: str | None, **overrides: Any) -> TrainConfig:
    """YAML file (optional) + non-None overrides, validated."""
    raw: dict[str, Any] = {}
    if path:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a mapping (YAML, a preset's run): unknown fields named, lists made tuples."""
    raw = dict(raw)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
    for key in ("folds", "low_resource"):
        if key in raw and not isinstance(raw[key], tuple):
            raw[key] = tuple(raw[key]) if isinstance(raw[key], list) else (raw[key],)
    return TrainConfig(**raw)
