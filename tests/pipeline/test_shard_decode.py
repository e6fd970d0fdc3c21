"""A shard's clips are decoded ahead of the model across clip boundaries: the next clip is decoded while the
batch the previous clip completed is computing (real files, the real decoder, the real shard task)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from extractors import registry
from extractors.base import Extractor, Features, NoConfig
from pipeline.media import synth
from pipeline.media.decode import ClipDecoder, ClipSource
from pipeline.shard import decode_ahead as shard_decode
from pipeline.shard.task import process_shard
from pipeline.shard.work import ClipWork, ShardTask, TaskConfig
from stores.feature_store import FeatureStore

COMPUTE_S = 0.4
CALLS: list[tuple[float, float, list[str]]] = []  # (start, end, clips) of each compute call


@dataclass(frozen=True)
class _Cfg(NoConfig):
    pass


@registry.register_extractor
class _SlowAudio(Extractor):
    """Stands for a model: one clip per call (budget 1 s of audio), the call takes COMPUTE_S."""

    name = "test_slow_audio"
    modality = "audio"
    input = "audio"
    Config = _Cfg

    @property
    def feature_names(self) -> list[str]:
        return ["rms"]

    @property
    def rate(self) -> float:
        return 10.0

    def batch_budget(self, device: str) -> float:
        return 1.0

    def compute(self, batch):
        t = time.perf_counter()
        time.sleep(COMPUTE_S)  # a model's forward releases the GIL as this does
        out = []
        for seg in batch:
            x = seg.samples[: len(seg.samples) // 1600 * 1600].reshape(-1, 1600)
            start = np.arange(len(x)) * 0.1
            out.append(Features(np.sqrt((x**2).mean(1, keepdims=True)), start, start + 0.1))
        CALLS.append((t, time.perf_counter(), [s.clip_id for s in batch]))
        return out


def test_the_next_clip_is_decoded_while_the_model_computes_on_the_previous(tmp_path, monkeypatch):
    paths = []
    for i in range(4):
        p = tmp_path / f"c{i}.wav"
        synth.write_wav(p, synth.voice(1.2, 120 + 10 * i, 4, 0.5, i, 16000), 16000)
        paths.append(p)
    started: dict[str, tuple[float, str]] = {}  # clip -> (when its decoding began, in which thread)

    class Recording(ClipDecoder):
        def windows(self):
            started[self.source.clip_id] = (time.perf_counter(), threading.current_thread().name)
            yield from super().windows()

    monkeypatch.setattr(shard_decode, "ClipDecoder", Recording)
    CALLS.clear()
    store = str(tmp_path / "s.zarr")
    FeatureStore(store, create=True)
    name = _SlowAudio.name
    works = [ClipWork(ClipSource(p.stem, str(p)), f"fp{p.stem}", {name: p.stem}, [name], [name]) for p in paths]
    res = process_shard(ShardTask(0, works, TaskConfig(store, "run", (registry.spec(name),),
                                                        {name: registry.create(name).describe()})))
    assert res.counts["ok"] == 4, res.failures
    assert [c for _, _, clips in CALLS for c in clips] == ["c0", "c1", "c2", "c3"]  # one clip per call, in order
    assert {thread for _, thread in started.values()} == {"prefetch"}  # decoded off the task's thread
    for (t0, t1, (clip,)), nxt in zip(CALLS, ["c1", "c2", "c3"]):
        assert t0 < started[nxt][0] < t1, f"{nxt} was not decoded while {clip}'s batch computed"
    assert res.stage_s["decode audio"] > 0 and res.stage_s[name] >= 4 * COMPUTE_S * 0.9
    stored = FeatureStore(store).index()
    assert (stored[stored.stage == "native"].status == "ok").sum() == 4


def test_events_skip_clips_without_native_work_and_report_each_clips_failures(tmp_path):
    good = tmp_path / "good.wav"
    synth.write_wav(good, synth.voice(1.0, 130, 4, 0.5, 0, 16000), 16000)
    (tmp_path / "bad.mp4").write_bytes(b"not media at all" * 100)
    name = _SlowAudio.name
    exts = {name: registry.create(name), "face_hog": registry.create("face_hog")}
    works = [
        ClipWork(ClipSource("aligned_only", str(good)), "fp0", {}, [], [name]),  # nothing native: no events
        ClipWork(ClipSource("bad", str(tmp_path / "bad.mp4")), "fp1", {name: "k1"}, [name], [name]),
        ClipWork(ClipSource("good", str(good)), "fp2", {name: "k2", "face_hog": "k3"}, [name, "face_hog"],
                 [name, "face_hog"]),
    ]
    evs = list(shard_decode.events(works, exts, 32, None))
    assert [type(e).__name__ for e in evs] == ["Probed", "Probed", "Decoded"]
    bad, good_probe, decoded = evs
    assert bad.work.source.clip_id == "bad" and "not a readable media file" in bad.error.line()
    assert good_probe.missing == {"face_hog": "video"} and good_probe.streams == [name]
    assert decoded.error is None and decoded.decoder.audio_duration > 0.9 and decoded.seconds > 0
