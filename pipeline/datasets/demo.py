"""The embedded demo corpus: synthetic speakers whose voice and (real, warped) face carry the class.

The four classes are a 2 x 2 design, so the modalities are complementary: the voice carries arousal
only (pitch, energy, tempo: calm/sad low, happy/angry high) and the face carries valence only (pose and
shape: calm/happy positive, sad/angry negative). Either modality alone can tell at most two groups of
two classes apart (unweighted accuracy 0.5); both together tell all four. Speakers differ in pitch,
loudness, tempo, head pose and face scale, so a model has to learn the class cues, not the speaker.

``pool`` extra speakers give unlabelled clips (empty label, split ``pool``, no fold) for masked-frame
pretraining: other people than every labelled (and hence every test) speaker, as VoxCeleb2 is for
CREMA-D in Tran & Soleymani. Deterministic per seed.
Layout: ``<root>/spkNN/<class>_<k>.mp4`` plus ``<root>/labels.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.datasets import protocols
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.media import synth

AROUSAL = {"low": (0.92, 3.0, 0.30), "high": (1.22, 6.0, 0.75)}  # f0 factor, syllables/s, energy
VALENCE = {"positive": (5.0, 0.93), "negative": (-5.0, 1.07)}  # face angle (degrees), vertical squash
CLASSES = {"calm": ("low", "positive"), "happy": ("high", "positive"),
           "sad": ("low", "negative"), "angry": ("high", "negative")}
SPLITS = {1: "train", 2: "train", 3: "train", 4: "train", 5: "validation", 6: "test"}
# `pipeline demo`'s corpus: 72 labelled clips (6 speakers) + 96 unlabelled pool clips (8 other speakers)
DEMO = {"speakers": 6, "clips_per_class": 3, "pool": 8, "durations": (2.0, 3.0), "fps": (12.5, 15.0)}


def generate(root: str | Path, speakers: int = 6, clips_per_class: int = 2, seed: int = 0,
             durations: tuple[float, float] = (2.0, 4.0), pool: int = 0,
             fps: tuple[float, float] = (25.0, 30.0)) -> Path:
    """Write the corpus under ``root`` (skipping files that exist) and return ``root``.

    ``pool`` unlabelled speakers follow the labelled ones; ``fps`` alternates between clips (mixed rates
    are what real corpora have, and what alignment must handle)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = synth.face_image()
    rows = []
    for s in range(1, speakers + pool + 1):
        f0 = float(rng.uniform(100, 130) if s % 2 else rng.uniform(180, 230))
        loud, tempo = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.85, 1.15))
        tilt, scale, bright = float(rng.uniform(-3, 3)), float(rng.uniform(0.94, 1.06)), float(rng.uniform(0.85, 1.1))
        labelled = s <= speakers
        for ci, (label, (arousal, valence)) in enumerate(CLASSES.items()):
            ff, rate, energy = AROUSAL[arousal]
            angle, squash = VALENCE[valence]
            for k in range(clips_per_class):
                clip_seed = seed * 100003 + s * 1009 + ci * 101 + k
                crng = np.random.default_rng(clip_seed)
                duration = float(np.round(crng.uniform(*durations), 2))
                rate_k = fps[k % 2]
                path = root / f"spk{s:02d}" / f"{label}_{k}.mp4"
                if not path.exists():
                    audio = synth.voice(duration, f0 * ff, rate * tempo * crng.uniform(0.9, 1.1),
                                        energy * loud * crng.uniform(0.9, 1.1), clip_seed)
                    frames = synth.animate_face(base, int(duration * rate_k), rate_k, angle + tilt,
                                                scale * crng.uniform(0.98, 1.02), bright, squash, clip_seed)
                    tmp = path.with_suffix(".part.mp4")
                    synth.write_clip(tmp, frames, rate_k, audio)
                    tmp.rename(path)
                rows.append({"file": path.relative_to(root).as_posix(), "speaker": f"spk{s:02d}",
                             "label": label if labelled else "",
                             "split": SPLITS.get(s, "train") if labelled else "pool"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@register_dataset
class DemoDataset(DatasetAdapter):
    name = "demo"
    description = ("synthetic audio-visual corpus (generated into --root if empty): 6 speakers x 4 classes "
                   "(voice = arousal, face = valence) + 8 unlabelled speakers")
    layout = "<root>/spkNN/<class>_<k>.mp4, <root>/labels.csv (empty label + split 'pool': unlabelled)"

    def manifest(self, root: Path) -> pd.DataFrame:
        if not (root / "labels.csv").exists():
            generate(root, **DEMO)
        labels = pd.read_csv(root / "labels.csv", keep_default_na=False)
        df = pd.DataFrame({
            "clip_id": [f.removesuffix(".mp4").replace("/", "-") for f in labels["file"]],
            "speaker": labels["speaker"],
            "session": labels["speaker"],
            "media_path": [str((root / f).resolve()) for f in labels["file"]],
            "label": labels["label"].replace("", None),
            "split": labels["split"],
        })
        labelled = df["label"].notna()
        # leave-one-speaker-out over the labelled speakers; the pool is in no fold
        df["fold_lo_speaker"] = protocols.leave_one_out(df[labelled], "speaker").reindex(df.index).astype("Int64")
        return df
