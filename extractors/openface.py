"""OpenFace 2.x action units: runs the user's ``FeatureExtraction`` binary on the clip and validates its CSV.

The binary comes from the config (``binary``) or ``$OPENFACE_BIN``. It runs as
``subprocess.run([...], timeout=...)`` in its own temporary directory, removed afterwards; its stderr is
kept for the failure reason. Its exit code is never trusted: the CSV must exist, parse with every row
complete, carry the 17 ``AUxx_r`` intensity columns (selected by ``^AU\\d\\d_r$``, spaces after commas
stripped, as older versions write them), have monotonic timestamps and about one row per video frame.
Stored: the 17 intensities (optionally presence, gaze, pose, 2-D landmarks) at the video's rate, with
``success`` as the validity mask and ``confidence`` kept for the alignment's confidence filter
(Tran & Soleymani drop frames below 0.8: ``--min-confidence 0.8``). A segment (start/end) is cut from
the whole-file output by timestamp.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from extractors.base import Extractor, Features, MediaSegment
from extractors.registry import register_extractor

AU_R = re.compile(r"^AU\d\d_r$")
AU_C = re.compile(r"^AU\d\d_c$")
N_AU_R = 17
GROUPS = {
    "au_r": lambda c: bool(AU_R.match(c)),
    "au_c": lambda c: bool(AU_C.match(c)),
    "gaze": lambda c: c.startswith("gaze_"),
    "pose": lambda c: c.startswith("pose_"),
    "landmarks": lambda c: bool(re.match(r"^[xy]_\d+$", c)),
}


class OpenFaceError(RuntimeError):
    pass


def parse_csv(text: str) -> pd.DataFrame:
    """An OpenFace CSV as a DataFrame with clean column names; raises OpenFaceError when it is broken."""
    if not text.strip():
        raise OpenFaceError("the CSV is empty")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = [c.strip() for c in lines[0].split(",")]
    bad = [i for i, ln in enumerate(lines[1:], start=2) if len(ln.split(",")) != len(header)]
    if bad:
        raise OpenFaceError(f"the CSV is truncated or malformed (line {bad[0]} has a different number of fields)")
    au = [c for c in header if AU_R.match(c)]
    if len(au) != N_AU_R or not {"frame", "timestamp", "confidence", "success"} <= set(header):
        raise OpenFaceError(f"unexpected header: {len(au)} AUxx_r columns (expected {N_AU_R}) and "
                            f"{'no' if 'timestamp' not in header else 'a'} timestamp column")
    df = pd.read_csv(io.StringIO("\n".join(lines)), skipinitialspace=True)
    df.columns = header
    if len(df) == 0:
        raise OpenFaceError("the CSV has a header but no frame")
    return df


def find_binary(configured: str = "") -> str | None:
    for candidate in (configured, os.environ.get("OPENFACE_BIN", ""), "FeatureExtraction"):
        if candidate:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if found:
                return found
    return None


def version_of(exe: str) -> str:
    """OpenFace prints no version; a build tree's CMakeLists.txt (above bin/) names it, e.g. 2.2.0."""
    for parent in list(Path(exe).resolve().parents)[:4]:
        cmake = parent / "CMakeLists.txt"
        if cmake.exists():
            m = re.search(r"project\(\s*OpenFace[^)]*VERSION\s+([\d.]+)", cmake.read_text(errors="replace"))
            if m:
                return m.group(1)
    return "version unknown"


@dataclass(frozen=True)
class OpenFaceConfig:
    binary: str = ""  # path of FeatureExtraction; default $OPENFACE_BIN or PATH
    outputs: tuple[str, ...] = ("au_r",)  # au_r (17), au_c (18), gaze (8), pose (6), landmarks (136)
    timeout_s: float = 600.0
    frame_tolerance: float = 0.02  # |rows - frames| allowed: max(2, 2 %)

    def __post_init__(self) -> None:
        unknown = set(self.outputs) - set(GROUPS)
        if unknown or not self.outputs:
            raise ValueError(f"openface: outputs must be among {sorted(GROUPS)}, got {list(self.outputs)}")


_SIZES = {"au_r": 17, "au_c": 18, "gaze": 8, "pose": 6, "landmarks": 136}


@register_extractor
class OpenFace(Extractor):
    name = "openface"
    version = "1"
    modality = "video"
    input = "media"
    Config = OpenFaceConfig

    @property
    def feature_names(self) -> list[str]:
        return [f"{g}_{i}" for g in self.config.outputs for i in range(_SIZES[g])]

    @classmethod
    def runtime(cls) -> tuple[bool, str]:
        exe = find_binary()
        return (True, f"FeatureExtraction at {exe} ({version_of(exe)})") if exe else (
            False, "FeatureExtraction not found: set OPENFACE_BIN or --set openface.binary=PATH")

    def usable(self) -> tuple[bool, str]:
        exe = find_binary(self.config.binary)
        if exe:
            return True, f"FeatureExtraction at {exe}"
        tried = f"--set openface.binary={self.config.binary} does not exist; " if self.config.binary else ""
        return False, (f"OpenFace's FeatureExtraction was not found ({tried}not on PATH, OPENFACE_BIN unset): "
                       "build OpenFace 2.2.0 (docs/extractors.md) and set OPENFACE_BIN=/path/to/FeatureExtraction "
                       "or --set openface.binary=PATH, or leave openface out of --extractors")

    def compute(self, batch: Sequence[MediaSegment]) -> list[Features]:
        exe = find_binary(self.config.binary)
        if exe is None:
            raise OpenFaceError("FeatureExtraction not found (set OPENFACE_BIN or --set openface.binary=PATH)")
        return [self._one(exe, seg) for seg in batch]

    def _one(self, exe: str, seg: MediaSegment) -> Features:
        flags = ["-aus"] + (["-gaze"] if "gaze" in self.config.outputs else []) + (
            ["-pose"] if "pose" in self.config.outputs else []) + (
            ["-2Dfp"] if "landmarks" in self.config.outputs else [])
        tmp = tempfile.mkdtemp(prefix="openface-")
        try:
            try:
                proc = subprocess.run([exe, "-f", seg.path, "-out_dir", tmp, *flags], capture_output=True,
                                      text=True, timeout=self.config.timeout_s, check=False)
            except subprocess.TimeoutExpired:
                raise OpenFaceError(f"FeatureExtraction timed out after {self.config.timeout_s:g} s") from None
            csvs = sorted(Path(tmp).glob("*.csv"))
            stderr = " ".join(proc.stderr.strip().splitlines()[-2:])[:300]
            if not csvs:
                raise OpenFaceError(f"FeatureExtraction wrote no CSV (exit code {proc.returncode}; "
                                    f"{stderr or 'no stderr'})")
            df = parse_csv(csvs[0].read_text(errors="replace"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._features(df, seg)

    def _features(self, df: pd.DataFrame, seg: MediaSegment) -> Features:
        t = df["timestamp"].to_numpy(np.float64)
        if (np.diff(t) < -1e-6).any():
            raise OpenFaceError("timestamps go backwards in the CSV")
        start, end = seg.start or 0.0, seg.end
        keep = (t >= start - 1e-6) & ((t < end - 1e-6) if end is not None else True)
        df, t = df[keep], t[keep] - start
        expected = seg.n_frames
        if expected and abs(len(df) - expected) > max(2, self.config.frame_tolerance * expected):
            raise OpenFaceError(f"{len(df)} CSV rows for about {expected} video frames (a truncated run?)")
        cols = [c for g in self.config.outputs for c in df.columns if GROUPS[g](c)]
        values = df[cols].to_numpy(np.float32)
        ends = np.append(t[1:], t[-1] + 1.0 / (seg.fps or 30.0)) if len(t) else t
        success = df["success"].to_numpy() == 1
        values[~success] = 0.0
        return Features(values, t, ends, success, df["confidence"].to_numpy(np.float32))
