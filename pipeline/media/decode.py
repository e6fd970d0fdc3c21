"""Decode a clip once with PyAV: video frames with their timestamps, audio at 16 kHz mono float32.

Audio: the mean of the channels at the stream's own rate, then soxr's high-quality resampler to 16 kHz
(``extractors.base.AUDIO_FRONTEND``), not FFmpeg's mono downmix, which is sqrt(2) louder than the mean.

Video is streamed in bounded windows (memory does not grow with clip length); audio, which is small
(2 MB per minute), is collected whole. Clip time 0 is the clip's ``start`` (or the container's start):
audio is padded or trimmed so that sample 0 is clip time 0. A segment (``start``/``end``) of a longer
file is reached by seeking, not by decoding from the beginning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from extractors.base import AUDIO_FRONTEND, VideoSegment
from extractors.threads import worker_threads
from pipeline.errors import ClipError
from pipeline.media.orientation import display_matrix, orientation

SAMPLE_RATE = AUDIO_FRONTEND["sample_rate"]


@dataclass(frozen=True)
class ClipSource:
    """Where a clip's media lives: one row of the manifest, reduced to what decoding needs."""

    clip_id: str
    media_path: str
    audio_path: str | None = None
    start: float | None = None
    end: float | None = None
    annotation_path: str | None = None  # per-frame targets (Aff-Wild2), read by the core, parsed by an extractor
    text: str | None = None  # the transcript, for text extractors
    subject: str | None = None  # left | right: which face is the annotated subject (Aff-Wild2 `_left`/`_right`)


@dataclass
class MediaInfo:
    has_video: bool
    has_audio: bool
    fps: float
    duration: float
    width: int = 0
    height: int = 0
    video_duration: float = math.nan  # the video stream's own, from its header where it has one

    @property
    def frames(self) -> int:
        d = self.video_duration if math.isfinite(self.video_duration) and self.video_duration > 0 else self.duration
        return int(round(self.fps * d)) if self.has_video else 0


def _check_file(path: str, stage: str) -> None:
    p = Path(path)
    if not p.exists():
        raise ClipError(stage, f"file not found: {path}", "fix the path in the manifest or the dataset root")
    if not os.access(p, os.R_OK):
        raise ClipError(stage, f"permission denied: {path}", "make the file readable (chmod a+r) or run as its owner")
    if p.stat().st_size == 0:
        raise ClipError(stage, f"file is empty (0 bytes): {path}", "re-copy the file from the original release")


def open_container(path: str, stage: str = "open") -> av.container.InputContainer:
    """Open a media file, turning every way it can fail into a one-line ClipError."""
    _check_file(path, stage)
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise ClipError(stage, "not a readable media file (invalid data)", "re-encode or remove the file") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise ClipError(stage, f"cannot open: {exc}", "check that the file is a complete media file") from None


def probe(path: str) -> MediaInfo:
    """Stream facts from the container header, without decoding (used by --dry-run and alignment)."""
    with open_container(path, "probe") as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        duration = float(c.duration / av.time_base) if c.duration else 0.0
        fps = float(v.average_rate or v.guessed_rate or 0) if v is not None else 0.0
        return MediaInfo(
            has_video=v is not None,
            has_audio=a is not None,
            fps=fps,
            duration=duration,
            width=v.codec_context.width if v is not None else 0,
            height=v.codec_context.height if v is not None else 0,
            video_duration=float(v.duration * v.time_base) if v is not None and v.duration and v.time_base
            else math.nan,
        )


class ClipDecoder:
    """One pass over a clip's container(s). Iterate :meth:`windows`, then read :attr:`audio`."""

    def __init__(
        self,
        source: ClipSource,
        want_video: bool,
        want_audio: bool,
        window_frames: int = 32,
        max_side: int | None = None,
    ) -> None:
        self.source = source
        self.want_video = want_video
        self.want_audio = want_audio
        self.window_frames = max(1, window_frames)
        self.max_side = max_side
        self.start = float(source.start or 0.0)
        self.end = float(source.end) if source.end is not None else None
        self.audio: np.ndarray | None = None
        self.audio_duration = float("nan")
        self.video_duration = float("nan")
        self.n_frames = 0
        self._samples = _Samples()
        self._audio_first: float | None = None
        self._audio_rate: int | None = None  # the stream's own sample rate
        self._resampler: _Resampler | None = None
        self.orientation = "rot0"  # how stored frames were turned to be upright (the display matrix)
        self.retimed = 0  # frames whose time the frame index gave (the file's timestamps went backwards)
        self.bad_packets: dict[str, int] = {}  # stream type -> damaged packets skipped
        self._t_first: float | None = None
        self._prev_t: float | None = None
        self._last_given: float | None = None  # the time of the last frame handed out in a window
        self._retime, self._shift = False, 0.0
        self._orient: Callable[[np.ndarray], np.ndarray] | None = None
        self._oriented = False

    # -- public ------------------------------------------------------------------------------
    def windows(self) -> Iterator[VideoSegment]:
        src = self.source
        separate_audio = bool(src.audio_path) and src.audio_path != src.media_path
        container = open_container(src.media_path)
        with container:
            v = container.streams.video[0] if container.streams.video else None
            a = container.streams.audio[0] if container.streams.audio else None
            if self.want_video and v is None:
                raise ClipError("decode", "the clip has no video stream", "drop the video extractors for it")
            if self.want_audio and not separate_audio and a is None:
                raise ClipError("decode", "the clip has no audio stream", "give an audio_path or drop audio extractors")
            streams = []
            if self.want_video:
                v.thread_type = "AUTO"
                if worker_threads():  # FFmpeg's frame threads follow the worker's share of the cores
                    v.thread_count = worker_threads()
                streams.append(v)
            if self.want_audio and not separate_audio:
                streams.append(a)
            if streams:
                yield from self._demux(container, streams, v if self.want_video else None)
        if self.want_audio and separate_audio:
            with open_container(src.audio_path, "open audio") as ac:
                if not ac.streams.audio:
                    raise ClipError("decode", f"no audio stream in {src.audio_path}", "fix audio_path in the manifest")
                for _ in self._demux(ac, [ac.streams.audio[0]], None):
                    pass
        if self.want_audio:
            self._finish_audio()

    # -- internals ---------------------------------------------------------------------------
    def _demux(self, container: av.container.InputContainer, streams: list,
               video: av.video.stream.VideoStream | None) -> Iterator[VideoSegment]:
        origin = float(container.start_time / av.time_base) if container.start_time else 0.0
        if self.start > 0:
            try:
                container.seek(int((self.start + origin) * av.time_base), backward=True, any_frame=False)
            except av.error.FFmpegError:
                pass  # not seekable: decode from the beginning and discard
        # packed float at the stream's own layout and rate: one plane of [samples, channels] whatever the layout
        # (planar frames of 8 or more channels gave PyAV a plane too many: to_ndarray read past them, segfault)
        resampler = av.AudioResampler(format="flt")
        fps = float(video.average_rate or video.guessed_rate or 25.0) if video is not None else 25.0
        pending: list[tuple[np.ndarray, float]] = []
        done = {s.index: False for s in streams}
        try:
            for packet in container.demux(*streams):
                kind = packet.stream.type
                if done[packet.stream.index]:
                    if all(done.values()):
                        break
                    continue
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:  # one damaged packet (as FFmpeg's own tools, skipped and counted)
                    self.bad_packets[kind] = self.bad_packets.get(kind, 0) + 1
                    continue
                for frame in frames:
                    t = (frame.time if frame.time is not None else 0.0) - origin - self.start
                    if kind == "video":
                        if t < -1e-6:
                            continue
                        if self.end is not None and t >= self.end - self.start - 1e-6:
                            done[packet.stream.index] = True
                            break
                        pending.append((self._rgb(frame), self._presentation_time(t, fps, pending)))
                        if len(pending) > self.window_frames:
                            yield self._window(pending[: self.window_frames], pending[self.window_frames][1])
                            del pending[: self.window_frames]
                    else:
                        if self.end is not None and t >= self.end - self.start:
                            done[packet.stream.index] = True
                            break
                        self._add_audio(resampler.resample(frame), t)
            if any(s.type == "audio" for s in streams):
                self._add_audio(resampler.resample(None), None)
        except av.error.FFmpegError as exc:
            where = f" at {pending[-1][1]:.2f}s" if pending else ""
            raise ClipError("decode", f"corrupt media{where}: {exc}", "re-encode or replace the file") from None
        if video is not None:
            if not pending and self.n_frames == 0:
                raise ClipError("decode", "the video stream has no decodable frames", "re-encode or replace the file")
            if pending:
                last_end = pending[-1][1] + 1.0 / fps
                if self.end is not None:
                    last_end = min(last_end, self.end - self.start)
                yield self._window(pending, last_end, last=True)
            else:
                yield self._window([], 0.0, last=True)

    def _presentation_time(self, t: float, fps: float, pending: list[tuple[np.ndarray, float]]) -> float:
        """``t``, or, once the file's timestamps went backwards (a damaged AVI: B-frames stamped in decode
        order), the frame index's time from then on: frames come out of the decoder in presentation order, so
        the index is the order they are shown in. The frames not yet handed out are re-timed too, after the
        last one that was; ``retimed`` counts the frames whose time the index made."""
        if self._t_first is None:
            self._t_first = t
        if not self._retime and self._prev_t is not None and t < self._prev_t - 1e-6:
            self._retime = True
            first = self.n_frames  # the first frame still pending: re-timed with those after it
            after = (self._last_given + 1.0 / fps) if self._last_given is not None else self._t_first
            self._shift = max(0.0, after - (self._t_first + first / fps))
            pending[:] = [(img, self._t_first + self._shift + (first + j) / fps) for j, (img, _) in enumerate(pending)]
            self.retimed += len(pending)
        self._prev_t = t
        if not self._retime:
            return t
        self.retimed += 1
        return self._t_first + self._shift + (self.n_frames + len(pending)) / fps

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if not self._oriented:  # the stream's display matrix rides on its frames: read once, at the first
            self.orientation, self._orient = orientation(display_matrix(frame))
            self._oriented = True
        if self.max_side and max(frame.width, frame.height) > self.max_side:
            s = self.max_side / max(frame.width, frame.height)
            frame = frame.reformat(width=int(frame.width * s) // 2 * 2, height=int(frame.height * s) // 2 * 2)
        rgb = frame.to_ndarray(format="rgb24")
        return rgb if self._orient is None else np.ascontiguousarray(self._orient(rgb))

    def _window(self, items: list[tuple[np.ndarray, float]], next_time: float, last: bool = False) -> VideoSegment:
        times = np.array([t for _, t in items], dtype=np.float64)
        ends = np.append(times[1:], next_time) if len(times) else times
        frames = np.stack([f for f, _ in items]) if items else np.zeros((0, 1, 1, 3), np.uint8)
        self.n_frames += len(items)
        if len(items):
            self.video_duration = float(ends[-1])
            self._last_given = float(times[-1])
        return VideoSegment(self.source.clip_id, frames, times, ends, last=last)

    def _add_audio(self, frames: list, t: float | None) -> None:
        for f in frames:
            if self._audio_first is None:
                self._audio_first = t if t is not None else 0.0
            rate = int(f.sample_rate)
            if rate != self._audio_rate:  # the first frame, or a mid-stream rate change: a new stream
                self._flush_resampler()
                self._resampler = _Resampler(rate, SAMPLE_RATE)
            self._audio_rate = rate
            ch = len(f.layout.channels)
            x = np.frombuffer(f.planes[0], np.float32, f.samples * ch).reshape(f.samples, ch).mean(1, dtype=np.float32)
            self._samples.add(self._resampler.add(x))  # 16 kHz as it arrives: a long clip is not held twice

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            self._samples.add(self._resampler.add(np.zeros(0, np.float32), last=True))
            self._resampler = None

    def _finish_audio(self) -> None:
        self._flush_resampler()
        x = self._samples.take()
        if len(x) == 0 and self.bad_packets.get("audio"):
            raise ClipError("decode", f"the audio stream does not decode ({self.bad_packets['audio']} damaged packets, "
                            "no samples)", "re-encode or replace the file")
        if len(x) == 0:  # an empty track (not a damaged one: that raises while decoding): no audio, said by None
            self.audio, self.audio_duration = None, float("nan")
            return
        lead = round((self._audio_first or 0.0) * SAMPLE_RATE)
        x = np.pad(x, (lead, 0)) if lead > 0 else x[-lead:]
        if self.end is not None:
            x = x[: round((self.end - self.start) * SAMPLE_RATE)]
        self.audio = np.ascontiguousarray(x, dtype=np.float32)
        self.audio_duration = len(x) / SAMPLE_RATE


class _Samples:
    """A growing float32 signal kept in a few large blocks instead of one small array per audio frame.

    Thousands of small arrays that live until the clip ends, allocated between the video frames the
    same thread decodes (2.8 MB each at 720p, below the worker's mmap threshold), pin the heap above
    them: glibc can trim only its top, so a worker's RSS grew with the clip's length (a 10-minute 720p
    clip: +9 GB). Blocks of BLOCK samples (16 MiB: mmap'd, untouched pages cost nothing) do not."""

    BLOCK = 1 << 22

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.fill = 0  # samples used in the last block

    def add(self, x: np.ndarray) -> None:
        while len(x):
            if not self.blocks or self.fill == len(self.blocks[-1]):
                self.blocks.append(np.empty(self.BLOCK, np.float32))
                self.fill = 0
            n = min(len(x), len(self.blocks[-1]) - self.fill)
            self.blocks[-1][self.fill : self.fill + n] = x[:n]
            self.fill, x = self.fill + n, x[n:]

    def take(self) -> np.ndarray:
        """All samples as one array (a copy only when they span several blocks); empties the buffer."""
        if not self.blocks:
            return np.zeros(0, np.float32)
        self.blocks[-1] = self.blocks[-1][: self.fill]
        out = self.blocks[0] if len(self.blocks) == 1 else np.concatenate(self.blocks)
        self.blocks, self.fill = [], 0
        return out


class _Resampler:
    """soxr's high-quality resampler (AUDIO_FRONTEND) fed frame by frame: the same samples as
    ``soxr.resample`` on the whole signal, without holding the signal at its own rate."""

    def __init__(self, rate: int, target: int) -> None:
        self.stream = None
        if rate != target:
            import soxr

            self.stream = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ")

    def add(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return x.astype(np.float32, copy=False)
        return self.stream.resample_chunk(np.ascontiguousarray(x, np.float32), last=last).astype(np.float32,
                                                                                                 copy=False)
