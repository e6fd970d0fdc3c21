"""The store's own files, beside its parts: each kind the format names is checked, and repaired where it can be.

`verify` reads every chunk of every part (stores/verify.py); a store also lives by its root ``zarr.json``, the
group metadata of each extractor, ``manifest.parquet``, the index files and the run reports. A file that
cannot be read is a problem named by its path. ``repair`` rewrites what is known exactly (the root group's
and the plain groups' metadata) and moves the rest aside into ``damaged/`` (never deletes): a damaged index
file's entries are then absent, so the next ``extract`` recomputes them; an extractor group's metadata and
the manifest are written again by the next ``extract``.
"""

from __future__ import annotations

import json
import posixpath
import time

import pyarrow as pa
import pyarrow.parquet as pq

from stores import index
from stores.errors import DamagedFile
from stores.fs import StoreFS

FORMAT = "affect-pipeline-store"
FORMAT_VERSION = 1
DAMAGED_DIR = "damaged"
PLAIN_GROUPS = ("native", "aligned")  # groups whose metadata holds nothing but "a group" (and aligned/<view>)


def root_metadata(created_by: str) -> dict:
    return {"attributes": {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": created_by},
            "zarr_format": 3, "node_type": "group"}


def _group_json(fs: StoreFS, rel: str) -> str | None:
    """Why the group metadata at ``rel`` is unusable, or None."""
    path = posixpath.join(rel, "zarr.json") if rel else "zarr.json"
    if not fs.exists(path):
        return "is missing"
    try:
        meta = json.loads(fs.read_bytes(path))
    except (ValueError, UnicodeDecodeError):
        return "is not valid JSON (truncated or overwritten)"
    if not isinstance(meta, dict) or meta.get("node_type") != "group" or meta.get("zarr_format") != 3:
        return "is not Zarr v3 group metadata"
    if not rel and (meta.get("attributes") or {}).get("format") != FORMAT:
        return f"does not say format = {FORMAT}"
    return None


def group_problem(fs: StoreFS, rel: str) -> str | None:
    """Why the group metadata at ``rel`` (a part, an extractor group) is unusable, or None."""
    return _group_json(fs, rel)


def root_problem(fs: StoreFS) -> str | None:
    """Why the store's root ``zarr.json`` is unusable, or None."""
    return _group_json(fs, "")


def _parquet(fs: StoreFS, rel: str) -> str | None:
    try:
        pq.read_table(fs.parquet_source(rel))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        return f"does not read as Parquet ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})"
    return None


def check(fs: StoreFS) -> list[tuple[str, str]]:
    """(path, what is wrong) for every damaged file of the store outside its parts' arrays."""
    out = []
    why = _group_json(fs, "")
    if why:
        out.append(("zarr.json", f"the store's root group metadata {why}"))
    groups = [g for g in PLAIN_GROUPS if fs.exists(g)]
    groups += [v for v in fs.ls("aligned") if not v.endswith("zarr.json")]
    for g in groups:
        why = _group_json(fs, g)
        if why:
            out.append((f"{g}/zarr.json", f"group metadata {why}"))
    for ext in _extractor_groups(fs):
        why = _group_json(fs, ext)
        if why:
            out.append((f"{ext}/zarr.json", f"the extractor group's metadata (provenance) {why}"))
    if not fs.exists("manifest.parquet"):
        if index.files(fs):
            out.append(("manifest.parquet", "the manifest is missing"))
    else:
        why = _parquet(fs, "manifest.parquet")
        if why:
            out.append(("manifest.parquet", f"the manifest {why}"))
    for p in index.files(fs):
        why = _parquet(fs, p)
        if why:
            out.append((p, f"index file {why}; its entries are unknown until repaired"))
    for p in fs.ls("runs"):
        if p.endswith(".json"):
            try:
                json.loads(fs.read_bytes(p))
            except (ValueError, UnicodeDecodeError):
                out.append((p, "run report is not valid JSON"))
    return out


def _extractor_groups(fs: StoreFS) -> list[str]:
    out = [e for e in fs.ls("native") if not e.endswith("zarr.json")]
    for view in fs.ls("aligned"):
        if not view.endswith("zarr.json"):
            out += [e for e in fs.ls(view) if not e.endswith("zarr.json")]
    return out


def readable_index_files(fs: StoreFS, damaged: list[tuple[str, str]]) -> list[str]:
    bad = {p for p, _ in damaged}
    return [p for p in index.files(fs) if p not in bad]


def repair(fs: StoreFS, damaged: list[tuple[str, str]], created_by: str) -> list[str]:
    """Repair what ``check`` found; returns one line per file saying what was done."""
    done = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path, _ in damaged:
        group = posixpath.dirname(path)
        if path == "zarr.json":
            _aside(fs, path, stamp)
            fs.write_atomic(path, lambda f: f.write(json.dumps(root_metadata(created_by), indent=2).encode()))
            done.append(f"{path}: rewritten (the store's format attributes)")
        elif path.endswith("zarr.json") and (group in PLAIN_GROUPS or group.startswith("aligned/")
                                             and group.count("/") == 1):
            _aside(fs, path, stamp)
            fs.write_atomic(path, lambda f: f.write(json.dumps({"attributes": {}, "zarr_format": 3,
                                                                "node_type": "group"}, indent=2).encode()))
            done.append(f"{path}: rewritten (a plain group)")
        else:
            moved = _aside(fs, path, stamp)
            if moved:
                what = ("its entries are recomputed by the next extract" if path.startswith(index.INDEX_DIR)
                        else "the next extract writes it again")
                done.append(f"{path}: moved to {moved} ({what})")
    return done


def _aside(fs: StoreFS, path: str, stamp: str) -> str | None:
    if not fs.exists(path):
        return None
    dest = f"{DAMAGED_DIR}/{stamp}/{path}"
    fs.makedirs(posixpath.dirname(dest))
    fs.fs.mv(fs.path(path), fs.path(dest))
    return dest


def damaged_error(fs: StoreFS, path: str, why: str) -> DamagedFile:
    return DamagedFile(f"store {fs.url}: {path}: {why}; `pipeline verify {fs.url} --repair` repairs it", path)
