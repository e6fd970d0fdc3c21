"""The typed configuration of one extraction run, validated once before any work starts.

``ExtractConfig.create`` is the one constructor the CLI, the demo and the experiment runner use: it turns
user-facing options (``--extractors``, ``--set``, ``--rate`` ...) into the typed config, and validates every
extractor's options once into ``specs`` (``extractors.registry.ExtractorSpec``) that travel unchanged to the
workers inside the run's ``TaskConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from extractors import registry
from extractors.precision import PRECISIONS
from extractors.registry import ExtractorSpec
from pipeline.errors import ConfigError
from pipeline.media.face import DETECTORS, FaceConfig
from pipeline.shard.align import AlignConfig
from pipeline.shard.work import TaskConfig
from stores import cache_key
from stores.views import DEFAULT_RATE

DEFAULT_EXTRACTORS = ("logmel", "linear_spectrogram", "egemaps", "face_hog")


@dataclass(frozen=True)
class ExtractConfig:
    dataset: str
    root: str
    store: str
    extractors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> config overrides
    align: AlignConfig = field(default_factory=AlignConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    cluster_file: str | None = None
    limit: int | None = None
    select: str | None = None  # COLUMN=VALUE: only these manifest rows (a preset's subset, e.g. RAVDESS speech)
    force: bool = False
    dry_run: bool = False
    allow_failures: bool = False
    shard_size: int | None = None  # clips per task; None: sized to keep every worker busy (plan.auto_shard_size)
    window_frames: int = 32
    batch_frames: int = 64  # video frames per extractor call (across clips)
    batch_seconds: float = 120.0  # seconds of audio per extractor call (across clips)
    max_side: int | None = None  # downscale frames whose longer side exceeds this
    dtype: str = "float32"
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    progress_every: float = 30.0  # seconds between plain progress lines when stderr is not a terminal
    models_dir: str | None = None  # learned weights (--models / $PIPELINE_MODELS / user cache)
    fingerprint: str = "content"  # how a clip's media is recognised: content (default), stat or full (cache_key.py)
    specs: dict[str, ExtractorSpec] = field(init=False, repr=False, compare=False)  # validated extractors

    def __post_init__(self) -> None:
        if self.shard_size is not None and self.shard_size < 1:
            raise ConfigError("--shard-size must be >= 1")
        if self.select is not None and "=" not in self.select:
            raise ConfigError(f"select expects COLUMN=VALUE (e.g. vocal_channel=speech), got {self.select!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be >= 1")
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"--dtype must be float16 or float32, not {self.dtype!r}")
        if self.fingerprint not in cache_key.FINGERPRINTS:
            raise ConfigError(f"--fingerprint must be one of {', '.join(cache_key.FINGERPRINTS)}, not "
                              f"{self.fingerprint!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, not {self.device!r}")
        if self.face.detector not in (*DETECTORS, "auto"):
            raise ConfigError(f"unknown face detector {self.face.detector!r}; known: auto, {', '.join(DETECTORS)}")
        if self.face.detect_every < 1:
            raise ConfigError("--face-every must be >= 1")
        if not 0 < self.face.min_face < 1:
            raise ConfigError(f"--min-face is a fraction of the frame's shorter side, in (0, 1); "
                              f"got {self.face.min_face}")
        if not self.extractors:
            raise ConfigError("no extractors requested")
        specs = {}
        for name, overrides in self.extractors.items():
            try:
                specs[name] = registry.spec(name, overrides)
            except (KeyError, ValueError, TypeError) as exc:
                msg = str(exc)  # options shared by several extractors (precision) do not know whose they are
                raise ConfigError(msg if name in msg else f"extractor {name!r}: {msg}") from None
        object.__setattr__(self, "specs", specs)

    @classmethod
    def create(cls, dataset: str, root: str | Path, store: str | Path, *,
               extractors: str | dict[str, dict[str, Any]] | None = None, settings: list[str] | None = None,
               precision: str | None = None, rate: float = DEFAULT_RATE, min_confidence: float | None = None,
               max_duration_gap: float | None = 1.0, align_method: str = "mean", face_detector: str = "auto",
               face_every: int = 5, min_face: float = 0.05, cluster_file: str | Path | None = None,
               models_dir: str | Path | None = None, **options: Any) -> ExtractConfig:
        """The config of a run from user-facing options (the CLI's, a preset's, the demo's).

        ``extractors``: ``"logmel,egemaps"`` (with ``settings``, ``--set`` items) or a dict of name -> options;
        None gives the defaults. A negative ``max_duration_gap`` disables the duration check. ``options``:
        the other fields as they are (limit, force, dry_run, ...)."""
        if isinstance(extractors, dict):
            chosen = {k: dict(v or {}) for k, v in extractors.items()}
            if settings or precision:  # --set / --precision on top of a preset's own options
                extra = parse_extractors(",".join(chosen), settings, precision)
                chosen = {k: {**v, **extra[k]} for k, v in chosen.items()}
        else:
            chosen = parse_extractors(extractors, settings, precision)
        gap = None if max_duration_gap is not None and max_duration_gap < 0 else max_duration_gap
        try:
            align = AlignConfig(float(rate), min_confidence, gap, align_method)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(dataset=dataset, root=str(root), store=str(store), extractors=chosen, align=align,
                   face=FaceConfig(detector=face_detector, detect_every=face_every, min_face=min_face),
                   cluster_file=str(cluster_file) if cluster_file else None,
                   models_dir=str(models_dir) if models_dir else None, **options)

    def with_extractors(self, names: list[str]) -> ExtractConfig:
        """This config plus ``names`` (with their defaults) where they are not requested already."""
        missing = {n: {} for n in names if n not in self.extractors}
        return dataclasses.replace(self, extractors={**self.extractors, **missing}) if missing else self

    def task_config(self, run_id: str, descriptions: dict[str, dict], device: str,
                    models_dir: str | None) -> TaskConfig:
        """What every task of this run is given (built once per run, shared by all its tasks)."""
        return TaskConfig(self.store, run_id, tuple(self.specs[n] for n in descriptions), descriptions,
                          self.face, self.align, self.dtype, self.window_frames, self.batch_frames,
                          self.batch_seconds, self.max_side, device, models_dir)


def parse_extractors(text: str | None, settings: list[str] | None = None,
                     precision: str | None = None) -> dict[str, dict[str, Any]]:
    """``"logmel,egemaps"`` plus ``["logmel.n_mels=40"]`` -> ``{"logmel": {"n_mels": 40}, "egemaps": {}}``.

    ``precision`` (``--precision``) goes to every requested extractor with a ``precision`` option that
    ``--set`` did not give one."""
    names = [n.strip() for n in (text or ",".join(DEFAULT_EXTRACTORS)).split(",") if n.strip()]
    known = registry.names()
    for n in names:
        if registry.base_name(n) not in known:
            raise ConfigError(f"unknown extractor {n!r}; known extractors: {', '.join(known)} (NAME@WEIGHTS: "
                              "NAME with those weights, as a stream of its own)")
    if len(set(names)) != len(names):
        raise ConfigError(f"extractor listed twice in --extractors {text!r}")
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in settings or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set expects EXTRACTOR.OPTION=VALUE, got {item!r}")
        lhs, value = item.split("=", 1)
        name, option = lhs.split(".", 1)
        if name not in out:
            raise ConfigError(f"--set {item!r}: {name!r} is not among the requested extractors {names}")
        try:
            out[name][option] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: bad value ({exc})") from None
    if precision is not None:
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        for name, overrides in out.items():
            if "precision" in {f.name for f in dataclasses.fields(registry.get(name).Config)}:
                overrides.setdefault("precision", precision)
    return out
