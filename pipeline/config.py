"""The typed configuration of one extraction run, validated before any work starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from extractors import registry
from extractors.precision import PRECISIONS
from pipeline.align import AlignConfig
from pipeline.errors import ConfigError
from pipeline.face import DETECTORS, FaceConfig

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
    fingerprint: str = "content"  # how a clip's media is recognised: content (default) or stat (cache_key.py)

    def __post_init__(self) -> None:
        if self.shard_size is not None and self.shard_size < 1:
            raise ConfigError("--shard-size must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be >= 1")
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"--dtype must be float16 or float32, not {self.dtype!r}")
        if self.fingerprint not in ("content", "stat"):
            raise ConfigError(f"--fingerprint must be content or stat, not {self.fingerprint!r}")
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
        for name, overrides in self.extractors.items():
            try:
                registry.make_config(name, overrides)
            except (KeyError, ValueError, TypeError) as exc:
                msg = str(exc)  # options shared by several extractors (precision) do not know whose they are
                raise ConfigError(msg if name in msg else f"extractor {name!r}: {msg}") from None


def parse_extractors(text: str | None, settings: list[str] | None = None,
                     precision: str | None = None) -> dict[str, dict[str, Any]]:
    """``"logmel,egemaps"`` plus ``["logmel.n_mels=40"]`` -> ``{"logmel": {"n_mels": 40}, "egemaps": {}}``.

    ``precision`` (``--precision``) goes to every requested extractor with a ``precision`` option that
    ``--set`` did not give one."""
    names = [n.strip() for n in (text or ",".join(DEFAULT_EXTRACTORS)).split(",") if n.strip()]
    known = registry.names()
    for n in names:
        if n not in known:
            raise ConfigError(f"unknown extractor {n!r}; known extractors: {', '.join(known)}")
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
