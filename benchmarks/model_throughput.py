"""Every deep extractor's batch throughput on one device, and what VoxCeleb2 would cost on it.

    .venv/bin/python benchmarks/model_throughput.py [--device auto|cpu|cuda] [--clips 4] [--seconds 7.8]
                                                    [--only NAME ...] [--precision fp32 [bf16]] [--reps 2]
                                                    [--out benchmarks/out/throughput]

The cost model's per-extractor line (docs/scale.md): for each PyTorch extractor, real-size networks with
randomly initialised weights (the speed does not depend on the values) are registered as the user's own
(`weights.define_custom` + `weights.add`, what `pipeline models add --like` does), then its one compute
method runs on pre-decoded synthetic input shaped like VoxCeleb2: ``--clips`` utterances of ``--seconds``
(7.8 s = 2,440 h / 1.128 M utterances), 16 kHz audio, 224 x 224 video at 25 fps, a face crop on every frame
in the size each face extractor asks for. Decoding and the face stage are not included (docs/scale.md has
them); the extractor's own preprocessing and its batching (its ``batch_*`` setting) are. One warm-up call on
one clip first (CUDA kernels, allocator), then the fastest of ``--reps`` timed calls over all clips, with
``torch.cuda.synchronize`` on a GPU. Prints media seconds per second, device-seconds per media hour and the
device-hours for VoxCeleb2 (2,440 h); on CPU, core-hours = device-hours x the threads torch used. Each
``--precision`` is one row per extractor (fp32, the default, matches reference implementations; bf16 is
bfloat16 autocast, the GPU throughput option).

Not covered: TRILL (its graph exists only as the TF-Hub SavedModel, which cannot be built here at its real
size), BERT (text: per transcript, not per media second), the MTCNN face stage (measured with decoding in
docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from extractors import registry, weights
from extractors.base import AudioSegment, VideoSegment

VOXCELEB2_HOURS = 2440.1  # dev 2,360.2 h + test 79.9 h (PaddleSpeech's published statistics)
FPS, SIDE, SR = 25, 224, 16000


def _state(net: Callable[[], torch.nn.Module], file: str) -> Callable[[Path], Path]:
    def save(d: Path) -> Path:
        torch.save(net().state_dict(), d / file)
        return d / file
    return save


def _hf(model: str, config: str, extra: str | None = None) -> Callable[[Path], Path]:
    def save(d: Path) -> Path:
        import transformers

        getattr(transformers, model)(getattr(transformers, config)()).save_pretrained(d / "hf", safe_serialization=True)
        if extra:
            getattr(transformers, extra)(do_normalize=True).save_pretrained(d / "hf")
        return d / "hf"
    return save


def _vggish(d: Path) -> Path:
    from extractors.vggish import vggish_net

    (d / "vggish").mkdir()
    torch.save(vggish_net().state_dict(), d / "vggish" / "vggish-10086976.pth")
    torch.save({"pca_eigen_vectors": torch.linalg.qr(torch.randn(128, 128))[0], "pca_means": torch.randn(128, 1)},
               d / "vggish" / "vggish_pca_params-970ea276.pth")
    return d / "vggish"


def _builders() -> dict[str, tuple[str, Callable[[Path], Path]]]:
    """extractor -> (the registered weights it is like, a function writing real-size random weights)."""
    from torchvision.models import resnet18
    from torchvision.models.video import r2plus1d_18

    from extractors.facenet import inception_resnet_v1
    from extractors.resnet18_spectrogram import resnet18_1ch
    from extractors.vggm_face import vggm_net

    return {
        "vggish": ("VGGISH_AUDIOSET", _vggish),
        "wav2vec2": ("WAV2VEC2_BASE", _hf("Wav2Vec2Model", "Wav2Vec2Config", "Wav2Vec2FeatureExtractor")),
        "resnet18_spectrogram": ("RESNET18_SPECTROGRAM_JMT", _state(resnet18_1ch, "resnet18_spectrogram.pth")),
        "r2plus1d": ("R2PLUS1D_18_KINETICS400_V1", _state(lambda: r2plus1d_18(weights=None),
                                                          "r2plus1d_18-91a641e6.pth")),
        "videomae": ("VIDEOMAE_BASE", _hf("VideoMAEModel", "VideoMAEConfig")),
        "vggm_face": ("VGGM_FACE_BN_FER", _state(vggm_net, "vgg_m_face_bn_fer_dag.pth")),
        "facenet": ("FACENET_VGGFACE2", _state(inception_resnet_v1, "20180402-114759-vggface2.pt")),
        "resnet_face": ("RESNET18_IMAGENET1K_V1", _state(lambda: resnet18(weights=None), "resnet18-f37072fd.pth")),
    }


def inputs(ext: object, clips: int, seconds: float, rng: np.random.Generator) -> list:
    """Pre-decoded segments of VoxCeleb2's shape for the extractor's input kind."""
    n = int(round(seconds * FPS))
    times = np.arange(n) / FPS
    out = []
    for i in range(clips):
        if ext.input == "audio":
            out.append(AudioSegment(f"c{i}", (rng.standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)))
            continue
        side = ext.face_crop.size if ext.input == "faces" else SIDE
        frames = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        found = np.ones(n, bool) if ext.input == "faces" else None
        conf = np.ones(n, np.float32) if ext.input == "faces" else None
        out.append(VideoSegment(f"c{i}", frames, times, times + 1 / FPS, found, True, conf))
    return out


def register(name: str, models: Path) -> str:
    """Real-size random weights for extractor ``name`` added to ``models`` as the user's own (once); their id."""
    like, save = _builders()[name]
    own = f"BENCH_{name.upper()}"
    if not (models / own).exists():
        src = models.parent / f"src_{name}"
        src.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        weights.define_custom(own, like, models)
        weights.add(own, save(src), models)
        shutil.rmtree(src)
    return own


def measure(name: str, device: str, clips: int, seconds: float, reps: int, models: Path,
            precision: str = "fp32") -> dict:
    own = register(name, models)
    weights.set_models_dir(str(models))
    ext = registry.create(name, {"weights": own, "precision": precision})
    ext.ensure_setup(device)
    dev = torch.device(getattr(ext, "device", "cpu"))
    segs = inputs(ext, clips, seconds, np.random.default_rng(0))

    def run(batch: list) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        ext.compute(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    warm = run(segs[:1])
    best = min(run(segs) for _ in range(reps))
    rate = clips * seconds / best  # media seconds per second
    batch = {k: v for k, v in vars(ext.config).items() if k.startswith("batch")}
    return {"extractor": name, "precision": precision, "device": str(dev),
            "threads": torch.get_num_threads() if dev.type == "cpu" else 0,
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "", "batch": batch,
            "clips": clips, "seconds": seconds, "warmup_s": warm, "best_s": best, "media_s_per_s": rate,
            "device_s_per_media_h": 3600 / rate, "voxceleb2_device_h": VOXCELEB2_HOURS / rate}


def table(rows: list[dict]) -> str:
    lines = ["| extractor | precision | device | batch | media s per s | device-s per media hour | "
             "VoxCeleb2 (2,440 h): device-hours | core-hours (CPU) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r["gpu"] or f"cpu x {r['threads']} threads"
        core = f"{r['voxceleb2_device_h'] * r['threads']:,.0f}" if r["threads"] else ""
        batch = ", ".join(f"{k}={v}" for k, v in r["batch"].items())
        lines.append(f"| {r['extractor']} | {r['precision']} | {dev} | {batch} | {r['media_s_per_s']:.2f} | "
                     f"{r['device_s_per_media_h']:,.0f} | {r['voxceleb2_device_h']:,.0f} | {core} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=7.8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(_builders()))
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/throughput"))
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here (torch.cuda.is_available() is False); use --device cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.only or list(_builders()):
        for precision in args.precision:
            rows.append(measure(name, device, args.clips, args.seconds, args.reps, (args.out / "models").resolve(),
                                precision))
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                  flush=True)
    (args.out / "throughput.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
