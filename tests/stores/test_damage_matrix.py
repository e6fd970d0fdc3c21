"""The damage matrix: every file kind the store format names x {deleted, truncated, garbage}, on real files.

Each case copies a store the real CLI wrote, damages one file on disk, and asks what a user would:
`pipeline verify` exits 1 with a line naming what is damaged (no traceback); `verify --repair` then the same
`extract` command give a store that verifies clean and holds, entry for entry, the undamaged store's values
bit for bit, and nothing else is lost. The default tier runs one damage of four kinds; `-m slow` the whole matrix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stores.feature_store import FeatureStore
from tests.helpers.cli import cli, extract_json

MODES = ("deleted", "truncated", "garbage")
# file kind -> how to find it in a store (relative path); run reports are informational: deleting one loses
# nothing, so verify has nothing to say about it
KINDS = {
    "root zarr.json": lambda s: "zarr.json",
    "native group zarr.json": lambda s: "native/zarr.json",
    "view group zarr.json": lambda s: "aligned/5hz/zarr.json",
    "extractor group zarr.json": lambda s: "native/logmel/zarr.json",
    "aligned extractor group zarr.json": lambda s: "aligned/5hz/logmel/zarr.json",
    "manifest.parquet": lambda s: "manifest.parquet",
    "index file": lambda s: _one(s, "index/*.parquet"),
    "part zarr.json": lambda s: _one(s, "native/logmel/*/zarr.json"),
    "array zarr.json": lambda s: _one(s, "native/logmel/*/values/zarr.json"),
    "chunk": lambda s: _one(s, "native/logmel/*/times/c/0/0"),
    "run report": lambda s: _one(s, "runs/*.json", first=True),
}
DEFAULT = {"root zarr.json": "garbage", "native group zarr.json": "deleted", "view group zarr.json": "truncated",
           "extractor group zarr.json": "truncated", "aligned extractor group zarr.json": "deleted",
           "manifest.parquet": "truncated", "index file": "truncated", "part zarr.json": "garbage",
           "array zarr.json": "deleted", "chunk": "garbage", "run report": "garbage"}


def _one(store: Path, pattern: str, first: bool = False) -> str:
    found = sorted(store.glob(pattern))
    assert found and (first or len(found) == 1), (pattern, found)
    return str(found[0].relative_to(store))


def _args(corpus: Path, store: Path) -> list[str]:
    return ["--dataset", "demo", "--root", str(corpus), "--store", str(store), "--extractors", "logmel", "--quiet",
            "--limit", "4"]


def _entries(store: Path) -> dict[tuple, tuple]:
    s = FeatureStore(str(store))
    live = s.index()
    out = {}
    for r in live.to_dict("records"):
        entry = (r["clip_id"], r["stage"], r["view"], r["extractor"], r["status"])
        out[entry] = tuple(np.asarray(a).copy() for a in (lambda f: (f.values, f.start, f.end, f.mask))(s.read(r))) \
            if r["status"] == "ok" else ()
    return out


@pytest.fixture(scope="module")
def reference(mini_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    store = tmp_path_factory.mktemp("reference") / "s.zarr"
    extract_json(*_args(mini_corpus, store))
    return store, _entries(store)


def _damage(path: Path, mode: str) -> None:
    if mode == "deleted":
        path.unlink()
    elif mode == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: max(1, len(data) // 2)])
    else:
        path.write_bytes(np.random.default_rng(7).bytes(max(64, path.stat().st_size)))


def _case(kind: str, mode: str, mini_corpus: Path, reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_store, ref_entries = reference
    store = tmp_path / "s.zarr"
    shutil.copytree(ref_store, store)
    rel = KINDS[kind](store)
    _damage(store / rel, mode)
    proc = cli("verify", str(store), "--quiet")
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    if kind == "run report" and mode == "deleted":
        assert proc.returncode == 0, text  # a report of what a run did: nothing the store needs
    else:
        assert proc.returncode == 1, text
        named = rel if kind not in ("index file",) or mode != "deleted" else "no index row references"
        assert named in text, text
    repaired = cli("verify", str(store), "--repair", "--quiet")
    assert "Traceback" not in repaired.stdout + repaired.stderr, repaired.stdout + repaired.stderr
    extract_json(*_args(mini_corpus, store))
    proc = cli("verify", str(store), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = _entries(store)
    assert after.keys() == ref_entries.keys()
    for entry, arrays in ref_entries.items():
        for a, b in zip(arrays, after[entry]):
            np.testing.assert_array_equal(a, b)
    s = FeatureStore(str(store))
    assert s.manifest().equals(FeatureStore(str(ref_store)).manifest())


FAST = ("root zarr.json", "manifest.parquet", "index file", "chunk")  # the default tier; the rest: -m slow


@pytest.mark.parametrize("kind", FAST)
def test_damage_is_named_then_repaired_bit_for_bit(kind: str, mini_corpus: Path, reference: tuple[Path, dict],
                                                   tmp_path: Path) -> None:
    _case(kind, DEFAULT[kind], mini_corpus, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_damage_mode_of_every_file_kind(kind: str, mode: str, mini_corpus: Path, reference: tuple[Path, dict],
                                              tmp_path: Path) -> None:
    if kind in FAST and DEFAULT[kind] == mode:
        pytest.skip("run in the default tier")
    _case(kind, mode, mini_corpus, reference, tmp_path)


def test_a_damaged_index_file_is_one_line_for_extract_and_status(mini_corpus: Path, reference: tuple[Path, dict],
                                                                  tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(reference[0], store)
    rel = KINDS["index file"](store)
    _damage(store / rel, "truncated")
    for proc in (cli("status", str(store)), cli("extract", *_args(mini_corpus, store))):
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and rel in lines[0] and "verify" in lines[0] and "--repair" in lines[0], lines
