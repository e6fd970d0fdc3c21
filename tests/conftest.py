"""Shared fixtures: small generated corpora and a runner for the real `pipeline` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.datasets.demo import generate

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FAST = ["--extractors", "logmel,egemaps,face_hog", "--shard-size", "2", "--quiet"]


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 4 classes x 1 clip of 1.0-1.6 s (8 clips), in the demo layout."""
    return generate(tmp_path_factory.mktemp("corpus") / "demo", speakers=2, clips_per_class=1, seed=3,
                    durations=(1.0, 1.6))


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
