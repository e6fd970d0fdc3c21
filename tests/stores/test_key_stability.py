"""Cache keys are the store's contract: a store written by an earlier version must still be found cached.

The values below were computed by the code before the structural move of 2026-12-04 (one extractor
without options, one with a face stage, a segment, the aligned key of the default view); the face stage's
changed deliberately the same day (see below). A refactor that
changes a key by accident would make every existing store recompute everything; this test catches it.
"""

from __future__ import annotations

from extractors import registry
from pipeline.media.face import FaceConfig, face_key
from pipeline.shard.align import AlignConfig
from stores import cache_key
from stores.views import DEFAULT_VIEW

FP = "0" * 32  # a media fingerprint


def test_native_and_aligned_keys_are_those_of_earlier_stores() -> None:
    logmel, face_hog = registry.create("logmel").fingerprint(), registry.create("face_hog").fingerprint()
    native = cache_key.native_key(FP, None, None, logmel, None)
    assert native == "4ee46ef8f47326213a7c807f5cb44ece"
    # results from frames changed meaning on 2026-12-04 (frames upright as the display matrix says), so their keys
    # changed on purpose then (was 128590d0e8008dc499ac5f5e61d2d915): stores recompute video results once
    assert cache_key.native_key(FP, 1.5, 3.0, face_hog, face_key(FaceConfig())) == "9b461738879997ee693491f3257469ec"
    assert cache_key.aligned_key(native, AlignConfig().key_fields()) == "5e9dd0aecd0443f6a5f89e963933c3da"
    assert AlignConfig().view == DEFAULT_VIEW == "5hz"


def test_an_extractor_validated_into_a_spec_keeps_its_fingerprint() -> None:
    """The config a worker receives (a spec) fingerprints like the one built from the same options."""
    for name, options in (("logmel", {"n_mels": 40}), ("r2plus1d", {"clip_frames": 16}), ("egemaps", {})):
        assert registry.spec(name, options).create().fingerprint() == registry.create(name, options).fingerprint()
