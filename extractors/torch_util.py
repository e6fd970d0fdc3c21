"""What every PyTorch extractor shares: device choice and mixed precision on GPU (same code on CPU)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from extractors.base import Features, VideoSegment

if TYPE_CHECKING:
    from pathlib import Path


def device_of(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name == "cuda":  # fp32 means fp32: TF32 convolutions (PyTorch's CUDA default) differ from CPU results
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(name)


@contextlib.contextmanager
def inference(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """no_grad; with ``precision="bf16"``, bfloat16 autocast (on CPU too: the same code path as on a GPU)."""
    if precision == "bf16" and device.type == "cpu":
        cpu_bf16_without_onednn()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def cpu_bf16_without_onednn() -> None:
    """oneDNN's bfloat16 grouped convolutions return garbage on CPUs with AMX in this torch (measured: relative
    error 1.1 on a Conv1d with groups=4, as wav2vec2's positional convolution; 0.003 without oneDNN; upstream:
    pytorch/pytorch#163347). A process that computes bf16 on CPU uses PyTorch's own kernels from then on, for
    every thread of it (the switch is process-wide; flipping it back could catch another thread mid-model)."""
    if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        with warnings.catch_warnings():  # its setter warns about TF32 on Intel GPUs, which this build lacks
            warnings.simplefilter("ignore")
            torch.backends.mkldnn.enabled = False


def load_state(path: str | Path, model: torch.nn.Module, strict: bool = True) -> torch.nn.Module:
    """Safe loading only: torch.load(weights_only=True) or safetensors."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    model.load_state_dict(state, strict=strict)
    return model


def face_embeddings(model: torch.nn.Module, device: torch.device, batch: Sequence[VideoSegment], dim: int,
                    batch_frames: int, standardise: Callable[[torch.Tensor], torch.Tensor],
                    precision: str = "fp32") -> list[Features]:
    """Run ``model`` on every frame's crop (batched across clips); faceless frames are zero and invalid."""
    crops = np.concatenate([s.frames for s in batch]) if batch else np.zeros((0, 1, 1, 3), np.uint8)
    outs = []
    with inference(device, precision):
        for i in range(0, len(crops), batch_frames):
            x = torch.from_numpy(crops[i : i + batch_frames]).to(device).permute(0, 3, 1, 2).float()
            outs.append(model(standardise(x)).float().cpu().numpy())
    values = np.concatenate(outs) if outs else np.zeros((0, dim), np.float32)
    results, pos = [], 0
    for seg in batch:
        v = values[pos : pos + len(seg.frames)].copy()
        pos += len(seg.frames)
        found = np.ones(len(v), bool) if seg.found is None else seg.found
        v[~found] = 0.0
        results.append(Features(v, seg.times, seg.ends, found, seg.confidence))
    return results
