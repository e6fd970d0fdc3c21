"""What the driver no longer copies per clip: the listing comes out in path order (no sort, no take), the work
order is ranked on integers, duplicate clip ids are found by sorting, and index files stream row group by
row group. Each is checked against the straightforward (copying) computation it replaced."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.datasets import manifest, scan
from pipeline.engine import plan
from pipeline.errors import ConfigError
from stores import index
from stores.fs import ROW_GROUP, StoreFS


def _tree(root, names: list[str]) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


TRICKY = ["a.wav", "a/x.wav", "a-b.wav", "a0.wav", "a/y/z.wav", "A.wav", "é/1.wav", "e/1.wav", "a b/c.wav",
          "b/._hidden.wav", "b/ok.WAV", "b/skip.txt", "c/d/e/f.wav", "c/d.wav", "c/d-e.wav"]


def test_the_listing_is_in_byte_order_of_paths_so_the_manifest_needs_no_sort(tmp_path):
    _tree(tmp_path, TRICKY)
    got = list(scan.files(str(tmp_path), {".wav"}))
    want = sorted((str(tmp_path / n) for n in TRICKY if not n.endswith(".txt") and "._" not in n),
                  key=lambda s: s.encode())
    assert got == want
    t = pa.table({"p": got})
    assert scan.sort(t, [("p", "ascending")]) is t  # already in order: the same table, not a copy
    shuffled = pa.table({"p": got[::-1]})
    assert scan.sort(shuffled, [("p", "ascending")])["p"].to_pylist() == want


def test_a_symlinked_folder_is_not_followed(tmp_path):
    _tree(tmp_path / "real", ["x.wav"])
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert list(scan.files(str(tmp_path), {".wav"})) == [str(tmp_path / "real" / "x.wav")]


def _work(m: pd.DataFrame, pos: np.ndarray) -> plan.WorkList:
    w = plan.WorkList(m, ["e"], {"e": "fp"}, {"e": None})
    w.pos = pos
    return w


def _reference(m: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
    """The order as it was computed before: a pandas copy of the rows' paths and starts, stable-sorted."""
    r = m.iloc[pos][["media_path", "start"]].reset_index(drop=True)
    r["start"] = pd.to_numeric(r["start"], errors="coerce").fillna(0.0)
    return r.sort_values(["media_path", "start"], kind="stable").index.to_numpy()


def test_work_order_groups_a_files_segments_and_matches_the_copying_sort():
    rng = np.random.default_rng(0)
    n = 500
    m = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)],
                      "media_path": [f"/d/v{int(v):03d}.mp4" for v in rng.integers(0, 40, n)],
                      "start": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 5, n).astype(float))})
    for pos in (np.arange(n), np.sort(rng.choice(n, 180, replace=False)), np.zeros(0, np.int64)):
        assert (_work(m, pos).order() == _reference(m, pos)).all()
    sorted_m = m.sort_values(["media_path", "start"], kind="stable", na_position="first").reset_index(drop=True)
    sorted_m["start"] = sorted_m["start"].fillna(0.0)
    assert plan.manifest_rank(sorted_m) is None  # in order already: no rank, no argsort of the clips' paths
    pos = np.arange(0, n, 3)
    assert (_work(sorted_m, pos).order() == np.arange(len(pos))).all()


def test_the_work_list_keeps_fingerprints_at_their_width():
    m = manifest.normalise(pd.DataFrame({"clip_id": ["a", "b"], "speaker": "s", "session": "",
                                         "media_path": ["/x.wav", "/y.wav"]}), "test")
    w = plan.WorkList(m, ["e"], {"e": "fp"}, {"e": None})
    fp = "0123456789abcdef" * 2
    w.append(np.arange(1), np.asarray([fp], dtype=plan.FP_DTYPE), np.ones((1, 1), bool), np.ones((1, 1), bool),
             np.full((1, 1), -1))  # no room reserved: it grows
    w.append(np.arange(1, 2), np.asarray([""], dtype=plan.FP_DTYPE), np.ones((1, 1), bool),
             np.zeros((1, 1), bool), np.full((1, 1), -1))
    assert [c.fingerprint for c in w] == [fp, ""] and [c.align for c in w] == [["e"], []]


@pytest.mark.parametrize("ids, repeats", [
    (["a", "b", "c"], False), (["c", "a", "b"], False), (["a", "b", "a"], True),
    (["a", "a"], True), ([], False), (["x"], False), (["b", "a", "b", "c"], True)])
def test_repeated_clip_ids_are_found_sorted_or_not(ids, repeats):
    assert manifest._repeats(pa.chunked_array([pa.array(ids, pa.string())])) is repeats


def test_a_repeated_id_in_an_unsorted_manifest_is_refused_with_examples():
    df = pd.DataFrame({"clip_id": ["z", "y", "z"], "speaker": "s", "session": "", "media_path": ["/a", "/b", "/c"]})
    with pytest.raises(ConfigError, match=r"clip_id not unique, e\.g\. \['z'\]"):
        manifest.normalise(df, "test")


def test_index_files_stream_in_row_groups(tmp_path):
    fs = StoreFS(str(tmp_path / "s.zarr"))
    n = 2 * ROW_GROUP + 5
    cols = {f.name: pa.nulls(n, f.type) for f in index.SCHEMA}
    cols["clip_id"] = pa.array([f"c{i}" for i in range(n)], pa.string())
    t = pa.table(cols, schema=index.SCHEMA)
    path = index.commit_table(fs, t, "big")
    with fs.fs.open(fs.path(path), "rb") as f:
        meta = pq.ParquetFile(f).metadata
    assert meta.num_row_groups == 3 and max(meta.row_group(i).num_rows for i in range(3)) == ROW_GROUP
    assert sum(len(b) for b in fs.iter_parquet(path, ["clip_id"], 4096)) == n
