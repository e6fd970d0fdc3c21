"""Alignment numerics against a hand-computed example."""

import numpy as np
import pytest

from extractors.base import Features
from pipeline.shard.align import AlignConfig, align, aligned_length, exclusion_reason


def test_average_collapse_by_hand():
    # native frames (start, end, value, valid):
    #   [0.00,0.10) 1   [0.10,0.20) 3   [0.15,0.25) 5   [0.30,0.35) 7 invalid   [0.40,0.45) 9
    f = Features(np.array([[1.0], [3.0], [5.0], [7.0], [9.0]]),
                 [0.0, 0.10, 0.15, 0.30, 0.40], [0.10, 0.20, 0.25, 0.35, 0.45],
                 [True, True, True, False, True])
    out = align(f, duration=0.5, cfg=AlignConfig(rate=5.0))
    # windows of 0.2 s: [0,.2) gets frames 1,3,5 -> 3; [.2,.4) gets frame 5 (overlaps .20-.25) -> 5 (7 invalid);
    # [.4,.6) gets 9 -> 9. duration 0.5 s -> ceil(2.5) = 3 windows
    np.testing.assert_allclose(out.values[:, 0], [3.0, 5.0, 9.0])
    assert out.mask.tolist() == [True, True, True]
    np.testing.assert_allclose(out.start, [0.0, 0.2, 0.4])
    np.testing.assert_allclose(out.end, [0.2, 0.4, 0.6])


def test_window_without_valid_frames_is_invalid_and_confidence_filter():
    f = Features(np.array([[2.0], [4.0], [6.0]]), [0.0, 0.05, 0.5], [0.05, 0.1, 0.55],
                 confidence=[0.9, 0.5, 0.95])
    out = align(f, 0.6, AlignConfig(rate=5.0))
    np.testing.assert_allclose(out.values[:, 0], [3.0, 0.0, 6.0])
    assert out.mask.tolist() == [True, False, True]
    filt = align(f, 0.6, AlignConfig(rate=5.0, min_confidence=0.8))
    np.testing.assert_allclose(filt.values[:, 0], [2.0, 0.0, 6.0])


def test_long_frames_span_several_windows_and_lengths():
    f = Features(np.array([[1.0], [3.0]]), [0.0, 0.96], [0.96, 1.92])
    out = align(f, 1.92, AlignConfig(rate=5.0))
    assert len(out) == aligned_length(1.92, 5.0) == 10
    np.testing.assert_allclose(out.values[:, 0], [1, 1, 1, 1, 2, 3, 3, 3, 3, 3])
    assert aligned_length(2.0, 5.0) == 10 and aligned_length(2.01, 5.0) == 11


def test_duration_gap_exclusion_reason():
    cfg = AlignConfig(max_duration_gap=1.0)
    assert exclusion_reason(3.0, 3.5, cfg) is None
    assert "gap 1.50s" in exclusion_reason(3.0, 4.5, cfg)
    assert exclusion_reason(3.0, float("nan"), cfg) is None
    assert exclusion_reason(3.0, 9.0, AlignConfig(max_duration_gap=None)) is None
    with pytest.raises(ValueError):
        AlignConfig(rate=0)


def test_subsample_takes_one_native_frame_per_window():
    """Tran & Soleymani subsample 30 Hz OpenFace frames to 5 Hz: every 6th frame, not the mean of six."""
    n = 60
    t = np.arange(n) / 30
    valid = np.ones(n, bool)
    valid[6] = False  # no face on the frame at 0.2 s: the window takes the next valid frame inside it
    f = Features(np.arange(n, dtype=float)[:, None], t, t + 1 / 30, valid, confidence=np.r_[np.ones(59), 0.5])
    cfg = AlignConfig(rate=5.0, method="subsample", min_confidence=0.8)
    out = align(f, 2.0, cfg)
    np.testing.assert_allclose(out.values[:, 0], [0, 7, 12, 18, 24, 30, 36, 42, 48, 54])
    assert out.mask.all()
    np.testing.assert_allclose(align(f, 2.0, AlignConfig(rate=5.0)).values[0, 0], 2.5)  # the mean, by default
    long = Features(np.array([[1.0], [3.0]]), [0.0, 0.96], [0.96, 1.92], [True, False])
    up = align(long, 1.92, AlignConfig(rate=5.0, method="subsample"))  # a frame covering a window's start
    np.testing.assert_allclose(up.values[:, 0], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    assert up.mask.tolist() == [True] * 5 + [False] * 5
    empty = align(Features(np.zeros((0, 2)), [], []), 1.0, AlignConfig(method="subsample"))
    assert len(empty) == 5 and not empty.mask.any()


def test_default_method_keeps_the_cache_keys_of_earlier_stores():
    assert "method" not in AlignConfig().key_fields()
    assert AlignConfig(method="subsample").key_fields()["method"] == "subsample"
    with pytest.raises(ValueError, match="subsample"):
        AlignConfig(method="median")
