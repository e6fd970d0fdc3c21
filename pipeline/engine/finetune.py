"""`pipeline finetune`: train an extractor's backbone on a corpus partition, then register it as weights.

JMT trains R(2+1)D on Aff-Wild2 face clips and a ResNet-18 on its spectrograms before freezing them;
Babaali & Shayaninasab fine-tune BERT, wav2vec2 and VideoMAE on each fold's training sessions. Here the
clips of the partition are decoded and face-cropped by the extraction front end (``ClipDecoder`` and
``FaceStage``, as every extraction task does), the extractor cuts them into its own units (8-frame
clips, spectrogram windows, whole utterances; spilled to ``OUT/units`` window by window, so a corpus of
face clips need not fit in memory) and embeds them with its backbone *with gradients*; a
linear head on the embedding learns the clip's label (classification, cross-entropy) or the unit's mean
frame targets (Aff-Wild2 valence/arousal, 1 - CCC). Full state is checkpointed every epoch (a rerun
resumes); the result is written in the extractor's own weights format under ``<models>/<NAME>/`` with its
sha256 pinned, as ``pipeline models add --like`` does, so ``--set EXTRACTOR.weights=NAME`` extracts with
it and, the sha256 being part of the cache key, its features sit beside the public checkpoint's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.media.face import FaceConfig
from stores.atomic_file import write_atomic


@dataclass(frozen=True)
class FinetuneConfig:
    extractor: str
    dataset: str
    root: str
    name: str  # the weights name it registers (``--set EXTRACTOR.weights=NAME``)
    options: dict[str, Any] = field(default_factory=dict)  # the extractor's options (the preset's)
    label: str | None = None  # classification column; None: the dataset's frame targets (Aff-Wild2 VA)
    protocol: str = "split"  # manifest column: train rows of a split, or every fold but ``fold``
    fold: str | None = None
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 8
    weight_decay: float = 0.0
    optimizer: str = "sgd"  # sgd (JMT's R(2+1)D) | adam (JMT's audio) | adamw (the transformers)
    seed: int = 0
    device: str = "auto"
    limit: int | None = None
    out: str = "runs/finetune"
    models_dir: str | None = None
    face: FaceConfig = field(default_factory=FaceConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("finetune: --epochs, --batch-size and --lr must be > 0")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"finetune: optimizer must be sgd, adam or adamw, not {self.optimizer!r}")


def training_rows(manifest: Any, cfg: FinetuneConfig) -> Any:
    """The partition a backbone may learn from: a split's train rows, or every fold but the test fold."""
    if cfg.protocol not in manifest.columns:
        raise ConfigError(f"finetune: protocol column {cfg.protocol!r} is not in the {cfg.dataset} manifest")
    col = manifest[cfg.protocol].astype(str)
    if col.isin(["train", "validation", "test"]).any():
        rows = manifest[col == "train"]
    else:
        if cfg.fold is None:
            raise ConfigError(f"finetune: {cfg.protocol} is a fold column: say which fold is the test fold "
                              "(--fold K); the backbone learns from the others only")
        folds = sorted(set(col[manifest[cfg.protocol].notna()]) - {"", "<NA>", "nan"})
        if str(cfg.fold) not in folds:  # a fold that matches nothing would let the test fold in
            raise ConfigError(f"finetune: fold {cfg.fold!r} is not a value of {cfg.protocol}; folds: {folds}")
        rows = manifest[(col != str(cfg.fold)) & manifest[cfg.protocol].notna() & (col != "<NA>")]
    if cfg.label is not None:
        if cfg.label not in rows.columns:
            raise ConfigError(f"finetune: label column {cfg.label!r} is not in the {cfg.dataset} manifest")
        rows = rows[rows[cfg.label].notna() & (rows[cfg.label].astype(str) != "")]
    if rows.empty:
        raise ConfigError(f"finetune: no training clip in {cfg.protocol} (fold {cfg.fold}) of {cfg.root}")
    return rows


def _segments(src: Any, ext: Any, face: FaceConfig) -> Iterator[Any]:
    """The clip as the extractor sees it during extraction, window by window: the same decoder, face stage and
    segments (windows hold whole groups of the extractor's frames, as extraction's do)."""
    from extractors.base import AudioSegment, TextSegment
    from pipeline.media.decode import ClipDecoder
    from pipeline.media.face import FaceStage

    if ext.input == "text":
        yield TextSegment(src.clip_id, src.text or "", float((src.end or 0) - (src.start or 0)))
        return
    video = ext.input in ("frames", "faces")
    dec = ClipDecoder(src, want_video=video, want_audio=not video,
                      window_frames=4 * getattr(ext, "window_multiple", 8))
    stage = FaceStage(face, [ext.face_crop], src.subject) if ext.input == "faces" else None
    for win in dec.windows():
        if video:
            yield stage.process(win)[ext.face_crop] if stage else win
    if not video and dec.audio is not None:
        yield AudioSegment(src.clip_id, dec.audio)


def _unit_targets(spans: list[tuple[float, float]], frames: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's mean of the valid frame targets inside it, and whether it had any."""
    y = np.zeros((len(spans), frames.values.shape[1]), np.float32)
    ok = np.zeros(len(spans), bool)
    for i, (a, b) in enumerate(spans):
        sel = (frames.start >= a - 1e-6) & (frames.start < b) & frames.mask
        if sel.any():
            y[i], ok[i] = frames.values[sel].mean(0), True
    return y, ok


class Units:
    """The partition's units, spilled to ``folder`` window by window (a corpus of face clips does not fit in
    memory); text units stay in memory. ``take(idx)`` loads a batch."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder, self.refs, self.files = folder, [], 0

    def add(self, units: list[Any]) -> list[int]:
        first = len(self.refs)
        if units and isinstance(units[0], np.ndarray) and len({u.shape for u in units}) == 1:
            path = self.folder / f"{self.files:07d}.npy"
            np.save(path, np.stack(units))
            self.files += 1
            self.refs += [(path, j) for j in range(len(units))]
        else:
            self.refs += [(None, u) for u in units]
        return list(range(first, len(self.refs)))

    def keep(self, idx: list[int]) -> None:
        self.refs = [self.refs[i] for i in idx]

    def take(self, idx: Any) -> list[Any]:
        opened: dict[Path, np.ndarray] = {}
        out = []
        for i in idx:
            path, j = self.refs[i]
            if path is None:
                out.append(j)
                continue
            if path not in opened:
                opened[path] = np.load(path, mmap_mode="r")
            out.append(np.array(opened[path][j]))
        return out

    def __len__(self) -> int:
        return len(self.refs)


def collect(cfg: FinetuneConfig, ext: Any, rows: Any, log: Callable[[str], None]) -> tuple[Units, np.ndarray, list]:
    """(units, targets, classes) of the training partition's ``rows``, decoded once, units spilled to disk."""
    from extractors import registry
    from extractors.base import AnnotationSegment
    from pipeline.datasets import manifest as manifests
    from pipeline.engine.plan import clip_sources
    from pipeline.media.decode import probe

    if cfg.limit:
        rows = rows.head(cfg.limit)
    targets = manifests.get_dataset(cfg.dataset).targets
    if cfg.label is None and not targets:
        raise ConfigError(f"finetune: {cfg.dataset} has no frame targets; name a label column (--label)")
    classes = sorted(rows[cfg.label].astype(str).unique()) if cfg.label else []
    units, ys, kept = Units(Path(cfg.out) / "units"), [], []
    left_out = 0
    for src, (_, row) in zip(clip_sources(rows), rows.iterrows()):
        idx, spans = [], []
        try:  # a clip that cannot be decoded or read is left out, named, as extraction fails it alone
            if not cfg.label and not src.annotation_path:
                raise ValueError("the manifest gives no annotation_path for its frame targets")
            for seg in _segments(src, ext, cfg.face):
                got = ext.train_units(seg)
                idx += units.add([u for u, _ in got])
                spans += [sp for _, sp in got]
            frames = None if cfg.label else registry.create(targets[0]).compute([AnnotationSegment(
                src.clip_id, Path(src.annotation_path).read_text(encoding="utf-8-sig"),
                probe(src.media_path).fps or 30.0)])[0]
        except Exception as exc:  # noqa: BLE001 - decoding, a damaged file, an unreadable annotation; units it
            # spilled are not in ``kept``
            left_out += 1
            log(f"  {src.clip_id}: left out of fine-tuning (decode/annotation: {type(exc).__name__}: "
                f"{str(exc)[:200]}); `pipeline datasets check` names damaged files")
            continue
        if not idx:
            log(f"  {src.clip_id}: nothing to learn from (no {ext.input})")
            continue
        if cfg.label:
            kept += idx
            ys += [classes.index(str(row[cfg.label]))] * len(idx)
            continue
        y, ok = _unit_targets(spans, frames)
        kept += [i for i, k in zip(idx, ok) if k]
        ys += list(y[ok])
    units.keep(kept)
    if not len(units):
        raise ConfigError(f"finetune {cfg.extractor}: no usable unit in the training partition of {cfg.root}"
                          + (f" ({left_out} clip(s) could not be read: see above)" if left_out else ""))
    return units, np.asarray(ys), classes


def finetune(cfg: FinetuneConfig, log: Callable[[str], None] = print) -> Path:
    """Train, checkpoint every epoch, resume; then install ``<models>/<NAME>`` with its sha256 pinned."""
    import torch

    from extractors import registry, weights

    if cfg.models_dir:
        weights.set_models_dir(cfg.models_dir)
    ext = registry.create(cfg.extractor, cfg.options)
    if not hasattr(ext, "train_units"):
        trainable = [n for n in registry.names() if hasattr(registry.get(n), "train_units")]
        raise ConfigError(f"finetune: {cfg.extractor} has no trainable backbone; these have: {', '.join(trainable)}")
    from pipeline.datasets.manifest import build_listing

    rows = training_rows(build_listing(cfg.dataset, cfg.root, None)[0], cfg)  # a wrong fold before weights
    base = weights.get_weights(ext.weights_id)
    weights.resolve(base.name)  # the starting weights, checked before any clip is decoded
    torch.manual_seed(cfg.seed)
    device = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else (
        "cpu" if cfg.device == "auto" else cfg.device)
    ext.setup(device)
    units, y, classes = collect(cfg, ext, rows, log)
    net = ext.trainable()
    dim = int(ext.embed(units.take([0])).shape[-1])
    n_out = len(classes) if classes else y.shape[1]
    head = torch.nn.Linear(dim, n_out).to(ext.device)
    params = list(net.parameters()) + list(head.parameters())
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay),
           "adam": lambda: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
           "adamw": lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)}[cfg.optimizer]()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, history, start = out / "finetune.pt", [], 0
    if ckpt.exists():  # resume: the full state
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["net"])
        head.load_state_dict(saved["head"])
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        start, history = int(saved["epoch"]), list(saved["history"])
        log(f"  resumed at epoch {start}")
    yt = torch.as_tensor(y, dtype=torch.long if classes else torch.float32)
    for epoch in range(start, cfg.epochs):
        net.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(units))
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            pred = head(ext.embed(units.take(idx)).float())
            target = yt[idx].to(pred.device)
            loss = torch.nn.functional.cross_entropy(pred, target) if classes else _one_minus_ccc(pred, target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        state = {"net": net.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                 "rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history}
        write_atomic(ckpt, lambda tmp, state=state: torch.save(state, tmp))
        log(f"  epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['loss']:.4f} ({len(units)} units)")
    shutil.rmtree(units.folder, ignore_errors=True)  # the decoded units: as large as the partition's crops
    folder = install(cfg, ext, base, {"units": len(units), "history": history, "classes": classes})
    log(f"registered {cfg.name} (fine-tuned from {base.name}) in {folder}: --set {cfg.extractor}.weights={cfg.name}")
    return folder


def _one_minus_ccc(pred: Any, target: Any) -> Any:
    """1 - Lin's CCC per target (population moments), averaged: JMT's loss."""
    pm, tm = pred.mean(0), target.mean(0)
    cov = ((pred - pm) * (target - tm)).mean(0)
    ccc = 2 * cov / (pred.var(0, unbiased=False) + target.var(0, unbiased=False) + (pm - tm) ** 2 + 1e-8)
    return (1 - ccc).mean()


def install(cfg: FinetuneConfig, ext: Any, base: Any, record: dict[str, Any]) -> Path:
    """Write the backbone in the base weights' format, staged and checked like ``models add``."""
    import tempfile

    from extractors import weights

    root = weights.models_dir(cfg.models_dir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{cfg.name}.finetune-") as tmp:
        stage = Path(tmp)
        src = weights.resolve(base.name)
        for f in base.files:  # tokenizer, preprocessor and config files travel unchanged
            if (src / f).is_file():
                shutil.copy2(src / f, stage / f)
        ext.save_weights(stage)
        if cfg.name in weights.all_weights():
            raise ConfigError(f"finetune: {cfg.name!r} is a registered model; choose another --name")
        arch = base.meta.get("like", base.name)  # the registered architecture (the start may be user weights)
        weights.define_custom(cfg.name, arch, root)
        meta = {"dataset": cfg.dataset, "from": base.name, "partition": f"{cfg.protocol}"
                + (f", test fold {cfg.fold} left out" if cfg.fold is not None else ": train rows"),
                "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("face",)}, **record}
        custom = root / cfg.name / weights.CUSTOM
        custom.write_text(json.dumps({"like": arch, "finetuned": meta}, default=str))
        folder = weights.add(cfg.name, stage, root)
    return folder
