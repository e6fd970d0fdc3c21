"""ImageNet ResNet features of the face crop: Tran & Soleymani's generic-CNN visual baseline.

torchvision ``resnet18`` (512-d) or ``resnet50`` (2048-d) with ImageNet weights, globally average-pooled
before ``fc``. Input: the face stage's square box crop (10 % margin) at 224 x 224, the network's own
input size, scaled to [0, 1] and normalised with the ImageNet mean/std of those weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extractors.base import Extractor, FaceCrop, Features, VideoSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
ARCHS = {  # arch -> (weights, feature dim)
    "resnet18": (register_weights(Weights(
        name="RESNET18_IMAGENET1K_V1", files=("resnet18-f37072fd.pth",), sha256={"resnet18-f37072fd.pth": "f37072fd"},
        source="https://download.pytorch.org/models/resnet18-f37072fd.pth", kind="url",
        licence="BSD-3-Clause (torchvision); ImageNet-1k trained", preprocessing=_IMAGENET,
        meta={"params": 11689512, "acc@1": 69.758})), 512),
    "resnet50": (register_weights(Weights(
        name="RESNET50_IMAGENET1K_V2", files=("resnet50-11ad3fa6.pth",), sha256={"resnet50-11ad3fa6.pth": "11ad3fa6"},
        source="https://download.pytorch.org/models/resnet50-11ad3fa6.pth", kind="url",
        licence="BSD-3-Clause (torchvision); ImageNet-1k trained", preprocessing=_IMAGENET,
        meta={"params": 25557032, "acc@1": 80.858})), 2048),
}


@dataclass(frozen=True)
class ResNetFaceConfig(PrecisionConfig):
    arch: str = "resnet18"  # resnet18 (512-d) | resnet50 (2048-d)
    weights: str = ""  # default: the arch's ImageNet weights; or your own registered --like them
    size: int = 224
    batch_frames: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch not in ARCHS:
            raise ValueError(f"resnet_face.arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")


@register_extractor
class ResNetFace(Extractor):
    name = "resnet_face"
    version = "1"
    modality = "video"
    input = "faces"
    Config = ResNetFaceConfig
    wants_gpu = True
    weights_name = ARCHS["resnet18"][0].name

    @property
    def weights_id(self) -> str:
        return self.config.weights or ARCHS[self.config.arch][0].name

    @property
    def feature_names(self) -> list[str]:
        return [f"resnet_{i:04d}" for i in range(ARCHS[self.config.arch][1])]

    @property
    def face_crop(self) -> FaceCrop:
        return FaceCrop(self.config.size, "box", 0.1)

    def setup(self, device: str = "cpu") -> None:
        import torch
        import torchvision.models as tvm

        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        net = getattr(tvm, self.config.arch)(weights=None)
        load_state(self.weights_path() / ARCHS[self.config.arch][0].files[0], net)
        net.fc = torch.nn.Identity()
        self.model = net.eval().to(self.device)

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        import torch

        from extractors.torch_util import face_embeddings

        self.ensure_setup()
        mean = torch.tensor(_IMAGENET["mean"], device=self.device)[None, :, None, None] * 255
        std = torch.tensor(_IMAGENET["std"], device=self.device)[None, :, None, None] * 255
        return face_embeddings(self.model, self.device, batch, self.dim, self.config.batch_frames,
                               lambda x: (x - mean) / std, self.config.precision)
