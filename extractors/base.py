"""The extractor interface: what every feature extractor is and what it returns.

An extractor is a small class with a ``name``, a ``version``, a frozen dataclass ``Config`` and one
pure batch method, ``compute``. It never opens files or touches the store: the core decodes each clip
once and hands the decoded streams to every extractor (see docs/extractors.md for the conventions).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from extractors.features import Features
from extractors.threads import worker_threads

if TYPE_CHECKING:
    from pathlib import Path

Modality = Literal["audio", "video", "text"]
#: What an extractor consumes: the whole 16 kHz mono waveform, raw RGB frames, or face crops.
InputKind = Literal["audio", "frames", "faces", "annotation", "media", "text"]
_SETUP_LOCK = threading.Lock()  # see Extractor.ensure_setup


@dataclass
class AudioSegment:
    """A clip's whole audio track: 16 kHz mono float32 in [-1, 1]; ``t0`` is its start in clip time."""

    clip_id: str
    samples: np.ndarray
    sample_rate: int = 16000
    t0: float = 0.0


@dataclass
class VideoSegment:
    """A bounded window of consecutive frames of one clip (the core streams long videos window by window).

    ``times`` are presentation timestamps in seconds (clip time), ``ends`` the time each frame stops
    being shown (the next frame's timestamp), so variable-frame-rate files keep their real timing.
    For ``faces`` extractors, ``frames`` holds aligned face crops and ``found`` says which frames had one.
    """

    clip_id: str
    frames: np.ndarray  # [N, H, W, 3] uint8 RGB
    times: np.ndarray  # [N] float64 start of each frame
    ends: np.ndarray  # [N] float64 end of each frame
    found: np.ndarray | None = None  # [N] bool, faces only
    last: bool = False  # True for the clip's final window
    confidence: np.ndarray | None = None  # [N] float32, faces only: the face stage's confidence


@dataclass(frozen=True)
class FaceCrop:
    """The face crop a ``faces`` extractor asks the face stage for (each distinct crop is cut once per frame).

    ``align``: ``landmarks`` (the 5 landmarks mapped onto a canonical template by a similarity transform;
    without landmarks, the square box levelled by the eyes) or ``box`` (the detector's square box, not
    rotated, as FaceNet's training crops were). ``margin``: context added on each side, as a fraction.
    """

    size: int = 112
    align: str = "landmarks"
    margin: float = 0.1


# How the decoder turns any audio stream into the signal every audio extractor sees: the mean of the
# channels ((L+R)/2, as openSMILE, librosa and torchaudio users expect; FFmpeg's mono downmix is
# (L+R)/sqrt(2), 3 dB louder), resampled with soxr's high-quality filter.
AUDIO_FRONTEND = {"sample_rate": 16000, "downmix": "channel mean", "resampler": "soxr HQ"}


@dataclass
class AnnotationSegment:
    """A clip's per-frame annotation file, as text (``annotation_path`` in the manifest), and the video's fps."""

    clip_id: str
    text: str
    fps: float
    n_frames: int = 0


@dataclass
class TextSegment:
    """A clip's transcript (the manifest's ``transcript`` column) and the clip's duration."""

    clip_id: str
    text: str
    duration: float


@dataclass
class MediaSegment:
    """For tools that must read the file themselves (OpenFace runs as a subprocess on the clip)."""

    clip_id: str
    path: str
    start: float | None
    end: float | None
    fps: float
    n_frames: int


@dataclass(frozen=True)
class NoConfig:
    """Config of an extractor with nothing to configure."""


class Extractor:
    """Base class. Subclasses set the class attributes and implement :meth:`compute`.

    Instances are created once per worker process (see ``extractors.registry.instance``), so heavy
    set-up (model loading) belongs in :meth:`setup`, which the core calls once before first use.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    modality: ClassVar[Modality]
    input: ClassVar[InputKind]
    Config: ClassVar[type] = NoConfig
    wants_gpu: ClassVar[bool] = False
    #: Video extractors that look at groups of frames get windows whose length is a multiple of this.
    window_multiple: ClassVar[int] = 1
    #: Name of the learned weights in extractors/weights.py (resolved before any work starts).
    weights_name: ClassVar[str | None] = None

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{self.name}: config must be {self.Config.__name__}, got {type(self.config).__name__}")
        self._ready = False
        self.model: Any = None  # loaded by setup() in extractors with learned weights

    # -- description ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.feature_names)

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def face_crop(self) -> FaceCrop:
        """For ``faces`` extractors: the crop they want (size from a ``size`` config field, else 112)."""
        return FaceCrop(size=int(getattr(self.config, "size", 112)))

    @property
    def rate(self) -> float | None:
        """Native frames per second, or None where it follows the video's own frame rate."""
        return None

    @property
    def per_clip(self) -> bool:
        """One vector per clip (pooled over the clip, or text): ``rate`` does not apply."""
        return bool(getattr(self.config, "pooled", False)) or self.input == "text"

    @property
    def rate_label(self) -> str:
        """How often it yields a vector, in words (``pipeline extractors``)."""
        if self.per_clip:
            return "1 per clip"
        return f"{self.rate:g} Hz" if self.rate else "video fps"

    @property
    def weights_id(self) -> str | None:
        """The weights in use: a ``weights`` config field (the user's own) or the registered default."""
        return getattr(self.config, "weights", None) or self.weights_name

    @property
    def weights(self) -> dict[str, str] | None:
        """Weights id and sha256 for extractors with learned weights (provenance and cache key)."""
        if not self.weights_id:
            return None
        from extractors import weights

        return {"id": self.weights_id, "sha256": weights.pinned(self.weights_id)}

    def weights_folder(self) -> Path:
        """Where the weights are expected, unchecked: for reading metadata (config.json) cheaply."""
        from extractors import weights

        return weights.models_dir() / self.weights_id

    def weights_config(self) -> dict[str, Any]:
        """The model's config.json (Hugging Face layout) if installed, else {} — sizes without loading."""
        try:
            return json.loads((self.weights_folder() / "config.json").read_text())
        except (OSError, ValueError, TypeError):
            return {}

    def weights_path(self) -> Path:
        """The checked folder of this extractor's weights (raises WeightsError with how to get them)."""
        from extractors import weights

        return weights.resolve(self.weights_id, verify=False)  # the client verified before the graph

    def config_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self.config)
        if out.get("precision") == "fp32":  # the default, left out: keys made before the field existed still hold
            del out["precision"]
        return out

    def describe(self) -> dict[str, Any]:
        """Everything that determines the output: part of the cache key and of the store's attributes."""
        out = {
            "name": self.name,
            "version": self.version,
            "config": self.config_dict(),
            "weights": self.weights,
        }
        if self.input == "audio":  # the decoder's audio front end shapes every audio feature
            out["audio_frontend"] = AUDIO_FRONTEND
        return out

    def fingerprint(self) -> str:
        return json.dumps(self.describe(), sort_keys=True, default=str)

    @classmethod
    def runtime(cls) -> tuple[bool, str]:
        """Whether the libraries or binaries it needs are installed (weights aside), and why not."""
        return True, "ok"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether it can run on this machine, and why not (shown by ``pipeline extractors``)."""
        ok, why = cls.runtime()
        if not ok:
            return ok, why
        if cls.weights_name:
            from extractors import weights

            status, _ = weights.state(weights.get_weights(cls.weights_name), weights.models_dir(), verify=False)
            if status != "present":
                return False, f"weights {cls.weights_name} {status} (pipeline models fetch/add)"
        return True, why

    def usable(self) -> tuple[bool, str]:
        """``runtime`` for this configuration (e.g. a binary path given as an option). `pipeline extract`
        refuses a run before any clip when an asked-for extractor cannot run (weights are checked apart)."""
        return type(self).runtime()

    # -- work ----------------------------------------------------------------------------------
    def batch_budget(self, device: str) -> float | None:
        """Frames (video) or seconds (audio) per ``compute`` call on this device; None = the run's default."""
        return None

    def setup(self, device: str = "cpu") -> None:
        """Load models etc. Called once per worker process before the first ``compute``."""

    def ensure_setup(self, device: str = "cpu") -> None:
        """Set up once per process. Tasks run in several threads of one worker and share instances: one lock
        for all setups, so a model is loaded once and libraries whose imports are not thread-safe
        (transformers' lazy modules, TensorFlow) are never imported by two threads at once."""
        if self._ready:
            return
        with _SETUP_LOCK:
            if not self._ready:
                self.setup(device)
                _follow_worker_threads()
                self._ready = True

    def compute(self, batch: Sequence[Any]) -> list[Features]:
        """Pure batch method: one ``Features`` per input segment, in order."""
        raise NotImplementedError


def _follow_worker_threads() -> None:
    """torch sizes its intra-op pool on first use; a model loaded in setup() must follow the worker's cap."""
    n = worker_threads()
    if n and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def positive(config: Any, *fields: str) -> None:
    """Refuse a config whose named numeric options are not > 0 (a typo'd ``--set`` fails before any work)."""
    for f in fields:
        v = getattr(config, f)
        if not v > 0:
            raise ValueError(f"option {f} must be > 0, got {v!r}")
