"""One Dask task: a shard of clips, each decoded once and fed to every extractor that needs it.

The task is idempotent: everything it writes is named by the content it holds, so if its worker dies
and Dask runs it again elsewhere, the second attempt writes the same parts and index files (or finds
them committed) and no clip is stored twice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from extractors import registry, weights
from extractors.base import (
    AnnotationSegment,
    AudioSegment,
    Extractor,
    Features,
    MediaSegment,
    TextSegment,
    VideoSegment,
)
from pipeline.errors import describe_exception
from pipeline.media.decode import ClipSource, MediaInfo
from pipeline.media.face import FaceStage
from pipeline.shard.batcher import Batcher
from pipeline.shard.clip_buffer import ClipBuffer
from pipeline.shard.decode_ahead import Decoded, Event, Probed, Window, events
from pipeline.shard.part_writer import PartWriter, decoded_meta, meta_from_row
from pipeline.shard.prefetch import prefetch
from pipeline.shard.reporter import Reporter
from pipeline.shard.work import ClipWork, ShardTask
from stores.feature_store import FeatureStore


@dataclass
class ShardResult:
    shard: int
    clips: int
    counts: dict[str, int]
    calls: dict[str, int]
    compute_s: dict[str, float]
    decode_s: float = 0.0
    wall_s: float = 0.0
    frames: int = 0
    media_s: float = 0.0  # seconds of media of the shard's clips (progress counts them)
    stage_s: dict[str, float] = field(default_factory=dict)  # stage -> seconds (decode, face stage, extractors)
    stage_media_s: dict[str, float] = field(default_factory=dict)  # stage -> media seconds it processed
    stage_units: dict[str, float] = field(default_factory=dict)  # stage -> its work units (``stage_units``)
    failures: list[str] = field(default_factory=list)
    worker: str = ""  # the Dask worker that ran it, and when it ended (the run's end-of-run tail)
    ended_at: float = 0.0


FACE_STAGE = "face stage"


def decode_stage(video: bool, audio: bool) -> str:
    """The name a decoding pass is timed under: its cost depends on the streams it decodes."""
    return "decode " + "+".join(k for k, on in (("video", video), ("audio", audio)) if on)


def pixel_stage(stage: str) -> bool:
    """Whether a stage's cost grows with the pixels it decodes or searches (``stage_units``)."""
    return stage == FACE_STAGE or stage.startswith("decode video")


def stage_units(stage: str, media_s: float, info: MediaInfo | None) -> float:
    """What a stage's cost grows with: decoding video and the face stage with pixels shown (media seconds x
    frames per second x megapixels: a 720p clip costs ~9x a 240p one, whatever its length), every other stage
    with media seconds. The estimate rates stages per unit, so calibrating on small clips estimates large ones."""
    if not pixel_stage(stage) or info is None or not info.width or not info.height or not info.fps:
        return media_s
    return media_s * info.fps * info.width * info.height / 1e6


def _declared(src: ClipSource, info: MediaInfo) -> float:
    """The clip's duration before decoding: the segment's length, or the container's from start on."""
    return (src.end - (src.start or 0.0)) if src.end is not None else info.duration - (src.start or 0.0)


def process_shard(task: ShardTask) -> ShardResult:
    """The Dask task function."""
    t0 = time.perf_counter()
    runner = _ShardRunner(task)
    try:
        for work in task.clips:
            runner.run_clip(work)
        runner.finish()
    finally:
        runner.decoding.close()  # stops the decoding thread if a clip's handling raised
    r = runner.result
    r.wall_s = time.perf_counter() - t0
    r.worker, r.ended_at = runner.progress.worker, time.time()
    return r


class _ShardRunner:
    def __init__(self, task: ShardTask) -> None:
        self.task = task
        cfg = self.cfg = task.config
        self.store = FeatureStore(cfg.store)
        weights.set_models_dir(cfg.models_dir)
        self.exts: dict[str, Extractor] = {s.name: registry.instance(s) for s in cfg.extractors}
        for e in self.exts.values():
            e.ensure_setup(cfg.device)
        self.writer = PartWriter(self.store, cfg.run_id, cfg.descriptions, cfg.align, cfg.dtype)
        self.partial: dict[tuple[str, str], ClipBuffer] = {}
        self.dead: set[tuple[str, str]] = set()
        self.keys: dict[tuple[str, str], str] = {}
        self.secs: dict[tuple[str, str], float] = {}
        self.ready: list[tuple[str, str, Features]] = []  # finished results waiting for their clip's facts
        self.expect: dict[str, list[str]] = {}  # clip -> extractors to run on it (results held until all are done)
        self.video_decoded: set[str] = set()
        self.batchers = {n: self._batcher(n, e) for n, e in self.exts.items()}
        self.result = ShardResult(task.shard, len(task.clips), self.writer.counts, {}, {})
        self.progress = Reporter(task.shard)
        # the shard's decoding, one window ahead across clip boundaries (pipeline/shard/decode_ahead.py)
        self.decoding = prefetch(events(task.clips, self.exts, cfg.window_frames, cfg.max_side), depth=1)

    def _batcher(self, name: str, ext: Extractor) -> Batcher:
        own = ext.batch_budget(self.cfg.device)
        if ext.input == "audio":
            budget, size = own or self.cfg.batch_seconds, lambda s: len(s.samples) / s.sample_rate
        elif ext.input in ("annotation", "media"):
            budget, size = 1, lambda s: 1
        elif ext.input == "text":
            budget, size = 64, lambda s: 1
        else:
            budget, size = own or self.cfg.batch_frames, lambda s: max(1, len(s.frames))
        return Batcher(
            ext, budget, size,
            on_result=lambda clip, item, out, dt: self._on_result(name, clip, item, out, dt),
            on_error=lambda clip, exc: self._fail(clip, name, describe_exception(f"extract {name}", exc)),
        )

    # -- per clip ------------------------------------------------------------------------------
    def run_clip(self, work: ClipWork) -> None:
        clip = work.source.clip_id
        if work.native:
            self.expect[clip] = list(work.native)
        for name in work.native:
            self.keys[(clip, name)] = work.keys[name]
        if work.native:
            self._extract(work)
        for name in work.align:
            if name not in work.native and name in work.stored:
                row = work.stored[name]
                self.writer.meta.setdefault(clip, meta_from_row(row))
                if row.get("status") == "excluded":  # excluded natively (no such modality): so in every view
                    self.writer.add_aligned_excluded(clip, name, row["key"], str(row["reason"]))
                    continue
                try:
                    self.writer.add_aligned(clip, name, self.store.read(row), row["key"])
                    if row["clip_id"] != clip:
                        self.writer.add_alias(clip, name, row)
                except Exception as exc:  # noqa: BLE001 - unreadable stored result: recompute next run
                    self.result.failures.append(f"{clip}: align {name}: {exc}")
        meta = self.writer.meta.get(clip)
        if meta is not None and math.isfinite(meta.duration):
            self.result.media_s += meta.duration
            self.progress.report(clip, meta.duration, meta.duration, force=True)

    def _extract(self, work: ClipWork) -> None:
        clip = work.source.clip_id
        probed = self._next(work)
        assert isinstance(probed, Probed), probed
        if probed.error is not None:
            for name in work.native:
                self._fail(clip, name, probed.error.line())
            return
        src, length = work.source, probed.info.duration
        if src.start is not None and length > 0 and src.start >= length - 1e-3:  # a segment of nothing
            for name in work.native:
                self._fail(clip, name, f"segment: starts at {src.start:g} s, after the end of its media "
                                       f"({length:.2f} s long): fix the start of clip {clip!r} in the list")
            return
        for name, missing in probed.missing.items():
            self._exclude(clip, name, f"the clip has no {missing} stream ({name} needs one): excluded, not failed")
        info = probed.info
        if probed.streams:
            self._decode(work, probed)
        for name in probed.wanted:  # after decoding, so the clip's durations are the decoded ones
            if self.exts[name].input == "annotation":
                self._annotation(work, name, info)
        for name in probed.wanted:
            if self.exts[name].input != "text":
                continue
            self._ensure_meta(work, info)
            if not work.source.text:
                self._fail(work.source.clip_id, name, "text: the manifest has no transcript for this clip")
                continue
            self.batchers[name].add(TextSegment(work.source.clip_id, work.source.text,
                                                self.writer.meta[work.source.clip_id].duration))
            self._drain()
        for name in probed.wanted:
            if self.exts[name].input != "media":
                continue
            self._ensure_meta(work, info)
            src = work.source
            frames = (info.frames if src.start is None and src.end is None
                      else int(round(info.fps * ((src.end or info.duration) - (src.start or 0.0)))))
            self.batchers[name].add(MediaSegment(src.clip_id, src.media_path, src.start, src.end, info.fps, frames))
            self._drain()

    def _next(self, work: ClipWork) -> Event:
        """The decoding stream's next event; it must be ``work``'s (both walk the shard's clips in order)."""
        ev = next(self.decoding)
        if ev.work is not work:
            raise RuntimeError(f"decoding stream out of step: {ev.work.source.clip_id} for {work.source.clip_id}")
        return ev

    def _decode(self, work: ClipWork, probed: Probed) -> None:
        src, clip, wanted, info = work.source, work.source.clip_id, probed.streams, probed.info
        video = [n for n in wanted if self.exts[n].input in ("frames", "faces")]
        audio = [n for n in wanted if self.exts[n].input == "audio"]
        if video:
            self.video_decoded.add(clip)
        crops = {n: self.exts[n].face_crop for n in video if self.exts[n].input == "faces"}
        stage = FaceStage(replace(self.cfg.face, device=self.cfg.device), crops.values(),
                          src.subject) if crops else None
        declared = _declared(src, info)
        face_s, broken = 0.0, None
        while isinstance(ev := self._next(work), Window):  # decoded ahead in the stream's thread
            if broken is None:
                try:
                    face_s += self._window(clip, ev.window, declared, video, stage, crops)
                except Exception as exc:  # noqa: BLE001 - the clip fails; its remaining windows are drained
                    broken = describe_exception("decode", exc)
        assert isinstance(ev, Decoded), ev
        if ev.error is not None and broken is None:
            broken = describe_exception("decode", ev.error)
        decoder = ev.decoder
        turned = decoder.orientation != "rot0"
        notes = [f"frames turned upright ({decoder.orientation}, the display matrix)"] if turned else []
        for kind, n in sorted(decoder.bad_packets.items()):
            notes.append(f"{n} damaged {kind} packet(s) skipped")
        if decoder.retimed:
            notes.append(f"frame times from the frame index: the file's timestamps go backwards ({decoder.retimed} "
                         f"of {decoder.n_frames} frames re-timed)")
        if notes:
            self.writer.notes[clip] = "; ".join(notes)
        if broken is None:
            self.writer.meta[clip] = decoded_meta(work.fingerprint, declared, decoder.audio_duration,
                                                  decoder.video_duration)
            if not audio:
                self.writer.meta[clip].audio_duration = self._stream_duration(probed.audio_info, "audio", declared)
            if not video and info.has_video:
                self.writer.meta[clip].video_duration = self._stream_duration(info, "video", declared)
            try:
                for n in audio:
                    if decoder.audio is None:  # a track that holds no samples: no audio to extract from
                        self._exclude(clip, n, "the clip's audio stream holds no samples (an empty track): "
                                               "excluded, not failed")
                        continue
                    self.batchers[n].add(AudioSegment(clip, decoder.audio))
            except Exception as exc:  # noqa: BLE001 - as a failure while decoding: this clip's alone
                broken = describe_exception("decode", exc)
        if broken is not None:
            for n in wanted:
                self._fail(clip, n, broken)
        self.result.decode_s += ev.seconds + face_s  # decoding and the face stage
        media = self.writer.meta[clip].duration if clip in self.writer.meta else 0.0
        self._stage(decode_stage(bool(video), bool(audio)), ev.seconds, media, info)
        if stage is not None:
            self._stage(FACE_STAGE, face_s, media, info)
        self.result.frames += decoder.n_frames
        self._drain()

    def _window(self, clip: str, win: VideoSegment, declared: float, video: list[str], stage: FaceStage | None,
                crops: dict) -> float:
        """One decoded window to the face stage and the video extractors; returns the face stage's seconds."""
        if len(win.ends):
            self.progress.report(clip, float(win.ends[-1]), declared)
        t = time.perf_counter()
        faces = stage.process(win) if stage is not None else {}
        face_s = time.perf_counter() - t
        for n in video:
            self.batchers[n].add(faces[crops[n]] if n in crops else win)
        return face_s

    def _annotation(self, work: ClipWork, name: str, info: MediaInfo) -> None:
        """Per-frame targets: the core reads the file, the extractor parses it (fps from the container)."""
        clip, path = work.source.clip_id, work.source.annotation_path
        if not path:
            self._fail(clip, name, f"annotation: the manifest gives no annotation_path ({name} needs one)")
            return
        try:
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
        except OSError as exc:
            self._fail(clip, name, f"annotation: cannot read {path}: {exc.strerror or exc}")
            return
        self._ensure_meta(work, info)
        self.batchers[name].add(AnnotationSegment(clip, text, info.fps or 25.0, info.frames))
        self._drain()

    def _ensure_meta(self, work: ClipWork, info: MediaInfo) -> None:
        """Clip facts from the container when no stream of the clip was decoded in this task."""
        src = work.source
        if src.clip_id not in self.writer.meta:
            declared = _declared(src, info)
            self.writer.meta[src.clip_id] = decoded_meta(work.fingerprint, declared, math.nan, declared)

    @staticmethod
    def _stream_duration(info: MediaInfo, kind: str, declared: float) -> float:
        """A stream not decoded here: its header's duration for a whole-file video, else the clip's."""
        if kind == "video" and info.has_video and math.isfinite(info.video_duration) and declared == info.duration:
            return info.video_duration
        has = info.has_audio if kind == "audio" else info.has_video
        return declared if has else math.nan

    def _stage(self, name: str, seconds: float, media_s: float, info: MediaInfo | None = None) -> None:
        if math.isfinite(media_s) and media_s > 0:
            r = self.result
            r.stage_s[name] = r.stage_s.get(name, 0.0) + seconds
            r.stage_media_s[name] = r.stage_media_s.get(name, 0.0) + media_s
            r.stage_units[name] = r.stage_units.get(name, 0.0) + stage_units(name, media_s, info)

    # -- results -------------------------------------------------------------------------------
    def _on_result(self, name: str, clip: str, item: AudioSegment | VideoSegment, out: Features, dt: float) -> None:
        key = (clip, name)
        if key in self.dead:
            return
        buf = self.partial.setdefault(key, ClipBuffer(self.exts[name].dim))
        buf.add(out)
        self.secs[key] = self.secs.get(key, 0.0) + dt
        if isinstance(item, VideoSegment) and not item.last:
            return
        self.partial.pop(key)
        if not buf.finite:
            buf.close()
            self._fail(clip, name, f"extract {name}: produced non-finite values")
            return
        self.ready.append((clip, name, buf.finish()))
        self._drain()

    def _drain(self) -> None:
        """Hand finished results to the writer once their clip is fully decoded (durations known) and every
        extractor of the clip is done: a video tool's frames (OpenFace) then give the video's duration
        where the video was not decoded here, so the audio/video gap is judged on feature frames."""
        waiting, done = [], {(c, n) for c, n, _ in self.ready} | self.dead
        for clip, name, feats in self.ready:
            if (clip, name) in self.dead:
                continue
            if clip not in self.writer.meta or not all((clip, n) in done for n in self.expect.get(clip, ())):
                waiting.append((clip, name, feats))
                continue
            self._video_from_frames(clip)
            secs = self.secs.pop((clip, name), 0.0)
            self.writer.add_native(clip, name, feats, self.keys[(clip, name)], secs)
            self._stage(name, secs, self.writer.meta[clip].duration)
        self.ready = waiting

    def _video_from_frames(self, clip: str) -> None:
        if self.expect.pop(clip, None) is None or clip in self.video_decoded:
            return
        ends = [float(f.end[-1]) for c, n, f in self.ready
                if c == clip and self.exts[n].input == "media" and len(f) and (c, n) not in self.dead]
        if ends and math.isfinite(max(ends)):
            self.writer.meta[clip].video_duration = max(ends)

    def _exclude(self, clip: str, name: str, reason: str) -> None:
        key = (clip, name)
        if key in self.dead:
            return
        self.dead.add(key)
        self.writer.add_excluded(clip, name, self.keys.get(key, ""), reason)

    def _fail(self, clip: str, name: str, reason: str) -> None:
        key = (clip, name)
        if key in self.dead:
            return
        self.dead.add(key)
        buf = self.partial.pop(key, None)
        if buf is not None:
            buf.close()
        self.writer.add_failed(clip, name, self.keys.get(key, ""), reason)
        self.result.failures.append(f"{clip}: {reason}")

    def finish(self) -> None:
        for b in self.batchers.values():
            b.flush()
        self._drain()
        self.writer.flush()
        self.result.calls = {n: b.calls for n, b in self.batchers.items()}
        self.result.compute_s = {n: b.seconds for n, b in self.batchers.items()}
