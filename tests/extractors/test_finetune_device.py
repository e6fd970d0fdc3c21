"""Every trainable backbone learns on the device it is given (``cuda`` where there is one, else the CPU) with
the fine-tuning stage's own step, saves weights its extractor loads back, and embeds alike on CPU and GPU.

Self-contained (no conftest fixtures, no media decoding): it runs as `pytest --noconftest` on a GPU machine that
lacks the decoding stack, and in the default tier here on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from extractors import registry, weights
from extractors.base import AudioSegment, TextSegment, VideoSegment

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "there", "number", ".", "0", "1", "2"]


def _install(tmp: Path, name: str, like: str, src: Path) -> None:
    weights.define_custom(name, like, tmp / "m")
    weights.add(name, src, tmp / "m")


def _start(kind: str, tmp: Path) -> tuple[str, dict]:
    """Test-made starting weights registered as the user's own; the extractor's options."""
    torch.manual_seed(0)
    if kind == "r2plus1d":
        from torchvision.models.video import r2plus1d_18

        torch.save(r2plus1d_18(weights=None).state_dict(), tmp / "r2.pth")
        _install(tmp, "S_R2", "R2PLUS1D_18_KINETICS400_V1", tmp / "r2.pth")
        return "S_R2", {}
    if kind == "resnet18_spectrogram":
        from extractors.resnet18_spectrogram import resnet18_1ch

        torch.save(resnet18_1ch().state_dict(), tmp / "rn.pth")
        _install(tmp, "S_RN", "RESNET18_SPECTROGRAM_JMT", tmp / "rn.pth")
        return "S_RN", {"window_s": 0.5, "hop_s": 0.25}
    if kind == "bert":
        from transformers import BertConfig, BertModel, BertTokenizerFast

        src = tmp / "bert"
        src.mkdir()
        (src / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        BertTokenizerFast(str(src / "vocab.txt")).save_pretrained(src)
        BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32)).save_pretrained(src, safe_serialization=True)
        _install(tmp, "S_BERT", "BERT_BASE_UNCASED", src)
        return "S_BERT", {"pooling": "cls"}
    if kind == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

        src = tmp / "w2v"
        Wav2Vec2Model(Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
                      ).save_pretrained(src, safe_serialization=True)
        Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(src)
        _install(tmp, "S_W2V", "WAV2VEC2_BASE", src)
        return "S_W2V", {"pooled": True}
    from transformers import VideoMAEConfig, VideoMAEModel

    src = tmp / "vmae"
    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=16,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
                  ).save_pretrained(src, safe_serialization=True)
    _install(tmp, "S_VMAE", "VIDEOMAE_BASE", src)
    return "S_VMAE", {}


def _segments(kind: str, rng: np.random.Generator) -> list:
    if kind == "bert":
        return [TextSegment(f"c{i}", "hello there number " + str(i % 3), 2.0) for i in range(6)]
    if kind in ("resnet18_spectrogram", "wav2vec2"):
        return [AudioSegment(f"c{i}", rng.normal(0, 0.1, 16000).astype(np.float32)) for i in range(6)]
    n, side = 16, 64
    frames = [rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8) for _ in range(4)]
    t = np.arange(n) / 30
    return [VideoSegment(f"c{i}", f, t, t + 1 / 30, last=True) for i, f in enumerate(frames)]


R2P1D = pytest.param("r2plus1d", marks=[] if DEVICE == "cuda" else [pytest.mark.slow])  # 31 M parameters: ~40 s on CPU


@pytest.mark.parametrize("kind", ["resnet18_spectrogram", "bert", "wav2vec2", "videomae", R2P1D])
def test_a_backbone_learns_on_the_device_and_its_saved_weights_load_back(kind, tmp_path):
    from pipeline.engine.finetune import _one_minus_ccc

    start, opts = _start(kind, tmp_path)
    weights.set_models_dir(str(tmp_path / "m"))
    try:
        ext = registry.create(kind, {**opts, "weights": start})
        ext.setup(DEVICE)
        units = [u for s in _segments(kind, np.random.default_rng(0)) for u, _ in ext.train_units(s)]
        assert len(units) >= 4
        net = ext.trainable()
        before = {k: v.detach().clone() for k, v in net.state_dict().items()}
        head = torch.nn.Linear(int(ext.embed(units[:1]).shape[-1]), 2).to(ext.device)
        opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=1e-3)
        y = torch.linspace(-1, 1, len(units) * 2).reshape(len(units), 2).to(ext.device)
        net.train()
        losses = []
        for _ in range(3):  # the stage's step: 1 - CCC (Aff-Wild2's targets), clipped, one optimiser
            loss = _one_minus_ccc(head(ext.embed(units).float()), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(net.parameters()) + list(head.parameters()), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        assert all(np.isfinite(losses)), losses
        assert next(net.parameters()).device.type == DEVICE
        moved = [k for k, v in net.state_dict().items() if not torch.equal(v.cpu(), before[k].cpu())]
        assert moved, "no parameter changed"
        out = tmp_path / "tuned"
        out.mkdir()
        ext.save_weights(out)
        src = weights.resolve(start)
        for f in weights.get_weights(start).files:  # tokenizer / preprocessor files travel as `finetune` copies them
            if not (out / f).exists():
                (out / f).write_bytes((src / f).read_bytes())
        _install(tmp_path, "TUNED", weights.get_weights(start).meta["like"], out)
        net.eval()
        with torch.no_grad():
            trained = ext.embed(units[:2]).float().cpu()
        for device in {DEVICE, "cpu"}:  # loads back; CPU and GPU agree (fp32, TF32 off)
            again = registry.create(kind, {**opts, "weights": "TUNED"})
            again.setup(device)
            again.trainable().eval()
            with torch.no_grad():
                got = again.embed(units[:2]).float().cpu()
            torch.testing.assert_close(got, trained, rtol=2e-3, atol=2e-4)
    finally:
        weights.set_models_dir(None)


def test_the_changed_fusion_models_train_a_step_under_the_devices_precision():
    """MATER's Eq. 3 logits, TFN on a batch of one clip, JMT's sigmoid cross-attentions: one step each through the
    trainer's own step (bf16 autocast on GPU, as the trainer runs them), finite and moving."""
    from train.models.jmt import JMT, JMTConfig
    from train.models.mater import MATER, MATERConfig
    from train.models.tfn import TFN
    from train.optim import Schedule
    from train.step import optimise

    torch.manual_seed(0)
    dev = torch.device(DEVICE)
    amp = "cuda" if DEVICE == "cuda" else None
    a, v, m = torch.randn(4, 8, 12, device=dev), torch.randn(4, 8, 10, device=dev), torch.ones(4, 8, dtype=torch.bool,
                                                                                               device=dev)
    y = torch.tensor([0, 1, 2, 1], device=dev)
    cases = [(MATER(12, 10, 3, MATERConfig(d=32, heads=4, ffn=64, layers=2)),
              lambda net: torch.nn.functional.cross_entropy(net(a, v, m, m).float(), y)),
             (TFN(12, 10, 3), lambda net: torch.nn.functional.cross_entropy(net(a[:1, 0], v[:1, 0]).float(), y[:1])),
             (JMT(12, 10, JMTConfig(d=32, attention="sigmoid", shared_cross=False)),
              lambda net: net(a, v).float().pow(2).mean())]
    for net, loss_of in cases:
        net = net.to(dev).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        before = [p.detach().clone() for p in net.parameters()]
        loss = optimise(net, opt, Schedule("constant", opt, 1), lambda net=net, f=loss_of: f(net), 1.0, amp)
        assert np.isfinite(loss), type(net).__name__
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before)), type(net).__name__
