"""Face-stage benchmark: throughput (frames/s, CPU, one thread) and detection rate, side by side in one run.

    .venv/bin/python benchmarks/face_bench.py [--baseline 2eb9e00] [--long-seconds 600] [--out benchmarks/out]

``before`` is the face stage as it was at git revision ``--baseline`` (Haar + eye cascade on every frame),
loaded from git into this process; ``after`` is today's default (MTCNN every 5th frame, optical flow in
between) and today's Haar fallback. Data: the demo corpus, OpenCV's messi5.jpg held as 3-second videos
(upright, rotated +-20 degrees, double size) and OpenCV's Megamind.avi (`make sample-data`). Then one
1280 x 720 clip of ``--long-seconds`` through `pipeline extract` with logmel,egemaps,face_hog on the
default local cluster: its wall time against the clip's duration (real-time factor).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extractors.base import FaceCrop, VideoSegment  # noqa: E402
from pipeline.datasets.demo import generate  # noqa: E402
from pipeline.media import synth  # noqa: E402
from pipeline.media.face import FaceConfig, FaceStage  # noqa: E402

SAMPLES = [ROOT / ".cache" / "opencv-samples", Path("/usr/share/doc/opencv-doc/examples/data")]


def _sample(name: str) -> Path | None:
    return next((d / name for d in SAMPLES if (d / name).exists()), None)


def _old_stage(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:pipeline/media/face.py"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    path = Path(tempfile.mkdtemp()) / "old_face.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_face", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_face"] = mod
    spec.loader.exec_module(mod)

    def run(frames: np.ndarray) -> np.ndarray:
        tracker, found = mod.FaceTracker(mod.FaceConfig()), []
        for i in range(0, len(frames), 32):
            w = frames[i : i + 32]
            t = np.arange(len(w)) / 25.0
            found.append(tracker.process(VideoSegment("b", w, t, t + 0.04)).found)
        return np.concatenate(found)

    return run


def _new_stage(cfg: FaceConfig):
    def run(frames: np.ndarray) -> np.ndarray:
        stage, found = FaceStage(cfg, [FaceCrop(112)]), []
        for i in range(0, len(frames), 32):
            w = frames[i : i + 32]
            t = np.arange(len(w)) / 25.0
            (seg,) = stage.process(VideoSegment("n", w, t, t + 0.04)).values()
            found.append(seg.found)
        return np.concatenate(found)

    return run


def datasets(tmp: Path) -> dict[str, list[np.ndarray]]:
    corpus = generate(tmp / "demo", speakers=4, clips_per_class=2, seed=1, durations=(2.0, 3.0))
    demo = []
    for f in sorted(corpus.rglob("*.mp4")):
        with av.open(str(f)) as c:
            demo.append(np.stack([fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]))
    out = {"demo corpus": demo}
    messi = _sample("messi5.jpg")
    if messi is not None:
        img = cv2.cvtColor(cv2.imread(str(messi)), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        rot = lambda a: cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), a, 1), (w, h),  # noqa: E731
                                       borderMode=cv2.BORDER_REFLECT)
        for name, im in (("messi5 upright", img), ("messi5 +20°", rot(20)), ("messi5 −20°", rot(-20)),
                         ("messi5 2×", cv2.resize(img, None, fx=2, fy=2))):
            out[name] = [np.stack([im] * 75)]
    mega = _sample("Megamind.avi")
    if mega is not None:
        with av.open(str(mega)) as c:
            out["Megamind.avi"] = [np.stack([fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)])]
    return out


def stage_table(tmp: Path, rev: str) -> list[str]:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    variants = {"before (Haar every frame)": _old_stage(rev),
                "after: MTCNN every 5th + flow": _new_stage(FaceConfig(detector="mtcnn")),
                "after: Haar every 5th + flow": _new_stage(FaceConfig(detector="haar"))}
    data = datasets(tmp)
    _new_stage(FaceConfig(detector="mtcnn"))(data["demo corpus"][0][:8])  # load the model outside the timing
    rows = ["| data | frames | " + " | ".join(f"{v}: found / fps" for v in variants) + " | speed-up (MTCNN/before) |",
            "|---|---|" + "---|" * (len(variants) + 1)]
    for name, clips in data.items():
        n = sum(len(c) for c in clips)
        cells, fps = [], {}
        for v, run in variants.items():
            t = time.perf_counter()
            found = np.concatenate([run(c) for c in clips])
            fps[v] = n / (time.perf_counter() - t)
            cells.append(f"{found.mean():.0%} / {fps[v]:.0f}")
        speed = fps["after: MTCNN every 5th + flow"] / fps["before (Haar every frame)"]
        rows.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {speed:.1f}× |")
    return rows


def long_clip(tmp: Path, seconds: float) -> str:
    """One 1280 x 720, 25 fps clip through `pipeline extract` (logmel, egemaps, face_hog; default cluster)."""
    clip_dir = tmp / "long" / "clips"
    clip_dir.mkdir(parents=True)
    base = synth.face_image(720)
    frames = (cv2.copyMakeBorder(f, 0, 0, 280, 280, cv2.BORDER_CONSTANT)
              for f in synth.animate_face(base, int(seconds * 25), 25, 0, 1, 1, 1, 0))
    synth.write_clip(clip_dir / "long.mp4", frames, 25, synth.voice(seconds, 150, 4, 0.5, 0))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "extract", "--dataset", "folder", "--root",
                           str(clip_dir), "--store", str(tmp / "long" / "store"), "--extractors",
                           "logmel,egemaps,face_hog", "--json", "--quiet"], capture_output=True, text=True,
                          timeout=int(seconds * 4) + 600, cwd=ROOT)
    wall = time.perf_counter() - t
    report = json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-500:]}
    return (f"| 1280×720 25 fps clip of {seconds:.0f} s, logmel+egemaps+face_hog, `pipeline extract` | "
            f"{wall:.0f} s wall = {wall / seconds:.2f}× real time | counts {report.get('counts', report)} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="2eb9e00", help="git revision of the 'before' face stage")
    ap.add_argument("--long-seconds", type=float, default=600.0, help="0 skips the long clip")
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows = stage_table(Path(d), args.baseline)
        print("\n".join(rows), flush=True)
        if args.long_seconds > 0:
            rows += ["", "| long clip | wall / duration | result |", "|---|---|---|",
                     long_clip(Path(d), args.long_seconds)]
    text = "\n".join(rows)
    print(text)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "face_results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
