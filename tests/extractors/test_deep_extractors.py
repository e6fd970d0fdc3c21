"""Deep extractors through the weights registry, with weights the tests build themselves."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import zarr

from extractors import registry, weights
from extractors.base import VideoSegment
from stores.feature_store import FeatureStore
from tests.helpers.cli import cli, extract_json


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A model directory holding test-made R(2+1)D weights, registered as the user's own."""
    from torchvision.models.video import r2plus1d_18

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    path = d.parent / "my_r2p1d.pth"
    torch.save(r2plus1d_18(weights=None).state_dict(), path)
    proc = cli("models", "add", "TEST_R2P1D", str(path), "--like", "R2PLUS1D_18_KINETICS400_V1",
               "--models", str(d), check=True)
    assert "installed" in proc.stdout
    return d


def test_missing_weights_fail_once_before_any_work(mini_corpus, tmp_path):
    s = tmp_path / "s.zarr"
    proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(s),
               "--extractors", "r2plus1d", "--models", str(tmp_path / "empty"), "--quiet")
    assert proc.returncode == 2 and not s.exists()
    assert "R2PLUS1D_18_KINETICS400_V1: missing" in proc.stderr
    assert "pipeline models fetch R2PLUS1D_18_KINETICS400_V1" in proc.stderr
    assert "r2plus1d_18-91a641e6.pth" in proc.stderr


def test_published_hash_prefix_rejects_other_files(tmp_path):
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not the published weights")
    with pytest.raises(weights.WeightsError, match="wrong or corrupt"):
        weights.add("R2PLUS1D_18_KINETICS400_V1", bad, tmp_path / "m")


def test_tampered_weights_are_a_checksum_mismatch(models, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(models, copy)
    f = copy / "TEST_R2P1D" / "r2plus1d_18-91a641e6.pth"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    weights.set_models_dir(str(copy))
    try:
        with pytest.raises(weights.WeightsError, match="checksum mismatch"):
            weights.resolve("TEST_R2P1D")
    finally:
        weights.set_models_dir(None)


def test_r2plus1d_matches_the_bare_model_with_torchvision_transforms(models):
    from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18

    weights.set_models_dir(str(models))
    try:
        ext = registry.create("r2plus1d", {"weights": "TEST_R2P1D"})
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (12, 90, 120, 3), dtype=np.uint8)
        times = np.arange(12) / 25
        (f,) = ext.compute([VideoSegment("c", frames, times, times + 0.04, last=True)])
    finally:
        weights.set_models_dir(None)
    assert f.values.shape == (2, 512)  # 8 frames + a padded group of 4
    np.testing.assert_allclose(f.start, [0.0, 0.32])
    np.testing.assert_allclose(f.end, [0.32, 0.48])
    model = r2plus1d_18(weights=None)
    model.load_state_dict(torch.load(models / "TEST_R2P1D" / "r2plus1d_18-91a641e6.pth", weights_only=True))
    model.fc = torch.nn.Identity()
    preset = R2Plus1D_18_Weights.KINETICS400_V1.transforms()
    clip = torch.from_numpy(frames[:8]).permute(0, 3, 1, 2)  # T C H W uint8
    with torch.no_grad():
        ref = model.eval()(preset(clip)[None]).numpy()[0]
    assert np.corrcoef(ref, f.values[0])[0, 1] > 0.99


@pytest.mark.slow  # ~30 s: a full-size R(2+1)D on CPU; the bare-model comparison stays in the default suite
def test_r2plus1d_end_to_end_through_extract(mini_corpus, tmp_path, models):
    s = tmp_path / "s.zarr"
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(s), "--extractors",
                     "r2plus1d", "--set", "r2plus1d.weights=TEST_R2P1D", "--models", str(models), "--limit", "3",
                     "--quiet")
    assert r["counts"] == {"ok": 3, "failed": 0, "excluded": 0}
    store = FeatureStore(str(s))
    live = store.index()
    row = live[(live.stage == "native")].iloc[0]
    f = store.read(row)
    assert f.values.shape[1] == 512 and np.all(np.diff(f.start) > 0)
    attrs = store.group_attrs("native", "", "r2plus1d")
    assert attrs["weights"]["id"] == "TEST_R2P1D" and len(attrs["weights"]["sha256"]) == 64


@pytest.fixture(scope="module")
def w2v_models(tmp_path_factory):
    """A tiny wav2vec2 (transformers config, save_pretrained as safetensors) added as the user's own."""
    from tests.helpers.tiny_models import add_wav2vec2

    d = tmp_path_factory.mktemp("w2v")
    add_wav2vec2(d, d / "m")
    return d / "m"


def test_wav2vec2_frames_pooling_and_reference(w2v_models):
    from extractors.base import AudioSegment

    weights.set_models_dir(str(w2v_models))
    try:
        ext = registry.create("wav2vec2", {"weights": "TEST_W2V"})
        x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
        (f,) = ext.compute([AudioSegment("c", x)])
        (p,) = registry.create("wav2vec2", {"weights": "TEST_W2V", "pooled": True}).compute([AudioSegment("c", x)])
        model = ext.model
    finally:
        weights.set_models_dir(None)
    assert f.values.shape == (49, 32) and ext.dim == 32  # 1 s at 16 kHz -> 49 frames of 20 ms
    np.testing.assert_allclose(f.start[:2], [0.0, 0.02])
    np.testing.assert_allclose(f.end[0], 0.025)
    xn = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.no_grad():
        ref = model(torch.from_numpy(xn)[None]).last_hidden_state[0].numpy()
    np.testing.assert_allclose(f.values, ref, atol=1e-4)
    np.testing.assert_allclose(p.values[0], ref.mean(0), atol=1e-4)


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_wav2vec2_end_to_end_through_extract(mini_corpus, tmp_path, w2v_models):
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(tmp_path / "s"),
                     "--extractors", "wav2vec2,logmel", "--set", "wav2vec2.weights=TEST_W2V", "--models",
                     str(w2v_models), "--limit", "3", "--quiet")
    assert r["counts"] == {"ok": 6, "failed": 0, "excluded": 0}
    # the store says how often a vector comes: 50 Hz frames, or one per clip (no rate) when pooled
    extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(tmp_path / "p"), "--extractors",
                 "wav2vec2", "--set", "wav2vec2.weights=TEST_W2V", "--set", "wav2vec2.pooled=true", "--models",
                 str(w2v_models), "--limit", "1", "--quiet")
    frames, pooled = (zarr.open_group(str(tmp_path / s / "native" / "wav2vec2"), mode="r").attrs for s in "sp")
    assert (frames["rate"], frames["per_clip"]) == (50.0, False)
    assert (pooled["rate"], pooled["per_clip"]) == (None, True)


@pytest.fixture(scope="module")
def vggish_models(tmp_path_factory):
    from tests.helpers.tiny_models import add_vggish

    d = tmp_path_factory.mktemp("vggish")
    add_vggish(d, d / "m")
    return d / "m"


def test_vggish_front_end_examples_and_network(vggish_models):
    from extractors.base import AudioSegment
    from extractors.vggish import log_mel
    from pipeline.media import synth
    from tests.helpers.reference_features import reference_logmel

    x = synth.voice(2.0, 150, 4, 0.5, seed=3, sample_rate=16000)
    np.testing.assert_allclose(log_mel(x), reference_logmel(x.astype(np.float64), power=1, offset=0.01), atol=2e-3)
    weights.set_models_dir(str(vggish_models))
    try:
        emb = registry.create("vggish", {"weights": "TEST_VGGISH"})
        (e,) = emb.compute([AudioSegment("c", x)])
        conv = registry.create("vggish", {"weights": "TEST_VGGISH", "mode": "conv", "window_s": 0.5, "hop_s": 0.5})
        (c,) = conv.compute([AudioSegment("c", x)])
        (q,) = registry.create("vggish", {"weights": "TEST_VGGISH", "pca": True}).compute([AudioSegment("c", x)])
    finally:
        weights.set_models_dir(None)
    assert e.values.shape == (2, 128) and c.values.shape == (4, 512)  # 198 log-mel frames
    np.testing.assert_allclose(e.start, [0.0, 0.96])
    np.testing.assert_allclose(e.end, [0.975, 1.935])
    np.testing.assert_allclose(c.start, [0.0, 0.5, 1.0, 1.5])  # MATER: 48 STFT frames inside each 0.5 s window
    np.testing.assert_allclose(c.end, c.start + 0.495)
    with torch.no_grad():
        ref = emb.model(torch.from_numpy(log_mel(x)[:96])[None, None]).numpy()[0]
        ref_conv = conv.model(torch.from_numpy(log_mel(x)[50:98])[None, None], "conv").numpy()[0]
    np.testing.assert_allclose(e.values[0], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c.values[1], ref_conv, rtol=1e-4, atol=1e-5)
    from pipeline.shard.align import AlignConfig, align

    windows = align(c, 2.0, AlignConfig(rate=2.0))  # non-overlapping: window k is example k alone
    np.testing.assert_allclose(windows.values, c.values, rtol=1e-6)
    assert q.values.min() >= 0 and q.values.max() <= 255 and np.all(q.values == np.round(q.values))
    with pytest.raises(ValueError, match="0.96 s examples"):
        registry.make_config("vggish", {"window_s": 0.5})


TINY_TRILL = """
import sys
import tensorflow as tf


class TinyTrill(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([400, 512], seed=[1, 2]) * 0.05)
        self.w19 = tf.Variable(tf.random.stateless_normal([400, 12288], seed=[3, 4]) * 0.05)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)])
    def __call__(self, samples, sample_rate):
        x = tf.pad(samples, [[0, tf.maximum(0, 16000 - tf.shape(samples)[0])]])  # padded to 1 s, as TRILL
        frames = tf.signal.frame(x, 400, 160)
        return {"embedding": frames @ self.w, "layer19": frames @ self.w19}


m = TinyTrill()
tf.saved_model.save(m, sys.argv[1])
import numpy as np
np.save(sys.argv[1] + ".w.npy", m.w.numpy())
"""


@pytest.fixture(scope="module")
def trill_models(tmp_path_factory):
    """A tiny TF SavedModel with TRILL's signature (built in its own process: TensorFlow stays out of this one)."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("trill")
    subprocess.run([sys.executable, "-c", TINY_TRILL, str(d / "tiny")], check=True,
                   capture_output=True, timeout=300)
    cli("models", "add", "TEST_TRILL", str(d / "tiny"), "--like", "TRILL_V3", "--models", str(d / "m"), check=True)
    return d / "m"


def test_trill_segments_and_reference(trill_models):
    from extractors.base import AudioSegment

    weights.set_models_dir(str(trill_models))
    try:
        ext = registry.create("trill", {"weights": "TEST_TRILL"})
        x = np.random.default_rng(0).standard_normal(16000 + 1000).astype(np.float32) * 0.1
        (f,) = ext.compute([AudioSegment("c", x)])
        w = np.load(str(trill_models.parent / "tiny") + ".w.npy")
        (l19,) = registry.create("trill", {"weights": "TEST_TRILL", "layer": "layer19"}).compute(
            [AudioSegment("c", x[:3200])])
    finally:
        weights.set_models_dir(None)
    assert f.values.shape == (6, 512) and l19.values.shape == (1, 12288)  # 1.0625 s -> 5 full + 1 short
    np.testing.assert_allclose(f.start, np.arange(6) * 0.2)
    np.testing.assert_allclose(f.end[-1], 17000 / 16000)
    chunk = np.pad(x[:3200], (0, 16000 - 3200))
    frames = np.lib.stride_tricks.sliding_window_view(chunk, 400)[::160]
    np.testing.assert_allclose(f.values[0], (frames @ w).mean(0), rtol=1e-4, atol=1e-5)


def test_trill_clip_is_one_vector_over_the_whole_clip(trill_models):
    """TFN's audio input (Tran & Soleymani): the module run once on the whole clip, not 200 ms chunks."""
    from extractors.base import AudioSegment

    weights.set_models_dir(str(trill_models))
    try:
        ext = registry.create("trill_clip", {"weights": "TEST_TRILL"})
        x = np.random.default_rng(1).standard_normal(40000).astype(np.float32) * 0.1
        (f,) = ext.compute([AudioSegment("c", x, t0=1.5)])
        (chunks,) = registry.create("trill", {"weights": "TEST_TRILL"}).compute([AudioSegment("c", x)])
    finally:
        weights.set_models_dir(None)
    assert ext.rate_label == "1 per clip" and f.values.shape == (1, 512)
    np.testing.assert_allclose([f.start[0], f.end[0]], [1.5, 1.5 + 40000 / 16000])
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160]
    w = np.load(str(trill_models.parent / "tiny") + ".w.npy")
    np.testing.assert_allclose(f.values[0], (frames @ w).mean(0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(f.values[0], chunks.values.mean(0), atol=1e-3)  # not the mean of 200 ms chunks


@pytest.mark.slow  # ~30 s: TensorFlow and torch in one worker process
def test_trill_and_a_torch_extractor_share_a_worker(mini_corpus, tmp_path, trill_models, w2v_models):
    for name in ("TEST_W2V",):
        shutil.copytree(w2v_models / name, trill_models / name, dirs_exist_ok=True)
    cluster = tmp_path / "one.yaml"
    cluster.write_text("mode: local\nlocal: {n_workers: 1}\n")  # one worker process runs them all
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(tmp_path / "s"),
                     "--extractors", "wav2vec2,trill,egemaps", "--set", "wav2vec2.weights=TEST_W2V", "--set",
                     "trill.weights=TEST_TRILL", "--models", str(trill_models), "--cluster", str(cluster),
                     "--limit", "2", "--quiet")
    assert r["counts"] == {"ok": 6, "failed": 0, "excluded": 0} and not r["task_errors"]


def _add_state(tmp_path_factory, name, like, net, filename, models):
    """Save a test-made state dict and add it to `models`; the source copy is removed (a VGG-M is 400 MB)."""
    d = tmp_path_factory.mktemp(name.lower())
    torch.manual_seed(0)
    torch.save(net.state_dict(), d / filename)
    cli("models", "add", name, str(d / filename), "--like", like, "--models", str(models), check=True)
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def image_models(tmp_path_factory, vggish_models):
    """VGG-M (face) and the 1-channel ResNet-18 beside the test VGGish: one model directory, one copy each."""
    from extractors.resnet18_spectrogram import resnet18_1ch
    from extractors.vggm_face import vggm_net

    _add_state(tmp_path_factory, "TEST_VGGM", "VGGM_FACE_BN_FER", vggm_net(), "vgg_m_face_bn_fer_dag.pth",
               vggish_models)
    _add_state(tmp_path_factory, "TEST_RN18", "RESNET18_SPECTROGRAM_JMT", resnet18_1ch(),
               "resnet18_spectrogram.pth", vggish_models)
    return vggish_models


def test_vggm_face_resnet18_spectrogram(image_models):
    from extractors.base import AudioSegment

    weights.set_models_dir(str(image_models))
    try:
        crops = np.random.default_rng(0).integers(0, 255, (5, 112, 112, 3), dtype=np.uint8)
        t = np.arange(5) / 25
        found = np.array([1, 1, 0, 1, 1], bool)
        (f,) = registry.create("vggm_face", {"weights": "TEST_VGGM"}).compute(
            [VideoSegment("c", crops, t, t + 0.04, found, True)])
    finally:
        weights.set_models_dir(None)
    assert f.values.shape == (5, 512) and f.mask.tolist() == found.tolist() and not f.values[2].any()
    weights.set_models_dir(str(image_models))
    try:
        x = np.random.default_rng(1).standard_normal(40000).astype(np.float32) * 0.1
        (g,) = registry.create("resnet18_spectrogram", {"weights": "TEST_RN18", "hop_s": 0.5}).compute(
            [AudioSegment("c", x)])
    finally:
        weights.set_models_dir(None)
    assert g.values.shape == (4, 512) and np.allclose(g.start, [0, 0.5, 1.0, 1.5])


@pytest.mark.slow  # ~30 s: the default suite keeps the extractors' unit tests; this runs in `make test-slow`
def test_bert_on_iemocap_transcripts_and_videomae(tmp_path_factory, tmp_path):
    from tests.helpers import corpus_fixtures as fx
    from tests.helpers.tiny_models import add_bert, add_videomae

    d = tmp_path_factory.mktemp("bert")
    m = d / "m"
    add_bert(d, m)
    add_videomae(d, m)
    root = fx.iemocap(tmp_path / "IEMOCAP")
    r = extract_json("--dataset", "iemocap", "--root", str(root), "--store", str(tmp_path / "s"), "--extractors",
                     "bert,videomae", "--set", "bert.weights=TEST_BERT", "--set", "videomae.weights=TEST_VMAE",
                     "--models", str(m), "--limit", "3", "--quiet")
    assert r["counts"] == {"ok": 6, "failed": 0, "excluded": 0}
    store = FeatureStore(str(tmp_path / "s"))
    live = store.index()
    b = store.read(live[(live.stage == "native") & (live.extractor == "bert")].iloc[0])
    v = store.read(live[(live.stage == "native") & (live.extractor == "videomae")].iloc[0])
    assert b.values.shape == (1, 16) and b.end[0] == pytest.approx(1.2, abs=0.05)
    assert v.values.shape == (8, 16)  # 1.2 s at 25 fps = 30 frames -> 8 groups of 4


@pytest.mark.slow  # ~60 s: three full-size networks on CPU
def test_vggish_vggm_resnet18_end_to_end_and_deterministic(mini_corpus, tmp_path, image_models):
    models = image_models
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--extractors",
            "vggish,vggm_face,resnet18_spectrogram",
            "--set", "vggish.weights=TEST_VGGISH", "--set", "vggm_face.weights=TEST_VGGM", "--set",
            "resnet18_spectrogram.weights=TEST_RN18", "--models", str(models), "--limit", "2", "--quiet", "--rate", "2"]
    a = extract_json(*args, "--store", str(tmp_path / "a"))
    extract_json(*args, "--store", str(tmp_path / "b"))
    assert a["counts"] == {"ok": 6, "failed": 0, "excluded": 0}
    sa, sb = FeatureStore(str(tmp_path / "a")), FeatureStore(str(tmp_path / "b"))
    entry = ["clip_id", "stage", "extractor"]
    la, lb = sa.index().set_index(entry), sb.index().set_index(entry)
    for key in la.index:
        np.testing.assert_array_equal(sa.read(la.loc[key]).values, sb.read(lb.loc[key]).values)  # deterministic
    vm = sa.read(la.loc[(la.index[0][0], "aligned", "vggm_face")])
    assert vm.values.shape[1] == 512 and np.allclose(np.diff(vm.start), 0.5)  # MATER's 0.5 s windows


def test_trill_from_several_threads_at_once_gives_the_sequential_result(trill_models):
    """Tasks in the threads of one worker share one TRILL instance and its TensorFlow process (one pipe)."""
    from concurrent.futures import ThreadPoolExecutor

    from extractors.base import AudioSegment

    weights.set_models_dir(str(trill_models))
    try:
        ext = registry.create("trill", {"weights": "TEST_TRILL"})
        rng = np.random.default_rng(1)
        segs = [AudioSegment(f"c{i}", rng.standard_normal(16000 * (1 + i % 3)).astype(np.float32) * 0.1)
                for i in range(12)]
        alone = [ext.compute([s])[0].values for s in segs]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda s: ext.compute([s])[0].values, segs))
    finally:
        weights.set_models_dir(None)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
