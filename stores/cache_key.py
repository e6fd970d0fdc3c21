"""Cache keys: what a stored result depends on, hashed.

key(clip, extractor) = H(media content fingerprint, segment start/end, extractor name + version +
config + weights id [, face-stage config]); key(aligned) = H(native key, alignment config). The media
fingerprint reads the file's size and its first and last 64 KiB, so it changes with the content but
costs almost nothing, even on a million clips.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import xxhash

_SAMPLE = 64 * 1024


def _h(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


FINGERPRINTS = ("content", "stat", "full")
_FULL_BLOCK = 8 << 20


def file_fingerprint(path: str, mode: str = "content") -> str:
    """``content``: size + first and last 64 KiB (survives copies and moves; reads 128 KiB per file).
    ``stat``: size + mtime + inode (no read at all: cheap on Lustre/GPFS; a touch, copy or move counts as
    a change). ``full``: every byte, with xxHash3-128 (a damaged copy whose size and ends match the original's
    is told apart; reads the whole file: docs/benchmarks.md gives the cost per GB)."""
    if mode == "stat":
        st = os.stat(path)
        return _h("stat", st.st_size, st.st_mtime_ns, st.st_ino)
    if mode == "full":
        h = xxhash.xxh3_128()
        with open(path, "rb") as f:
            while block := f.read(_FULL_BLOCK):
                h.update(block)
        return _h("full", os.path.getsize(path), h.hexdigest())
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_SAMPLE))
        if size > 2 * _SAMPLE:
            f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
    return h.hexdigest()[:32]


def media_fingerprint(media_path: str, audio_path: str | None = None, annotation_path: str | None = None,
                      mode: str = "content") -> str:
    """Fingerprint of a clip's media (and annotation file); raises OSError if a file cannot be read."""
    fp = file_fingerprint(media_path, mode)
    if audio_path and audio_path != media_path:
        fp = _h(fp, file_fingerprint(audio_path, mode))
    if annotation_path:
        fp = _h(fp, file_fingerprint(annotation_path, mode))
    return fp


def native_key(fingerprint: str, start: float | None, end: float | None, extractor: str, face: Any = None) -> str:
    return _h("native", fingerprint, start, end, extractor, face)


def aligned_key(native: str, align: Any) -> str:
    return _h("aligned", native, align)


def part_id(*parts: Any) -> str:
    return _h("part", *parts)[:24]
