"""Tiny transformers models (real architectures, test-made weights) registered as the user's own copies."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers.cli import cli

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "there", "number", ".", "0", "1", "2"]


def add_wav2vec2(d: Path, models: Path, name: str = "TEST_W2V", hidden: int = 32) -> str:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    src = d / "tiny_w2v"
    cfg = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    Wav2Vec2Model(cfg).save_pretrained(src, safe_serialization=True)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(src)
    cli("models", "add", name, str(src), "--like", "WAV2VEC2_BASE", "--models", str(models), check=True)
    return name


def add_bert(d: Path, models: Path, name: str = "TEST_BERT", hidden: int = 16) -> str:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    src = d / "tiny_bert"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(str(src / "vocab.txt")).save_pretrained(src)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(src, safe_serialization=True)
    cli("models", "add", name, str(src), "--like", "BERT_BASE_UNCASED", "--models", str(models), check=True)
    return name


def add_videomae(d: Path, models: Path, name: str = "TEST_VMAE", hidden: int = 16) -> str:
    from transformers import VideoMAEConfig, VideoMAEModel

    src = d / "tiny_vmae"
    torch.manual_seed(0)
    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=hidden,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
                  ).save_pretrained(src, safe_serialization=True)
    cli("models", "add", name, str(src), "--like", "VIDEOMAE_BASE", "--models", str(models), check=True)
    return name


def add_vggish(d: Path, models: Path, name: str = "TEST_VGGISH") -> str:
    """VGGish at its real size (torchvggish's parameter names) and a random orthogonal PCA, test-made."""
    from extractors.vggish import vggish_net

    src = d / "vggish_files"
    src.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(vggish_net().state_dict(), src / "vggish-10086976.pth")
    g = torch.Generator().manual_seed(1)
    torch.save({"pca_eigen_vectors": torch.linalg.qr(torch.randn(128, 128, generator=g))[0],
                "pca_means": torch.randn(128, 1, generator=g)}, src / "vggish_pca_params-970ea276.pth")
    cli("models", "add", name, str(src), "--like", "VGGISH_AUDIOSET", "--models", str(models), check=True)
    return name
