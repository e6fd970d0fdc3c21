"""Ctrl-C and SIGTERM while training (`pipeline train`, `pipeline experiment run`): a real signal to a
real process stops it with 130/143 and a resume hint, the checkpoint it leaves loads, and the same command
resumes from it instead of starting over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import corpus_fixtures as fx
from tests.helpers.store_fixtures import synthetic_store


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(log: Path, *args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """The command in its own process; output to a file (a pipe would also wait for any child holding it).
    ``sigint_ignored``: as a script's background job starts, with SIGINT ignored (inherited)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=out, stderr=subprocess.STDOUT,
                                text=True, env=env, preexec_fn=_ignore_sigint if sigint_ignored else None)


def _signal_when(proc: subprocess.Popen, log: Path, root: Path, pattern: str, signum: int,
                 timeout: float = 600) -> str:
    """Send ``signum`` once a training checkpoint matches ``root/pattern``; return the process's output."""
    end = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < end, "no checkpoint written"
        time.sleep(0.2)
    proc.send_signal(signum)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        tree = subprocess.run(["ps", "-o", "pid,stat,etime,args", "--ppid", str(proc.pid)], capture_output=True,
                              text=True).stdout
        proc.kill()
        raise AssertionError(f"still running 120 s after the signal; children:\n{tree}\n"
                             f"{log.read_text()[-3000:]}") from None
    return log.read_text()


def _epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_training_signals_stop_even_when_sigint_was_inherited_ignored(signum):
    """A script's background job inherits SIGINT ignored, so Python never raises KeyboardInterrupt on
    its own; a `kill -INT` must still stop training (this is how CI runs the suite)."""
    code = ("import os, signal, time\n"
            "from pipeline.runtime.stop import TrainingSignals\n"
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
            "s = TrainingSignals()\n"
            "try:\n"
            "    with s:\n"
            f"        os.kill(os.getpid(), {int(signum)})\n"
            "        time.sleep(30)\n"
            "except KeyboardInterrupt:\n"
            "    raise SystemExit(s.exit_code())\n"
            "raise SystemExit(f'not stopped; after: {signal.getsignal(signal.SIGINT)}')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=_ignore_sigint)
    assert done.returncode == 128 + signum, done.stderr[-2000:]


def test_sigterm_stops_training_and_the_same_command_resumes(tmp_path):
    store = synthetic_store(tmp_path / "s.zarr")
    args = ["train", "--store", str(store), "--out", str(tmp_path / "run"), "--model", "mult", "--size", "small",
            "--window", "20", "--batch-size", "4", "--epochs", "400"]
    log = tmp_path / "train.log"
    out = _signal_when(proc := _start(log, *args), log, tmp_path / "run", "**/checkpoint.pt", signal.SIGTERM)
    assert proc.returncode == 143, out[-2000:]
    assert "stopped" in out and "run the same command again to resume" in out and "Traceback" not in out
    (ckpt,) = (tmp_path / "run").rglob("checkpoint.pt")
    stopped_at = _epoch(ckpt)  # written then renamed: never half a file
    assert 1 <= stopped_at < 400 and not list((tmp_path / "run").rglob("*.tmp"))
    again = subprocess.run([sys.executable, "-m", "pipeline", *args, "--stop-after", "1"], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"resumed at epoch {stopped_at}" in again.stdout and _epoch(ckpt) == stopped_at + 1


@pytest.mark.slow  # ~1 min: a preset's extraction, then training stopped by Ctrl-C and resumed
def test_ctrl_c_stops_an_experiment_while_training_and_it_resumes(tmp_path):
    root = fx.ravdess(tmp_path / "RAVDESS")
    out = tmp_path / "exp"
    args = ["experiment", "run", "mater_ravdess", "--root", str(root), "--out", str(out), "--quiet",
            "--substitute", "vggish=logmel", "--substitute", "vggm_face=face_hog",
            "--override", "options={d: 16, heads: 2, ffn: 32, layers: 1}", "--override", "batch_size=8",
            "--override", "epochs=400"]
    log = tmp_path / "experiment.log"
    text = _signal_when(proc := _start(log, *args, sigint_ignored=True), log, out, "run*/**/checkpoint.pt",
                        signal.SIGINT)
    assert proc.returncode == 130, text[-3000:]
    assert "stopped while training" in text and "Traceback" not in text and not (out / "table.md").exists()
    stopped = {p: _epoch(p) for p in out.glob("run*/**/checkpoint.pt")}
    again = subprocess.run([sys.executable, "-m", "pipeline", *args, "--override", "stop_after=1"],
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert all(_epoch(p) == k + 1 for p, k in stopped.items()), "resumed from each checkpoint, not restarted"
    assert (out / "table.md").exists()
