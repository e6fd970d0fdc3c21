"""Aligned views are named after their common rate: one rule, read by the pipeline that writes a view and
by the trainer that reads it (``--rate 5`` writes ``aligned/5hz``)."""

from __future__ import annotations

DEFAULT_RATE = 5.0  # Hz: the aligned view a run writes unless --rate says otherwise


def view_name(rate: float) -> str:
    """``5.0`` -> ``"5hz"``, ``2.5`` -> ``"2.5hz"``."""
    return f"{float(rate):g}hz"


DEFAULT_VIEW = view_name(DEFAULT_RATE)
