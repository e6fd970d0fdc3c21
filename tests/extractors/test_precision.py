"""Numeric precision of the PyTorch extractors: fp32 by default everywhere, bf16 on request, in the cache key.

bf16 is what a GPU run would use for throughput; autocast runs it on CPU too, so its code path (dtypes
back to float32 numpy, every layer under autocast) is tested here, not only on a GPU.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from extractors import registry, weights
from extractors.base import AudioSegment, VideoSegment
from pipeline.engine.config import parse_extractors
from pipeline.errors import ConfigError
from tests.helpers.cli import cli, extract_json

TORCH_EXTRACTORS = ["bert", "facenet", "r2plus1d", "resnet18_spectrogram", "resnet_face", "vggish", "vggm_face",
                    "videomae", "wav2vec2"]


def _has_precision(name: str) -> bool:
    return "precision" in {f.name for f in dataclasses.fields(registry.get(name).Config)}


def test_every_pytorch_extractor_has_the_option_and_fp32_leaves_the_key_as_it_was():
    assert sorted(n for n in registry.names() if _has_precision(n)) == TORCH_EXTRACTORS
    for name in TORCH_EXTRACTORS:
        default, bf16 = registry.create(name, {}), registry.create(name, {"precision": "bf16"})
        assert default.config.precision == "fp32"
        assert "precision" not in default.describe()["config"]  # keys of stores made before the option hold
        assert registry.create(name, {"precision": "fp32"}).fingerprint() == default.fingerprint()
        assert bf16.describe()["config"]["precision"] == "bf16" and bf16.fingerprint() != default.fingerprint()
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, not 'fp16'"):
        registry.create("wav2vec2", {"precision": "fp16"})


def test_the_precision_flag_reaches_every_pytorch_extractor_unless_set_for_one():
    out = parse_extractors("logmel,wav2vec2,vggish", ["vggish.precision=fp32"], "bf16")
    assert out == {"logmel": {}, "wav2vec2": {"precision": "bf16"}, "vggish": {"precision": "fp32"}}
    assert parse_extractors("logmel,wav2vec2", [], None) == {"logmel": {}, "wav2vec2": {}}
    with pytest.raises(ConfigError, match="--precision must be one of fp32, bf16, not 'half'"):
        parse_extractors("wav2vec2", [], "half")
    bad = cli("extract", "--dataset", "demo", "--root", "/nonexistent", "--store", "/nonexistent/s.zarr",
              "--extractors", "wav2vec2", "--set", "wav2vec2.precision=fp16", "--dry-run")
    assert bad.returncode == 2 and "extractor 'wav2vec2': precision must be one of fp32, bf16, not 'fp16'" in bad.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny wav2vec2, real-size VGGish, the 1-channel ResNet-18 and an ImageNet-layout ResNet-18, test-made."""
    from torchvision.models import resnet18

    from extractors.resnet18_spectrogram import resnet18_1ch
    from tests.helpers.tiny_models import add_vggish, add_wav2vec2

    d = tmp_path_factory.mktemp("precision")
    m = d / "m"
    add_wav2vec2(d, m)
    add_vggish(d, m)
    for name, like, net, file in (("TEST_RN18", "RESNET18_SPECTROGRAM_JMT", resnet18_1ch, "resnet18_spectrogram.pth"),
                                  ("TEST_RNFACE", "RESNET18_IMAGENET1K_V1", resnet18, "resnet18-f37072fd.pth")):
        torch.manual_seed(0)
        torch.save(net().state_dict(), d / file)
        cli("models", "add", name, str(d / file), "--like", like, "--models", str(m), check=True)
    return m


@pytest.mark.parametrize("name,own", [("wav2vec2", "TEST_W2V"), ("vggish", "TEST_VGGISH"),
                                      ("resnet18_spectrogram", "TEST_RN18"), ("resnet_face", "TEST_RNFACE")])
def test_bf16_runs_the_gpu_code_path_on_cpu_and_stays_close_to_fp32(models, name, own):
    rng = np.random.default_rng(0)
    if name == "resnet_face":
        n = 6
        frames = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
        times = np.arange(n) / 25.0
        seg = VideoSegment("c", frames, times, times + 0.04, np.ones(n, bool), True, np.ones(n, np.float32))
    else:
        seg = AudioSegment("c", (rng.standard_normal(32000) * 0.1).astype(np.float32))
    weights.set_models_dir(str(models))
    try:
        (full,) = registry.create(name, {"weights": own}).compute([seg])
        (half,) = registry.create(name, {"weights": own, "precision": "bf16"}).compute([seg])
    finally:
        weights.set_models_dir(None)
    a, b = np.asarray(full.values), np.asarray(half.values)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # autocast did run the model in bfloat16
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05  # ~3 significant digits, not garbage
    np.testing.assert_array_equal(full.start, half.start)


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_bf16_results_are_stored_under_their_own_keys(mini_corpus, tmp_path, models):
    """fp32 results are not reused for a bf16 run, nor the reverse (the store keeps a clip's newest result per
    extractor, docs/store.md); an unchanged re-run of either computes nothing."""
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--store", str(tmp_path / "s"), "--extractors",
            "wav2vec2", "--set", "wav2vec2.weights=TEST_W2V", "--models", str(models), "--limit", "2", "--quiet"]
    first = extract_json(*args)
    assert first["counts"]["ok"] == 2
    bf16 = extract_json(*args, "--precision", "bf16")
    assert bf16["planned"] == 2 and bf16["counts"]["ok"] == 2  # fp32 results are not bf16 results
    assert extract_json(*args, "--precision", "bf16")["planned"] == 0
    assert extract_json(*args)["planned"] == 2  # back to fp32: bf16 results are not fp32 results either
    assert extract_json(*args)["planned"] == 0
