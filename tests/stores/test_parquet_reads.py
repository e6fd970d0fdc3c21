"""The store's Parquet files are read without pyarrow's own threads calling back into Python.

Handed a Python file object, pyarrow reads it from its I/O thread pool; such a read still in flight when the
interpreter exits aborts a finished command with exit -6 ("terminate called without an active exception",
seen once in CI on a fully cached `extract`). These tests record which threads a store's files are read from,
on a local store (the real index of a written store) and on an fsspec memory store, for every read path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stores import index, store_files
from stores.feature_store import FeatureStore
from stores.fs import StoreFS
from tests.helpers.store_fixtures import synthetic_store


class _Recording:
    """A file object that notes the thread of every read (pyarrow's pool threads show as _DummyThread)."""

    def __init__(self, f: Any, threads: list[str]) -> None:
        self._f, self._threads = f, threads

    def _note(self) -> None:
        self._threads.append(type(threading.current_thread()).__name__)

    def read(self, *a: Any) -> bytes:
        self._note()
        return self._f.read(*a)

    def readinto(self, b: Any) -> int:
        self._note()
        return self._f.readinto(b)

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _record(fs: StoreFS, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    threads: list[str] = []
    opener = fs.fs.open
    monkeypatch.setattr(fs.fs, "open", lambda *a, **k: _Recording(opener(*a, **k), threads))
    return threads


def _every_read(fs: StoreFS, rel: str) -> None:
    assert fs.read_parquet(rel).num_rows > 0
    assert fs.read_parquet(rel, filters=[("status", "==", "ok")]).num_rows > 0
    assert sum(t.num_rows for t in fs.iter_parquet(rel, ["clip_id"], batch_rows=3)) > 0
    next(iter(fs.iter_parquet(rel, ["clip_id"], batch_rows=1)))  # a reader that stops early
    assert store_files._parquet(fs, rel) is None


@pytest.mark.parametrize("where", ["local", "memory"])
def test_no_store_parquet_read_runs_python_on_pyarrow_threads(where: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    local = synthetic_store(tmp_path / "s.zarr", n_speakers=3, per_class=2)
    files = [p.relative_to(local).as_posix() for p in sorted(local.glob("index/*.parquet"))]
    files.append("manifest.parquet")
    if where == "local":
        fs = FeatureStore(str(local)).fs
    else:
        fs = StoreFS(f"memory://{tmp_path.name}/s.zarr")
        for rel in files:
            fs.write_parquet(rel, pq.read_table(local / rel))
    threads = _record(fs, monkeypatch)
    for rel in files:
        if rel.startswith("index/"):
            _every_read(fs, rel)
        else:
            assert fs.read_parquet(rel).num_rows > 0
    assert index.read_table(fs).num_rows > 0
    assert where == "local" or "_MainThread" in threads  # the recording sees the reads that go through Python
    assert "_DummyThread" not in threads, f"pyarrow read a store file through Python from its own threads: {threads}"


def test_a_local_store_whose_path_looks_like_a_uri_or_a_partition_reads_back(tmp_path: Path) -> None:
    """The local read hands pyarrow a path string: characters that mean something in a URI or a Hive partition
    (`#`, `%20`, `?`, `=`, spaces) must stay part of the file name."""
    for name in ("a b", "x#y", "p%20q", "k=v", "q?x"):
        fs = StoreFS(str(tmp_path / name / "s.zarr"))
        fs.write_parquet("index/a.parquet", pa.table({"status": ["ok", "failed"], "clip_id": ["c1", "c2"]}))
        assert fs.read_parquet("index/a.parquet").column("clip_id").to_pylist() == ["c1", "c2"], name
        assert fs.read_parquet("index/a.parquet", filters=[("status", "==", "ok")]).num_rows == 1, name
        assert [t.num_rows for t in fs.iter_parquet("index/a.parquet", ["clip_id"], batch_rows=1)] == [1, 1], name
