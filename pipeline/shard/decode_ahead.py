"""A shard's decoding as one stream of events, run ahead of the extractors across clip boundaries.

Prefetching windows inside one clip hides nothing on short clips: an utterance is a single window,
and an audio extractor's batch runs only when its budget fills, at the end of some clip — after which,
without this, the model would wait while the next clip is probed, opened, decoded and resampled.
The shard's clips are therefore decoded as one stream (probe, windows, end of clip) that a thread
runs a bounded number of events ahead (``pipeline/shard/prefetch.py``): clip k+1 is decoded while the batch
that clip k completed is on the model. On a GPU worker that hides the CPU's decoding behind the model;
on a CPU worker it fills what the model leaves of the core. The bound keeps memory at one window.

The consumer (``pipeline/shard/task.py``) walks the same clips in the same order and takes, for each clip
with native work, one :class:`Probed`, then — when it has streams to decode — :class:`Window` events up
to the clip's :class:`Decoded`. Every failure of a clip is an event of that clip, never an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from extractors.base import Extractor, VideoSegment
from pipeline.errors import ClipError
from pipeline.media.decode import ClipDecoder, MediaInfo, probe
from pipeline.shard.work import ClipWork

NON_STREAM_INPUTS = ("annotation", "media", "text")  # inputs the core does not decode


@dataclass
class Probed:
    """A clip's containers probed: which of its extractors can run, and which need decoded streams."""

    work: ClipWork
    info: MediaInfo | None = None
    audio_info: MediaInfo | None = None
    error: ClipError | None = None  # the clip cannot be opened: every extractor of it fails with this
    missing: dict[str, str] = field(default_factory=dict)  # extractor -> the stream it needs and the clip lacks
    wanted: list[str] = field(default_factory=list)  # extractors that can run on the clip
    streams: list[str] = field(default_factory=list)  # those of them fed decoded video or audio


@dataclass
class Window:
    work: ClipWork
    window: VideoSegment


@dataclass
class Decoded:
    """The clip's decoding ended: ``decoder`` holds its audio and stream durations, or ``error`` says why not."""

    work: ClipWork
    decoder: ClipDecoder
    seconds: float  # CPU seconds the thread spent decoding the clip (waiting for the consumer costs none)
    error: Exception | None = None


Event = Probed | Window | Decoded


def missing_stream(ext: Extractor, info: MediaInfo, audio_info: MediaInfo) -> str | None:
    if ext.input == "audio" and not audio_info.has_audio:
        return "audio"
    if ext.input in ("frames", "faces", "annotation", "media") and not info.has_video:
        return "video"
    return None


def window_frames(exts: list[Extractor], frames: int) -> int:
    """The decoding window: ``frames`` rounded up to a multiple every video extractor's input needs."""
    multiple = math.lcm(*[e.window_multiple for e in exts]) if exts else 1
    return multiple * max(1, -(-frames // multiple))


def events(clips: Iterable[ClipWork], exts: dict[str, Extractor], frames: int,
           max_side: int | None) -> Iterator[Event]:
    """The shard's decoding, clip by clip (only clips with native work), as events."""
    for work in clips:
        if not work.native:
            continue
        probed = _probe(work, exts)
        yield probed
        if probed.streams:
            yield from _decode(work, [exts[n] for n in probed.streams], frames, max_side)


def _probe(work: ClipWork, exts: dict[str, Extractor]) -> Probed:
    src = work.source
    try:
        info = probe(src.media_path)
        audio_info = probe(src.audio_path) if src.audio_path else info
    except ClipError as exc:
        return Probed(work, error=exc)
    p = Probed(work, info, audio_info)
    for name in work.native:
        why = missing_stream(exts[name], info, audio_info)
        if why:
            p.missing[name] = why
        else:
            p.wanted.append(name)
    p.streams = [n for n in p.wanted if exts[n].input not in NON_STREAM_INPUTS]
    return p


def _decode(work: ClipWork, exts: list[Extractor], frames: int, max_side: int | None) -> Iterator[Event]:
    video = [e for e in exts if e.input in ("frames", "faces")]
    audio = any(e.input == "audio" for e in exts)
    decoder = ClipDecoder(work.source, bool(video), audio, window_frames(video, frames), max_side)
    # CPU time of this thread: it runs beside the model and the face stage, so its wall time would count
    # their use of the core (and of the GIL) as decoding; stages are single-thread seconds (the estimate's rates)
    error, t = None, time.thread_time()
    try:
        yield from (Window(work, win) for win in decoder.windows())
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this clip's failure, told to the consumer
        error = exc
    yield Decoded(work, decoder, time.thread_time() - t, error)
