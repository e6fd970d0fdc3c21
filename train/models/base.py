"""What every trained model offers beyond ``forward``: the predictions of its parts, where it has any.

The trainer's evaluation reports each part's own score (MATER's audio and visual branches, whose averaged
outputs are the model's prediction) without knowing which model it is evaluating.
"""

from __future__ import annotations

import torch
from torch import nn


class Model(nn.Module):
    """Base of the trainer's models (adds no parameters, so state dicts are unchanged)."""

    fusion_rule = ""  # how the modalities are combined, in words (a preset's paper spec compares it)

    def branches(self, audio: torch.Tensor, visual: torch.Tensor, mask_a: torch.Tensor,
                 mask_v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-modality outputs ``{"audio": [B, n_out], "visual": ...}`` of a model whose prediction combines
        them; empty for models with no separable branches."""
        return {}
