"""The layering rule (docs/architecture.md), checked on the code's own imports so that it holds from now on.

Every import of every module of the four packages is read with ``ast`` (module-level ones and the lazy ones
inside functions alike) and checked against the layer table: an import of a layer the table does not allow
is a back-arrow, and a loop of imports between modules is a cycle. Both fail with the file and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "extractors", "stores", "train")

# layer -> the layers it may import (itself always). A layer is the longest prefix of a module's name listed here.
ALLOWED: dict[str, set[str]] = {
    "extractors": set(),
    "stores": {"extractors"},
    "train": {"stores", "extractors"},
    "pipeline.errors": {"stores"},
    "pipeline": {"stores"},  # pipeline/__init__.py: the version, from stores.version
    "pipeline.media": {"pipeline.errors", "extractors", "stores"},
    "pipeline.datasets": {"pipeline.media", "pipeline.errors", "extractors", "stores"},
    "pipeline.shard": {"pipeline.media", "pipeline.errors", "extractors", "stores"},
    "pipeline.runtime": {"pipeline.errors", "extractors", "stores"},
    "pipeline.engine": {"pipeline.runtime", "pipeline.shard", "pipeline.datasets", "pipeline.media", "pipeline.errors",
                        "extractors", "stores"},
    "pipeline.experiments": {"pipeline.engine", "pipeline.runtime", "pipeline.shard", "pipeline.datasets",
                             "pipeline.media", "pipeline.errors", "extractors", "stores", "train"},
    "pipeline.cli": {"pipeline.experiments", "pipeline.engine", "pipeline.runtime", "pipeline.shard",
                     "pipeline.datasets", "pipeline.media", "pipeline.errors", "extractors", "stores", "train"},
    "pipeline.__main__": {"pipeline.cli"},
}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """(project module imported, line) for every import in the file, resolved to a known module."""
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t.split(".")[0] in PACKAGES:
                found.append((t, node.lineno))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in ALLOWED:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer of the table (tests/test_layers.py ALLOWED)")


def test_no_import_runs_back_up_a_layer() -> None:
    mods = modules()
    bad = []
    for name, path in mods.items():
        own = layer(name)
        for target, line in imports(path, name, set(mods)):
            other = layer(target)
            if other != own and other not in ALLOWED[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target} ({other})")
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(bad)


def test_lower_packages_never_import_pipeline() -> None:
    mods = modules()
    bad = [f"{path.relative_to(ROOT)}:{line}: imports {t}" for name, path in mods.items()
           if name.split(".")[0] in ("stores", "extractors", "train")
           for t, line in imports(path, name, set(mods)) if t.split(".")[0] == "pipeline"]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    mods = modules()
    graph = {name: sorted({t for t, _ in imports(path, name, set(mods)) if t != name and not name.startswith(t + ".")})
             for name, path in mods.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state and (cycle := visit(n)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_pipeline_subpackage_holds_more_than_a_quarter_of_the_code() -> None:
    lines: dict[str, int] = {}
    for name, path in modules().items():
        parts = name.split(".")
        if parts[0] == "pipeline" and len(parts) > 2:
            lines[parts[1]] = lines.get(parts[1], 0) + len(path.read_text().splitlines())
    total = sum(len(p.read_text().splitlines()) for p in modules().values())
    assert max(lines.values()) / total <= 0.25, {k: round(v / total, 3) for k, v in lines.items()}


def test_the_checker_sees_a_back_arrow_and_a_cycle(tmp_path: Path) -> None:
    """The rule's own test: a planted back-arrow and a planted cycle are found."""
    (tmp_path / "stores").mkdir()
    (tmp_path / "stores" / "a.py").write_text("def f():\n    from pipeline.engine import run\n")
    found = imports(tmp_path / "stores" / "a.py", "stores.a", {"stores.a", "pipeline.engine", "pipeline.engine.run"})
    assert found == [("pipeline.engine.run", 2)]
    assert layer("stores.a") == "stores" and "pipeline.engine" not in ALLOWED["stores"]
    (tmp_path / "stores" / "b.py").write_text("from stores import a\n")
    assert imports(tmp_path / "stores" / "b.py", "stores.b", {"stores", "stores.a", "stores.b"}) == [("stores.a", 1)]
