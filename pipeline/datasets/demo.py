"""The embedded demo corpus: synthetic speakers whose voice and (real, warped) face carry the class.

6 speakers x 4 classes x 2 clips of 2-4 s, mp4 (H.264 + AAC). Classes differ in pitch, energy and
tempo of the voice and in the pose, scale, brightness and shape of the face. Deterministic per seed.
Layout: ``<root>/spkNN/<class>_<k>.mp4`` plus ``<root>/labels.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import protocols, synth
from pipeline.manifest import DatasetAdapter, register_dataset

CLASSES = {
    # class: (f0 factor, syllables/s, energy, face angle, scale, brightness, vertical squash)
    "neutral": (1.00, 4.0, 0.40, 0.0, 1.00, 1.00, 1.00),
    "happy": (1.35, 5.5, 0.60, 5.0, 1.08, 1.15, 0.93),
    "angry": (1.20, 6.5, 0.90, -5.0, 0.96, 0.95, 1.06),
    "sad": (0.85, 2.5, 0.25, 0.0, 0.92, 0.75, 1.00),
}
SPLITS = {1: "train", 2: "train", 3: "train", 4: "train", 5: "validation", 6: "test"}


def generate(root: str | Path, speakers: int = 6, clips_per_class: int = 2, seed: int = 0,
             durations: tuple[float, float] = (2.0, 4.0)) -> Path:
    """Write the corpus under ``root`` (skipping files that exist) and return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = synth.face_image()
    rows = []
    for s in range(1, speakers + 1):
        f0 = float(rng.uniform(100, 130) if s % 2 else rng.uniform(180, 230))
        for ci, (label, (ff, rate, energy, angle, scale, bright, squash)) in enumerate(CLASSES.items()):
            for k in range(clips_per_class):
                clip_seed = seed * 100003 + s * 1009 + ci * 101 + k
                crng = np.random.default_rng(clip_seed)
                duration = float(np.round(crng.uniform(*durations), 2))
                fps = 30.0 if k % 2 else 25.0
                path = root / f"spk{s:02d}" / f"{label}_{k}.mp4"
                if not path.exists():
                    audio = synth.voice(duration, f0 * ff, rate * crng.uniform(0.9, 1.1), energy, clip_seed)
                    frames = synth.animate_face(base, int(duration * fps), fps, angle, scale, bright, squash, clip_seed)
                    tmp = path.with_suffix(".part.mp4")
                    synth.write_clip(tmp, frames, fps, audio)
                    tmp.rename(path)
                rows.append({"file": path.relative_to(root).as_posix(), "speaker": f"spk{s:02d}", "label": label,
                             "split": SPLITS.get(s, "train")})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@register_dataset
class DemoDataset(DatasetAdapter):
    name = "demo"
    description = "synthetic audio-visual corpus (generated into --root if empty): 6 speakers x 4 classes"
    layout = "<root>/spkNN/<class>_<k>.mp4, <root>/labels.csv"

    def manifest(self, root: Path) -> pd.DataFrame:
        if not (root / "labels.csv").exists():
            generate(root)
        labels = pd.read_csv(root / "labels.csv")
        df = pd.DataFrame({
            "clip_id": [f.removesuffix(".mp4").replace("/", "-") for f in labels["file"]],
            "speaker": labels["speaker"],
            "session": labels["speaker"],
            "media_path": [str((root / f).resolve()) for f in labels["file"]],
            "label": labels["label"],
            "split": labels["split"],
        })
        df["fold_lo_speaker"] = protocols.leave_one_out(df, "speaker").values  # leave-one-speaker-out
        return df
