"""Run the real `pipeline` CLI as a user would, and find optional sample data (skip cleanly without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the checkout
SHARED = ROOT.parent / "shared"  # ../shared beside it: reference material, when present
FAST = ["--extractors", "logmel,egemaps,face_hog", "--shard-size", "2", "--quiet"]


def cli(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ...` as a separate process, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"pipeline {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def extract_json(*args: str, check: bool = True) -> dict:
    proc = cli("extract", *args, "--json", check=check)
    return json.loads(proc.stdout)


BIN = Path(sys.executable).parent
_SAMPLE_DIRS = [os.environ.get("OPENCV_SAMPLES_DATA_PATH", ""), str(ROOT / ".cache" / "opencv-samples"),
                "/usr/share/doc/opencv-doc/examples/data"]


def opencv_sample(name: str) -> Path:
    """OpenCV's sample data (Debian's opencv-doc; `make sample-data` unpacks it into .cache/), else skip."""
    for d in _SAMPLE_DIRS:
        if d and (Path(d) / name).exists():
            return Path(d) / name
    pytest.skip(f"OpenCV sample {name} not found: run `make sample-data` (Debian/Ubuntu) or set "
                "OPENCV_SAMPLES_DATA_PATH")


def wait_for(cond: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen | None = None,
             every: float = 0.05) -> None:
    """Poll ``cond`` until it holds; fail naming ``what`` after ``timeout`` s, or at once if ``proc`` ended."""
    t = time.time()
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended (rc {proc.returncode}) while waiting for {what}\n{out}\n{err}")
        if time.time() - t > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
