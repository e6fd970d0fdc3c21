"""The live index as the planner needs it: compact columns streamed from the index files.

An unchanged re-run of a 1.1 M-clip store looks up every (clip, extractor) entry. As a DataFrame the index
cost the driver ~1 KB per entry (a Python string per cell: 2.6 GB at 1.1 M clips); here an entry the plan can
use costs ~45 bytes (manifest position, small codes, the 32-character key as bytes), read batch by batch,
and rows the plan cannot use (other extractors, other views) are dropped as they are read. The full rows a
task needs (a stored native result to re-align or reuse) are read in a second pass, only for those entries.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stores import index
from stores.fs import StoreFS

STATUS = ("ok", "failed", "excluded")
NATIVE, ALIGNED = 0, 1
KEY_CHARS = 32  # cache_key._h: 32 hex characters
_COLUMNS = ["clip_id", "stage", "view", "extractor", "key", "status", "committed_at"]


def key_bytes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Keys as fixed-width bytes (no Python object per key); a null or foreign-length key becomes b'' (never
    equal to a key of today)."""
    keys = pa.chunked_array([keys]) if isinstance(keys, pa.Array) else keys
    keys = keys.combine_chunks() if keys.num_chunks else pa.array([], pa.string())
    good = pc.fill_null(pc.equal(pc.utf8_length(keys), KEY_CHARS), False)
    fixed = pc.if_else(good, keys, pa.scalar("0" * KEY_CHARS)).cast(pa.binary(KEY_CHARS))
    out = np.frombuffer(fixed.buffers()[1], dtype=f"S{KEY_CHARS}", count=len(fixed),
                        offset=KEY_CHARS * fixed.offset).copy() if len(fixed) else np.zeros(0, f"S{KEY_CHARS}")
    out[~good.to_numpy(zero_copy_only=False)] = b""
    return out


def _newest(code: np.ndarray, committed: np.ndarray) -> np.ndarray | None:
    """Positions of the newest row of each entry ``code`` (commit time, then read order), in read order;
    None when every entry has one row (a compacted index), so the columns need no copy."""
    s = np.sort(code)
    if not len(s) or not (s[1:] == s[:-1]).any():
        return None
    del s
    order = np.lexsort((np.arange(len(code)), committed, code))
    last = np.append(code[order][1:] != code[order][:-1], True)
    return np.sort(order[last])


class LiveLookup:
    """Live entries of ``names`` (native, and aligned in ``view``) for the clips of a manifest.

    ``rows(stage, j, lo, hi)``: the entry of extractor ``j`` for manifest positions ``lo:hi`` (-1: none);
    ``key``/``status`` are per entry; ``find_key`` finds an ok native result stored under any clip id.
    """

    def __init__(self, fs: StoreFS | None, clip_ids: pa.Array, names: list[str], view: str,
                 batch_rows: int = 65536) -> None:
        self.fs, self.names, self.view, self.batch_rows = fs, names, view, batch_rows
        self.paths = index.files(fs) if fs is not None and fs.exists(index.INDEX_DIR) else []
        n, k = len(clip_ids), len(names)
        cols = self._read(clip_ids)
        keep = _newest((cols["clip"] * 2 + cols["stage"]) * max(1, k) + cols["ext"], cols.pop("committed"))
        if keep is not None:  # an entry committed more than once: its newest row only
            cols = {c: v[keep] for c, v in cols.items()}
        self.clip, self.stage, self.ext = cols["clip"], cols["stage"], cols["ext"]
        self.key, self.status, self.src = cols["key"], cols["status"], cols["src"]
        self._rows = np.full((2, k, n), -1, dtype=np.int32 if len(self.key) < 2**31 else np.int64)
        mine = self.clip < n
        self._rows[self.stage[mine], self.ext[mine], self.clip[mine]] = np.flatnonzero(mine)
        self._by_key: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.key)

    def _read(self, clip_ids: pa.Array) -> dict[str, np.ndarray]:
        """Every index row of ``names`` (native, or aligned in ``view``) as compact columns."""
        n, names = len(clip_ids), pa.array(self.names, pa.string())
        outside: list[pa.ChunkedArray] = []  # clip ids outside the manifest (another dataset's clips in one store)
        out: dict[str, list[np.ndarray]] = {c: [] for c in ("clip", "stage", "ext", "key", "status", "committed",
                                                            "src")}
        for f, path in enumerate(self.paths):
            for row0, t in self._batches(path, _COLUMNS):
                t = index.conform(t).select(_COLUMNS)
                ext = pc.fill_null(pc.index_in(t["extractor"], value_set=names), -1).to_numpy().astype(np.int64)
                native = pc.fill_null(pc.equal(t["stage"], "native"), False).to_numpy(zero_copy_only=False)
                aligned = pc.fill_null(pc.and_(pc.equal(t["stage"], "aligned"), pc.equal(t["view"], self.view)),
                                       False).to_numpy(zero_copy_only=False)
                sel = np.flatnonzero((ext >= 0) & (native | aligned))
                if len(sel):
                    t = t.take(pa.array(sel))
                    clip = pc.fill_null(pc.index_in(t["clip_id"], value_set=clip_ids), -1).to_numpy().astype(np.int64)
                    outside.append(t["clip_id"].filter(pa.array(clip < 0)))
                    status = pc.fill_null(pc.index_in(t["status"], value_set=pa.array(STATUS)), len(STATUS))
                    out["clip"].append(clip)
                    out["stage"].append(np.where(aligned[sel], ALIGNED, NATIVE).astype(np.int8))
                    out["ext"].append(ext[sel].astype(np.int16))
                    out["key"].append(key_bytes(t["key"]))
                    out["status"].append(status.to_numpy().astype(np.int8))
                    out["committed"].append(pc.fill_null(t["committed_at"], 0).to_numpy().astype(np.int64))
                    out["src"].append((np.int64(f) << 40) | (row0 + sel))
        if outside:  # codes n, n+1, ... for clips outside the manifest, one per distinct id, in read order
            clip = np.concatenate(out["clip"])
            codes = pc.dictionary_encode(pa.chunked_array(outside, pa.string()).combine_chunks()).indices
            clip[clip < 0] = n + codes.to_numpy().astype(np.int64)
            out["clip"] = [clip]
        empty = {"clip": np.int64, "stage": np.int8, "ext": np.int16, "key": f"S{KEY_CHARS}", "status": np.int8,
                 "committed": np.int64, "src": np.int64}
        cols = {}
        for c in list(out):  # each column's batches let go of as soon as it is joined
            v = out.pop(c)
            cols[c] = np.concatenate(v) if v else np.zeros(0, empty[c])
        return cols

    def rows(self, stage: int, j: int, lo: int, hi: int) -> np.ndarray:
        return self._rows[stage, j, lo:hi].copy()

    def matches(self, rows: np.ndarray, keys: np.ndarray, statuses: tuple[str, ...]) -> np.ndarray:
        """For each position: an entry exists, holds ``keys`` and has one of ``statuses``."""
        have = rows >= 0
        out = np.zeros(len(rows), dtype=bool)
        r = rows[have]
        out[have] = (self.key[r] == keys[have]) & np.isin(self.status[r], [STATUS.index(s) for s in statuses])
        return out

    def find_key(self, j: int, keys: np.ndarray) -> np.ndarray:
        """The entry of an ok native result of extractor ``j`` with each key, under any clip id (-1: none)."""
        if j not in self._by_key:
            ok = np.flatnonzero((self.stage == NATIVE) & (self.ext == j) & (self.status == STATUS.index("ok")))
            order = np.argsort(self.key[ok], kind="stable")
            self._by_key[j] = (self.key[ok][order], ok[order])
        sorted_keys, at = self._by_key[j]
        if not len(sorted_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        return np.where(sorted_keys[i] == keys, at[i], -1)

    def full_rows(self, entries: np.ndarray) -> pa.Table:
        """The whole index rows of ``entries`` (in that order), read again from the files, batch by batch."""
        if not len(entries):
            return index.SCHEMA.empty_table()
        src = self.src[entries]
        files, rows = src >> 40, src & ((1 << 40) - 1)
        got: list[pa.Table] = []
        where = np.empty(len(entries), dtype=np.int64)  # position of each entry in ``got``'s concatenation
        n = 0
        for f in np.unique(files):
            want = np.flatnonzero(files == f)
            for lo, t in self._batches(self.paths[int(f)], index.SCHEMA.names):
                hit = want[(rows[want] >= lo) & (rows[want] < lo + len(t))]
                if len(hit):
                    got.append(index.conform(t).take(pa.array(rows[hit] - lo)))
                    where[hit] = n + np.arange(len(hit))
                    n += len(hit)
        return pa.concat_tables(got).take(pa.array(where))

    def _batches(self, path: str, columns: list[str]) -> Iterator[tuple[int, pa.Table]]:
        """(first row, batch) of one index file; a file gone mid-plan is a one-line error, not a traceback."""
        lo = 0
        try:
            for t in self.fs.iter_parquet(path, columns, self.batch_rows):
                yield lo, t
                lo += len(t)
        except FileNotFoundError:
            raise FileNotFoundError(f"plan: the store's index file {path} went away while planning (a run "
                                    "beside this one compacted it); run the command again") from None
