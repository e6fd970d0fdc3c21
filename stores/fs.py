"""File-system access to a store at any URL fsspec accepts (a local path, file://, s3://, ...).

Every write that must appear whole goes through :meth:`StoreFS.write_atomic` or
:meth:`StoreFS.commit_dir`: written under ``.tmp/`` first, then renamed into place.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from stores.errors import DamagedFile

TMP_DIR = ".tmp"


class StoreFS:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root = self.root.rstrip("/")
        self.is_local = "file" in self.fs.protocol or "local" in self.fs.protocol

    def path(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def zarr_url(self, rel: str) -> str:
        """What zarr.open_* takes for a path inside the store."""
        if self.is_local:
            return self.path(rel)
        return self.fs.unstrip_protocol(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def ls(self, rel: str) -> list[str]:
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        prefix = self.root + "/"
        return [e[len(prefix) :] if e.startswith(prefix) else e for e in entries]

    def rm(self, rel: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(self.path(rel), recursive=recursive)
        except FileNotFoundError:
            pass

    def makedirs(self, rel: str) -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def tmp(self, hint: str = "") -> str:
        rel = f"{TMP_DIR}/{uuid.uuid4().hex}{'-' + hint if hint else ''}"
        self.makedirs(TMP_DIR)
        return rel

    def write_atomic(self, rel: str, writer: Callable[[Any], None]) -> None:
        tmp = self.tmp(posixpath.basename(rel))
        with self.fs.open(self.path(tmp), "wb") as f:
            writer(f)
        self.makedirs(posixpath.dirname(rel))
        self.fs.mv(self.path(tmp), self.path(rel))

    def commit_dir(self, tmp: str, rel: str) -> bool:
        """Move a fully written directory into place. False if ``rel`` already exists (a twin won)."""
        if self.exists(rel):
            self.rm(tmp, recursive=True)
            return False
        self.makedirs(posixpath.dirname(rel))
        try:
            if self.is_local:  # os.rename is atomic and refuses a non-empty target
                os.rename(self.path(tmp), self.path(rel))
            else:
                self.fs.mv(self.path(tmp), self.path(rel), recursive=True)
        except OSError:
            if self.exists(rel):  # a concurrent twin committed the same content first
                self.rm(tmp, recursive=True)
                return False
            raise
        return True

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as f:
            return f.read()

    def parquet_source(self, rel: str) -> str | pa.BufferReader:
        """What pyarrow reads one of the store's Parquet files from: on a local store the path (pyarrow's own
        C++ file reads), elsewhere the file's bytes in memory. Never a Python file object: pyarrow reads those
        from its own I/O threads, which call back into Python, and one such read still in flight when the
        interpreter exits aborts the process after its work is done ("terminate called without an active
        exception", exit -6; apache/arrow#34314)."""
        if self.is_local:
            return self.path(rel)
        return pa.BufferReader(self.read_bytes(rel))

    def read_parquet(self, rel: str, filters: list | None = None) -> pa.Table:
        """``filters`` (pyarrow's DNF form) are applied while reading, batch by batch: a task that needs a few
        rows of a large index file never holds all of it. A damaged file raises ``DamagedFile`` naming it."""
        try:
            return pq.read_table(self.parquet_source(rel), filters=filters)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise self.damaged(rel, exc) from None

    def iter_parquet(self, rel: str, columns: list[str], batch_rows: int = 65536) -> Iterator[pa.Table]:
        """``columns`` of a Parquet file (those it has), ``batch_rows`` rows at a time: a reader of a
        million-row index holds one decoded batch, not the table (on a remote store, plus the file's compressed
        bytes: see ``parquet_source``)."""
        try:
            with pq.ParquetFile(self.parquet_source(rel)) as pf:
                have = [c for c in columns if c in pf.schema_arrow.names]
                for batch in pf.iter_batches(batch_size=batch_rows, columns=have):
                    yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise self.damaged(rel, exc) from None

    def damaged(self, rel: str, exc: BaseException) -> Exception:
        """The error for a store file that cannot be read: a FileNotFoundError stays one (an index file
        compacted away while it was listed); anything else names the file, the store and the fix."""
        if isinstance(exc, FileNotFoundError):
            why = exc.strerror or "no such file"
            return FileNotFoundError(f"store {self.url}: {rel} disappeared while it was read ({why})")
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return DamagedFile(f"store {self.url}: {rel} is damaged ({why}); `pipeline verify {self.url} --repair` moves "
                           "it aside and marks what it held for recomputation", rel)

    def write_parquet(self, rel: str, table: pa.Table) -> None:
        self.write_atomic(rel, lambda f: write_table(table, f))


ROW_GROUP = 65536  # rows per Parquet row group: a batch reader of a million-row index decodes this many at once


def write_table(table: pa.Table, f: Any) -> None:
    """The store's Parquet files: zstd, in row groups of ``ROW_GROUP`` rows (pyarrow's default is 1 M rows, so
    a reader streaming ``iter_parquet`` batches still decoded a whole million-row group at a time)."""
    pq.write_table(table, f, compression="zstd", row_group_size=ROW_GROUP)
