"""Deep merge of preset mappings (``extends``, a run's training options over the preset's)."""

from __future__ import annotations

import copy


def merge(base: dict, over: dict) -> dict:
    """Deep merge of mappings; lists and scalars in ``over`` replace those of ``base``."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
