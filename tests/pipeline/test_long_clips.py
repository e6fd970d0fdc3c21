"""Long clips: a clip's output is spilled to disk window by window, so a worker's memory does not grow
with clip length, and what the store holds is the same as when the clip fits in memory."""

from __future__ import annotations

import tracemalloc

import numpy as np

from extractors import features, registry
from extractors.base import Features
from pipeline.media import synth
from pipeline.media.decode import ClipSource
from pipeline.media.face import FaceConfig
from pipeline.shard import clip_buffer
from pipeline.shard.align import AlignConfig, align
from pipeline.shard.task import process_shard
from pipeline.shard.work import ClipWork, ShardTask, TaskConfig
from stores import feature_store
from stores.feature_store import FeatureStore

NAMES = ["face_hog", "logmel"]


def _clip(path, seconds: float, size: int = 96):
    frames = synth.animate_face(synth.face_image(size), int(seconds * 25), 25, 0, 1, 1, 1, 0)
    synth.write_clip(path, frames, 25, synth.voice(seconds, 150, 4, 0.5, 0))
    return path


def _extract(path, store: str, names: list[str] = NAMES) -> FeatureStore:
    FeatureStore(store, create=True)
    desc = {n: registry.create(n).describe() for n in names}
    work = ClipWork(ClipSource("clip", str(path)), "fp", {n: n for n in names}, names, names)
    face = FaceConfig(detector="haar")
    shared = TaskConfig(store, "run", tuple(registry.spec(n) for n in names), desc, face, AlignConfig())
    res = process_shard(ShardTask(0, [work], shared))
    assert res.counts["ok"] == len(names), res.failures
    return FeatureStore(store)


def _stored(store: FeatureStore) -> dict:
    live = store.index().set_index(["stage", "extractor"])
    return {k: store.read(row) for k, row in live.iterrows() if row["status"] == "ok"}


def test_a_spilled_clip_is_stored_as_the_same_clip_in_memory(tmp_path, monkeypatch):
    clip = _clip(tmp_path / "c.mp4", 6.0)
    held = _stored(_extract(clip, str(tmp_path / "held.zarr")))
    monkeypatch.setattr(clip_buffer, "SPILL_BYTES", 1)  # spill from the first window on
    monkeypatch.setattr(feature_store, "SHARD_CHUNKS", 2)  # several shard files, written one by one
    spilled_store = _extract(clip, str(tmp_path / "spilled.zarr"))
    spilled = _stored(spilled_store)
    assert set(spilled) == set(held) == {(s, n) for s in ("native", "aligned") for n in NAMES}
    for key, a in held.items():
        b = spilled[key]
        assert len(a) == len(b) > 0, key
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.start, b.start)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-6, atol=1e-6, err_msg=str(key))
    hog = spilled_store.index().query("stage == 'native' and extractor == 'face_hog'").iloc[0]
    shards = list((tmp_path / "spilled.zarr" / hog["part"] / "values" / "c").rglob("*"))
    assert len([p for p in shards if p.is_file()]) > 1  # the values were written shard by shard


def test_alignment_of_spilled_values_equals_alignment_in_memory():
    rng = np.random.default_rng(0)
    n, dim = 1000, 7
    start = np.sort(rng.uniform(0, 20, n))
    feats = Features(rng.normal(size=(n, dim)).astype(np.float32), start, start + 0.04, rng.random(n) > 0.2)
    buf = clip_buffer.ClipBuffer(dim, spill_bytes=1)
    for lo in range(0, n, 64):
        buf.add(Features(feats.values[lo:lo + 64], feats.start[lo:lo + 64], feats.end[lo:lo + 64],
                         feats.mask[lo:lo + 64]))
    spilled = buf.finish()
    assert spilled.spilled and len(spilled) == n
    for method in ("mean", "subsample"):
        a, b = align(feats, 20.04, AlignConfig(method=method)), align(spilled, 20.04, AlignConfig(method=method))
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(features.take(spilled.values, np.array([999, 0, 500])),
                                  feats.values[[999, 0, 500]])
    buf.close()


def test_worker_memory_is_flat_in_clip_length(tmp_path, monkeypatch):
    """Peak traced memory of one task on a 16 s clip within 1.25x of a 4 s clip's (native face_hog
    output is 24 KB a frame; the spill threshold, read blocks and shard files are scaled down with the
    clips, as both clips must exceed them — real sizes are 64/16/32 MB against 440 MB for 10 min of 720p)."""
    monkeypatch.setattr(clip_buffer, "SPILL_BYTES", 1 << 20)
    monkeypatch.setattr(features, "BLOCK_BYTES", 256 << 10)
    monkeypatch.setattr(feature_store, "SHARD_CHUNKS", 1)
    clips = {secs: _clip(tmp_path / f"c{secs:g}.mp4", secs, size=64) for secs in (4.0, 16.0)}
    _extract(clips[4.0], str(tmp_path / "warm.zarr"), ["face_hog"])  # imports and caches outside the count
    peaks = {}
    for secs, clip in clips.items():
        tracemalloc.start()
        _extract(clip, str(tmp_path / f"s{secs:g}.zarr"), ["face_hog"])
        peaks[secs] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[16.0] <= 1.25 * peaks[4.0], {k: f"{v / 1e6:.1f} MB" for k, v in peaks.items()}


DECODE_RSS = """
import resource, sys
from pipeline.runtime.worker_setup import tune_malloc
tune_malloc()  # as in every Dask worker
from pipeline.media.decode import ClipDecoder, ClipSource
from pipeline.shard.prefetch import prefetch
dec = ClipDecoder(ClipSource("c", sys.argv[1]), True, True, 32)
for win in prefetch(dec.windows(), depth=1):  # decoded in a thread, as in a shard task
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(dec.audio))
"""


def test_decoding_audio_with_video_does_not_grow_the_heap_with_clip_length(tmp_path):
    """The kept audio samples (small arrays, one per audio frame) used to pin the heap between the 720p
    video frames decoded in the same thread: RSS grew ~0.6 MB per video frame (10-minute clip: +9 GB).
    Decoding a 720p clip of 24 s must cost about what 6 s costs."""
    import subprocess
    import sys

    import cv2

    rss = {}
    for secs in (6, 24):
        path = tmp_path / f"c{secs}.mp4"
        frames = (cv2.copyMakeBorder(f, 0, 0, 280, 280, cv2.BORDER_CONSTANT)
                  for f in synth.animate_face(synth.face_image(720), secs * 25, 25, 0, 1, 1, 1, 0))
        synth.write_clip(path, frames, 25, synth.voice(secs, 150, 4, 0.5, 0))
        out = subprocess.run([sys.executable, "-c", DECODE_RSS, str(path)], capture_output=True, text=True,
                             check=True, timeout=300).stdout.split()
        assert abs(int(out[1]) - secs * 16000) < 1600  # AAC priming and padding
        rss[secs] = float(out[0])
    assert rss[24] < rss[6] + 60, rss  # MB; 18 s more of 720p frames pinned ~270 MB before
