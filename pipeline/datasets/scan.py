"""Walking a corpus tree into manifest columns without a Python object per file kept.

A VoxCeleb2 tree holds ~2.2 M media files. Collected as ``Path`` objects and one dict per row, listing it
cost the driver ~1 KB per clip at its peak (~1.2 GB before any work); here paths are plain strings from
``os.scandir`` and the columns go into Arrow every ``BATCH`` rows, so the peak is the Arrow columns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BATCH = 65536


def files(root: str, suffixes: set[str], skipped: list[str] | None = None) -> Iterator[str]:
    """Every file under ``root`` whose suffix (lower-cased) is in ``suffixes``, in the byte order of their
    paths (so a manifest sorted by path needs no sort of its own: see ``sort``); symlinked folders are not
    followed (as ``Path.rglob``), hidden AppleDouble files (``._name``) are skipped. A folder that cannot be
    read or an entry that cannot be resolved (a symlink loop) is passed over and named in ``skipped``."""
    # a folder sorts as its name + "/": where its files' paths fall among its siblings ("a.c" < "a/x")
    entries = []
    try:
        with os.scandir(root) as it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        entries.append((e.name + "/", e.path, True))
                    elif suffix(e.name) in suffixes and not e.name.startswith("._") \
                            and e.is_file():
                        entries.append((e.name, e.path, False))
                except OSError as exc:  # a symlink loop, a dangling network mount
                    _skip(skipped, e.path, exc)
    except OSError as exc:  # an unreadable folder
        _skip(skipped, root, exc)
        return
    entries.sort(key=lambda x: x[0].encode("utf-8", "surrogateescape"))
    for _, path, folder in entries:
        if folder:
            yield from files(path, suffixes, skipped)
        else:
            yield path


def _skip(skipped: list[str] | None, path: str, exc: OSError) -> None:
    if skipped is None:
        raise exc
    skipped.append(f"{path}: {exc.strerror or type(exc).__name__}")


def suffix(name: str) -> str:
    """``.mp4`` of ``clip.MP4`` and of ``...mp4`` (``os.path.splitext`` takes leading dots for a hidden name's
    and gives ``...mp4`` no suffix: such files were silently left out)."""
    i = name.rfind(".")
    return name[i:].lower() if i >= 0 else ""


def sort(t: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    """``t`` sorted by ``keys`` (stable); not copied when it is in that order already (a listing by ``files``)."""
    idx = pc.sort_indices(t, keys)
    if bool(pc.all(pc.equal(idx, pa.array(np.arange(len(idx), dtype=np.uint64)))).as_py() or not len(idx)):
        return t
    return t.take(idx)


def columns(paths: Iterator[str], row: Callable[[str], tuple | None], names: list[str]) -> pa.Table:
    """A table of ``row(path)`` for every path (None: not a clip), built ``BATCH`` rows at a time."""
    tables, pending = [], []
    for p in paths:
        r = row(p)
        if r is not None:
            pending.append(r)
        if len(pending) >= BATCH:
            tables.append(pa.table(list(map(list, zip(*pending))), names=names))
            pending = []
    if pending:
        tables.append(pa.table(list(map(list, zip(*pending))), names=names))
    schema = pa.schema([(n, pa.string()) for n in names])
    return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
