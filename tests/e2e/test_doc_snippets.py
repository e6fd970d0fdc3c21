"""Every Python snippet in the docs runs, as written, against a store that has failed rows (a user's store has).

The snippets name `store.zarr` / `mine.zarr`; the test points those names at a store the real CLI wrote from a
clip list with labels and one broken file. A snippet that is a sketch of an interface, not code (it does not
parse), is left out and listed, so a new runnable snippet cannot slip through unrun.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.cli import ROOT, extract_json

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKETCHES = {("extractors.md", 0)}  # the interface at a glance: `feature_names -> list[str]` is no Python


def snippets() -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
            out.append((doc.name, i, code))
    return out


@pytest.fixture(scope="module")
def store_with_failures(mini_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    clips = sorted(mini_corpus.rglob("*.mp4"))
    (d / "broken.mp4").write_bytes(b"not a video at all")
    rows = [{"clip_id": p.stem + p.parent.name, "media_path": str(p), "speaker": p.parent.name,
             "label": p.stem.split("_")[0]} for p in clips]
    rows.append({"clip_id": "broken", "media_path": str(d / "broken.mp4"), "speaker": "x", "label": "calm"})
    pd.DataFrame(rows).to_csv(d / "list.csv", index=False)
    report = extract_json("--dataset", "csv", "--root", str(d / "list.csv"), "--store", str(d / "store.zarr"),
                          "--extractors", "egemaps,face_hog", "--quiet", "--allow-failures")
    assert report["counts"]["failed"] > 0  # the point: failed rows beside the ok ones
    return d


def test_every_doc_snippet_is_run_or_listed_as_a_sketch() -> None:
    found = {(doc, i) for doc, i, code in snippets() if not _parses(code)}
    assert found == SKETCHES, f"snippets that do not parse: {found - SKETCHES}; listed sketches gone: " \
                              f"{SKETCHES - found}"


@pytest.mark.parametrize("doc,i,code", snippets(), ids=[f"{d}-{i}" for d, i, _ in snippets()])
def test_a_doc_snippet_runs_on_a_store_with_failed_rows(doc: str, i: int, code: str, store_with_failures: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if (doc, i) in SKETCHES:
        pytest.skip("an interface sketch, not code")
    for name in ("store.zarr", "mine.zarr"):
        if not (store_with_failures / name).exists():
            os.symlink(store_with_failures / "store.zarr", store_with_failures / name)
    monkeypatch.chdir(store_with_failures)
    monkeypatch.syspath_prepend(str(ROOT))
    exec(compile(code, f"{doc} snippet {i}", "exec"), {"__name__": "__doc_snippet__"})


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except SyntaxError:
        return False
