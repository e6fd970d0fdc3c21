"""What every PyTorch extractor shares: device choice and mixed precision on GPU (same code on CPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def device_of(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(name)


@contextlib.contextmanager
def inference(device: torch.device) -> Iterator[None]:
    """no_grad, plus bfloat16 autocast on CUDA (CPU runs float32)."""
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        yield


def load_state(path, model: torch.nn.Module, strict: bool = True) -> torch.nn.Module:  # noqa: ANN001
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
