"""The numeric precision a PyTorch extractor computes in: a config field every such extractor shares.

``fp32`` (the default, on CPU and GPU alike) gives features that match the reference implementations
and each other across devices (TF32 is switched off on CUDA); ``bf16`` runs the model under bfloat16
autocast (GPU throughput, ~3 significant digits). Because the field is part of the extractor's config,
it is part of the cache key: bf16 and fp32 results are never mixed under one key. fp32 is left out of
the key (``Extractor.describe``) so stores made before this field existed keep their keys.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class PrecisionConfig:
    """Base of the config of every PyTorch extractor (subclasses with a ``__post_init__`` call this one)."""

    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r} "
                             "(fp32: the default; bf16: --precision bf16 or --set NAME.precision=bf16)")
