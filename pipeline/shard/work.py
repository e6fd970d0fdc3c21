"""What one task is given: the clips it works on (``ClipWork``) and the run's settings (``TaskConfig``).

The engine builds one ``TaskConfig`` per run from the validated ``ExtractConfig`` and hands every task the
same object; a task carries only its own clips beside it. Nothing here is rebuilt on the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractors.registry import ExtractorSpec
from pipeline.media.decode import ClipSource
from pipeline.media.face import FaceConfig
from pipeline.shard.align import AlignConfig


@dataclass
class ClipWork:
    """One clip of a task: its media, its fingerprint, and which extractors to run or re-align."""

    source: ClipSource
    fingerprint: str
    keys: dict[str, str]  # extractor -> native key
    native: list[str]  # extractors to run
    align: list[str]  # extractors to (re-)align
    stored: dict[str, dict] = field(default_factory=dict)  # extractor -> live native row, for align-only work


@dataclass(frozen=True)
class TaskConfig:
    """The run's settings every task of it shares (built once by the engine)."""

    store: str
    run_id: str
    extractors: tuple[ExtractorSpec, ...]
    descriptions: dict[str, dict]  # extractor -> what its store group records (extractor.describe())
    face: FaceConfig = field(default_factory=FaceConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    dtype: str = "float32"
    window_frames: int = 32
    batch_frames: int = 64  # video frames per extractor call (across clips)
    batch_seconds: float = 120.0  # seconds of audio per extractor call (across clips)
    max_side: int | None = None
    device: str = "cpu"
    models_dir: str | None = None


@dataclass
class ShardTask:
    """One Dask task: a shard of clips and the run's shared settings."""

    shard: int
    clips: list[ClipWork]
    config: TaskConfig
