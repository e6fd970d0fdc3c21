"""FaceNet (InceptionResnetV1, VGGFace2-trained): a 512-d identity/appearance embedding per face frame.

One of Tran & Soleymani's visual baselines. Input: the face stage's square box crop at 160 x 160 (no
rotation, as the MTCNN crops it was trained on), standardised as published, (x - 127.5) / 128. Output: the
l2-normalised 512-d embedding (``last_bn`` output), as the reference implementation returns it. Module
names follow facenet-pytorch so its published state dict (``20180402-114759-vggface2.pt``) loads as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extractors.base import Extractor, FaceCrop, Features, VideoSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    import torch

WEIGHTS = register_weights(Weights(
    name="FACENET_VGGFACE2", files=("20180402-114759-vggface2.pt",),
    source="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
    kind="url", licence="MIT (facenet-pytorch); trained on VGGFace2 (research use)",
    preprocessing={"size": 160, "standardise": "(x - 127.5) / 128", "crop": "MTCNN box, no margin"},
    meta={"dim": 512, "classes": 8631},
))


def inception_resnet_v1(classes: int = 8631) -> torch.nn.Module:
    import torch
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin: int, cout: int, k: int | tuple[int, int], stride: int = 1,
                     pad: int | tuple[int, int] = 0) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)  # TensorFlow's epsilon, as trained

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.bn(self.conv(x)))

    conv = Conv

    class Residual(nn.Module):
        """Inception-ResNet block: parallel branches, concatenated, projected, scaled and added."""

        def __init__(self, ch: int, branches: list[list[nn.Module]], scale: float, relu: bool = True) -> None:
            super().__init__()
            for i, b in enumerate(branches):
                setattr(self, f"branch{i}", b[0] if len(b) == 1 else nn.Sequential(*b))
            self.n, self.scale, self.use_relu = len(branches), scale, relu
            self.conv2d = nn.Conv2d(sum(b[-1].conv.out_channels for b in branches), ch, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)
            out = self.conv2d(out) * self.scale + x
            return torch.relu(out) if self.use_relu else out

    def block35() -> nn.Module:
        return Residual(256, [[conv(256, 32, 1)], [conv(256, 32, 1), conv(32, 32, 3, 1, 1)],
                              [conv(256, 32, 1), conv(32, 32, 3, 1, 1), conv(32, 32, 3, 1, 1)]], 0.17)

    def block17() -> nn.Module:
        return Residual(896, [[conv(896, 128, 1)], [conv(896, 128, 1), conv(128, 128, (1, 7), 1, (0, 3)),
                                                   conv(128, 128, (7, 1), 1, (3, 0))]], 0.10)

    def block8(scale: float = 0.20, relu: bool = True) -> nn.Module:
        return Residual(1792, [[conv(1792, 192, 1)], [conv(1792, 192, 1), conv(192, 192, (1, 3), 1, (0, 1)),
                                                     conv(192, 192, (3, 1), 1, (1, 0))]], scale, relu)

    class Mixed(nn.Module):
        """Reduction block: strided branches and a max-pool, concatenated."""

        def __init__(self, branches: list[list[nn.Module]]) -> None:
            super().__init__()
            for i, b in enumerate(branches):
                setattr(self, f"branch{i}", b[0] if len(b) == 1 else nn.Sequential(*b))
            self.n = len(branches)
            setattr(self, f"branch{self.n}", nn.MaxPool2d(3, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n + 1)], 1)

    class InceptionResnetV1(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv2d_1a, self.conv2d_2a = conv(3, 32, 3, 2), conv(32, 32, 3)
            self.conv2d_2b, self.maxpool_3a = conv(32, 64, 3, 1, 1), nn.MaxPool2d(3, 2)
            self.conv2d_3b, self.conv2d_4a, self.conv2d_4b = conv(64, 80, 1), conv(80, 192, 3), conv(192, 256, 3, 2)
            self.repeat_1 = nn.Sequential(*[block35() for _ in range(5)])
            self.mixed_6a = Mixed([[conv(256, 384, 3, 2)],
                                   [conv(256, 192, 1), conv(192, 192, 3, 1, 1), conv(192, 256, 3, 2)]])
            self.repeat_2 = nn.Sequential(*[block17() for _ in range(10)])
            self.mixed_7a = Mixed([[conv(896, 256, 1), conv(256, 384, 3, 2)], [conv(896, 256, 1), conv(256, 256, 3, 2)],
                                   [conv(896, 256, 1), conv(256, 256, 3, 1, 1), conv(256, 256, 3, 2)]])
            self.repeat_3 = nn.Sequential(*[block8() for _ in range(5)])
            self.block8 = block8(1.0, relu=False)
            self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
            self.last_linear = nn.Linear(1792, 512, bias=False)
            self.last_bn = nn.BatchNorm1d(512, eps=0.001)
            self.logits = nn.Linear(512, classes)  # in the published file; unused for embeddings

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 512], unit length
            for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                         "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
                         "avgpool_1a"):
                x = getattr(self, name)(x)
            return nn.functional.normalize(self.last_bn(self.last_linear(x.flatten(1))), dim=1)

    return InceptionResnetV1()


@dataclass(frozen=True)
class FaceNetConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    batch_frames: int = 64


@register_extractor
class FaceNet(Extractor):
    name = "facenet"
    version = "1"
    modality = "video"
    input = "faces"
    Config = FaceNetConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    @property
    def feature_names(self) -> list[str]:
        return [f"facenet_{i:03d}" for i in range(512)]

    @property
    def face_crop(self) -> FaceCrop:
        return FaceCrop(160, "box", 0.0)

    def setup(self, device: str = "cpu") -> None:
        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        self.model = load_state(self.weights_path() / WEIGHTS.files[0], inception_resnet_v1()).eval().to(self.device)

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        from extractors.torch_util import face_embeddings

        self.ensure_setup()
        return face_embeddings(self.model, self.device, batch, 512, self.config.batch_frames,
                               lambda x: (x - 127.5) / 128.0, self.config.precision)
