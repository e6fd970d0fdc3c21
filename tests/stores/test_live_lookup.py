"""The planner's compact view of the live index (stores/live_lookup.py) and the streamed consolidation check.

Real index files written by ``stores.index``; several files, newer commits, other extractors and views,
clips outside the manifest, batches smaller than a file: what ``make_plan`` relies on.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pyarrow as pa
import pytest

from stores import consolidate, index
from stores.feature_store import FeatureStore
from stores.live_lookup import ALIGNED, KEY_CHARS, NATIVE, LiveLookup, key_bytes
from tests.helpers.store_fixtures import small_store


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:KEY_CHARS]


def _row(clip: str, stage: str, ext: str, key: str, status: str = "ok", view: str = "", **kw) -> dict:
    return {"clip_id": clip, "stage": stage, "view": view, "extractor": ext, "key": key, "status": status,
            "part": f"{stage}/{ext}/p", "offset": 0, "length": 3, "dim": 2, "duration": 1.0, **kw}


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    s = FeatureStore(str(tmp_path / "s.zarr"), create=True)
    rows = []
    for i in range(40):
        rows += [_row(f"c{i}", "native", "a", _key(i, "a")), _row(f"c{i}", "native", "b", _key(i, "b")),
                 _row(f"c{i}", "aligned", "a", _key(i, "a", 5), view="5hz"),
                 _row(f"c{i}", "aligned", "a", _key(i, "a", 10), view="10hz")]
    rows.append(_row("gone", "native", "a", _key("gone")))  # outside every manifest below; fails later
    index.commit(s.fs, rows, "first")
    time.sleep(0.01)
    # newer commits: c3's native a failed on a re-run; c5 got a new key; a clip outside the manifest has c7's result
    index.commit(s.fs, [_row("c3", "native", "a", _key(3, "a"), status="failed", reason="boom"),
                        _row("c5", "native", "a", "f" * KEY_CHARS),
                        _row("elsewhere", "native", "a", _key(7, "a"), offset=99),
                        _row("c9", "native", "a", "short-legacy-key"),
                        _row("gone", "native", "a", _key("gone"), status="failed")], "second")
    return s


def test_newest_row_wins_and_only_planned_rows_are_kept(store):
    ids = pa.array([f"c{i}" for i in range(30)], pa.string())  # c30..c39 are not in this manifest
    live = LiveLookup(store.fs, ids, ["a"], "5hz", batch_rows=7)  # batches smaller than a file
    # kept: 40 native a + 40 aligned 5hz + "elsewhere" (outside the manifest, still findable by key);
    # not kept: extractor b, the 10hz view, superseded rows
    assert len(live) == 82  # and "gone": its two rows, in two files and batches, are one entry
    row = live.rows(NATIVE, 0, 0, 30)
    keys = np.asarray([_key(i, "a") for i in range(30)], dtype=f"S{KEY_CHARS}")
    hit = live.matches(row, keys, ("ok",))
    assert not hit[3] and not hit[5] and not hit[9] and hit[[0, 1, 2, 4, 6, 7, 8]].all()
    assert live.matches(row, keys, ("failed",))[3]
    akeys = np.asarray([_key(i, "a", 5) for i in range(30)], dtype=f"S{KEY_CHARS}")
    assert live.matches(live.rows(ALIGNED, 0, 0, 30), akeys, ("ok", "excluded")).all()
    assert (live.rows(NATIVE, 0, 10, 20) == row[10:20]).all()


def test_find_key_reaches_clips_outside_the_manifest_and_full_rows_reads_them_back(store):
    ids = pa.array([f"c{i}" for i in range(30)], pa.string())
    live = LiveLookup(store.fs, ids, ["a", "b"], "5hz", batch_rows=5)
    wanted = np.asarray([_key(7, "a"), _key(12, "a"), "0" * KEY_CHARS], dtype=f"S{KEY_CHARS}")
    found = live.find_key(0, wanted)
    assert found[2] == -1 and (found[:2] >= 0).all()
    assert live.find_key(0, np.asarray([_key("gone")], dtype=f"S{KEY_CHARS}")).tolist() == [-1]  # newest: failed
    assert live.find_key(1, wanted[:2]).tolist() == [-1, -1]  # extractor b holds other keys
    b = live.rows(NATIVE, 1, 0, 30)
    rows = live.full_rows(np.asarray([found[1], b[29], found[0]]))  # across files and batches, in this order
    got = rows.to_pylist()
    assert [(r["clip_id"], r["extractor"]) for r in got[:2]] == [("c12", "a"), ("c29", "b")]
    assert got[2]["clip_id"] in ("c7", "elsewhere") and got[2]["key"] == _key(7, "a")  # either holds that result
    assert got[0]["key"] == _key(12, "a") and got[1]["key"] == _key(29, "b") and got[0]["duration"] == 1.0
    assert set(rows.column_names) == set(index.SCHEMA.names)


def test_an_entry_costs_tens_of_bytes_not_a_row_of_python_strings(store):
    """The point of the lookup: a 1.1 M-clip re-run holds ~50 bytes per entry, not ~1 KB."""
    live = LiveLookup(store.fs, pa.array([f"c{i}" for i in range(40)], pa.string()), ["a", "b"], "5hz")
    arrays = (live.clip, live.stage, live.ext, live.key, live.status, live.src)
    per_entry = sum(a.nbytes for a in arrays) / len(live)
    assert per_entry <= 64 and all(a.dtype != object for a in arrays)


def test_no_index_and_foreign_keys():
    empty = LiveLookup(None, pa.array(["x"], pa.string()), ["a"], "5hz")
    assert len(empty) == 0 and empty.rows(NATIVE, 0, 0, 1).tolist() == [-1]
    assert empty.find_key(0, np.asarray([b"x"], dtype=f"S{KEY_CHARS}")).tolist() == [-1]
    assert key_bytes(pa.array(["a" * KEY_CHARS, None, "short"])).tolist() == [b"a" * KEY_CHARS, b"", b""]


def test_pending_consolidation_is_decided_from_the_streamed_index(tmp_path):
    s = small_store(tmp_path / "s.zarr", parts=4)
    assert consolidate.pending(s)  # one index file per part: a stopped run's state
    index.compact(s.fs)
    assert consolidate.pending(s)  # one file, four small parts of one extractor
    for m in consolidate.plan_store_merges(s.url):
        consolidate.merge(m)
    index.compact(s.fs)
    assert not consolidate.pending(s)
    assert consolidate.pending(s, target_bytes=1) is False  # nothing is small at a tiny target
    one_each = FeatureStore(str(tmp_path / "t.zarr"), create=True)  # one small part per extractor: nothing to do
    index.commit(one_each.fs, [_row("c0", "native", "a", _key(0)), _row("c0", "native", "b", _key(1))], "only")
    assert not consolidate.pending(one_each)
    assert not consolidate.pending(FeatureStore(str(tmp_path / "u.zarr"), create=True))


def test_an_index_file_compacted_away_mid_plan_is_a_one_line_error(store):
    live = LiveLookup(store.fs, pa.array(["c1"], pa.string()), ["a"], "5hz")
    for path in index.files(store.fs):  # what a run beside this one does when it compacts
        store.fs.rm(path)
    with pytest.raises(FileNotFoundError, match=r"^plan: the store's index file .* run the command again$"):
        live.full_rows(live.rows(NATIVE, 0, 0, 1))


def test_the_stored_manifest_merges_runs_and_is_not_rewritten_when_unchanged(tmp_path):
    """Rows of the latest run win, rows of earlier runs stay, columns only one run has are kept (null
    elsewhere); an unchanged re-run leaves the file alone (merged as Arrow: pandas cost a 1.1 M re-run
    540 MB)."""
    import os

    import pandas as pd

    from stores.feature_store import FeatureStore

    store = FeatureStore(str(tmp_path / "s.zarr"), create=True)
    first = pd.DataFrame({"clip_id": ["a", "b", "c"], "media_path": ["/a", "/b", "/c"], "label": [None] * 3,
                          "start": [0.0, 1.0, 2.0], "speaker": ["s1", "s1", "s2"]})
    store.save_manifest(first)
    written = os.stat(store.fs.path("manifest.parquet")).st_mtime_ns
    store.save_manifest(first.copy())
    assert os.stat(store.fs.path("manifest.parquet")).st_mtime_ns == written  # unchanged: not rewritten
    second = pd.DataFrame({"clip_id": ["c", "d"], "media_path": ["/c2", "/d"], "label": ["x", "y"],
                           "start": [5.0, 6.0], "text": ["hello", "world"]})
    store.save_manifest(second)
    m = store.manifest().set_index("clip_id")
    assert list(m.index) == ["a", "b", "c", "d"]
    assert m.loc["c", "media_path"] == "/c2" and m.loc["c", "start"] == 5.0 and m.loc["d", "label"] == "y"
    assert m.loc["a", "media_path"] == "/a" and pd.isna(m.loc["a", "label"]) and m.loc["b", "speaker"] == "s1"
    assert pd.isna(m.loc["d", "speaker"]) and m.loc["d", "text"] == "world" and pd.isna(m.loc["a", "text"])


def test_a_manifest_that_cannot_merge_with_the_stored_one_is_a_one_line_error_and_keeps_it(tmp_path):
    import pandas as pd

    from stores.errors import StoreError
    from stores.feature_store import FeatureStore

    store = FeatureStore(str(tmp_path / "s.zarr"), create=True)
    store.save_manifest(pd.DataFrame({"clip_id": ["a"], "label": [3]}))
    with pytest.raises(StoreError, match=r"saving the manifest: .*label.*its own --store") as err:
        store.save_manifest(pd.DataFrame({"clip_id": ["b"], "label": ["happy"]}))
    assert "\n" not in str(err.value)
    assert store.manifest().to_dict("list") == {"clip_id": ["a"], "label": [3]}  # the stored one is intact
