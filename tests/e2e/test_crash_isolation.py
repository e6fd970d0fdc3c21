"""A clip that kills its worker costs only itself; multichannel audio is read as the mean of its channels.

Real media written by FFmpeg (PyAV's encoder): a 7.1 (8-channel) WAV made PyAV's planar `to_ndarray` read a
plane past the last channel and segfault the worker; every clip of its task was lost on every rerun. The
isolation is tested with a real worker death too: a probe extractor sends SIGSEGV to its own worker process
on one clip (tests/helpers/crash_probe.py), on the real local Dask cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from pipeline.media import synth
from pipeline.media.decode import ClipDecoder, ClipSource
from stores.feature_store import FeatureStore
from tests.helpers.cli import ROOT, cli

RATE = 48000


def write_wav(path: Path, channels: np.ndarray, layout: str) -> None:
    """``channels`` [C, n] float in [-1, 1] as 16-bit PCM with the given FFmpeg channel layout."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE)
        stream.layout = layout
        pcm = (np.clip(channels, -1, 1) * 32767).astype(np.int16)
        for i in range(0, pcm.shape[1], 1024):
            chunk = np.ascontiguousarray(pcm[:, i:i + 1024].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _tones(n_channels: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.stack([0.3 * np.sin(2 * np.pi * (200 + 60 * c) * t) for c in range(n_channels)])


def _decode(path: Path) -> np.ndarray:
    dec = ClipDecoder(ClipSource(path.stem, str(path)), want_video=False, want_audio=True)
    list(dec.windows())
    return np.asarray(dec.audio)


def test_multichannel_audio_is_the_mean_of_its_channels(tmp_path: Path) -> None:
    """5.1 and 7.1 decode (in a child process: a regression segfaults it, not the test run) to the same
    signal as a mono file holding the channel mean, as stereo always did."""
    for layout, n in (("stereo", 2), ("5.1", 6), ("7.1", 8)):
        tones = _tones(n)
        write_wav(tmp_path / f"{n}ch.wav", tones, layout)
        write_wav(tmp_path / f"{n}mean.wav", tones.mean(0, keepdims=True), "mono")
    code = ("import json, sys; from tests.e2e.test_crash_isolation import _decode; from pathlib import Path; "
            "print(json.dumps({p: _decode(Path(p)).tolist() for p in sys.argv[1:]}))")
    paths = [str(tmp_path / f"{n}{k}.wav") for n in (2, 6, 8) for k in ("ch", "mean")]
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {Path(k).stem: np.asarray(v) for k, v in json.loads(proc.stdout).items()}
    for n in (2, 6, 8):
        a, b = got[f"{n}ch"], got[f"{n}mean"]
        assert len(a) == len(b) == 16000
        assert np.abs(a - b).max() < 2e-4, n  # 16-bit rounding of each channel vs of their mean


def test_a_clip_that_kills_its_worker_is_a_failed_row_and_its_task_is_stored(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(3):
        synth.write_wav(root / f"good{i}.wav", synth.voice(1.0, 120 + 20 * i, 4, 0.5, i, 16000), 16000)
    synth.write_wav(root / "crash.wav", synth.voice(1.0, 150, 4, 0.5, 9, 16000), 16000)
    write_wav(root / "surround71.wav", _tones(8), "7.1")
    store = tmp_path / "s.zarr"
    code = "import tests.helpers.crash_probe; from pipeline.cli import app; app()"
    args = ["extract", "--dataset", "folder", "--root", str(root), "--store", str(store), "--extractors",
            "logmel,crash_probe", "--shard-size", "5", "--quiet", "--json"]
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", "PYTHONPATH": str(ROOT)}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, *args, *extra], capture_output=True, text=True,
                              timeout=600, cwd=ROOT, env=env)

    proc = run()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # one clip failed
    report = json.loads(proc.stdout)
    assert not report["task_errors"], report["task_errors"]
    # the crashing clip, for each of its two extractors
    assert report["counts"]["failed"] == 2, (report["counts"], report["failures"])
    live = FeatureStore(str(store)).index()
    native = live[live["stage"] == "native"].set_index(["clip_id", "extractor"])
    bad = native.loc[[("crash", "logmel"), ("crash", "crash_probe")]]
    assert (bad["status"] == "failed").all() and bad["reason"].str.contains("crashed the worker").all()
    good = native.drop(index=["crash"], level=0)
    assert len(good) == 8 and (good["status"] == "ok").all(), good[["status", "reason"]]  # 8-channel clip too
    proc = run("--allow-failures")  # a rerun retries only the failed clip; --allow-failures: exit 0
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    assert again["planned"] == 1 and again["counts"]["failed"] == 2
    assert cli("verify", str(store), "--quiet").returncode == 0
