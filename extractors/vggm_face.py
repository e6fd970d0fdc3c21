"""VGG-M face (Albanie & Vedaldi, FER-trained, batch-norm variant) on the core's face crops.

Layers and names follow the released PyTorch conversion (``vgg_m_face_bn_fer_dag``) so its state dict
loads as is. Input: the face crop resized to ``size`` (96 for MATER; 224 is the network's native size),
grey replicated over RGB as in its FER training (``grey``), minus the per-channel mean (0-255 scale).
Output per frame: the 512 channels of the last convolutional block (pool5), spatially averaged — the
only 512-d conv feature that exists at 96 x 96 (fc6 needs 224). MATER's per-window mean over 0.25 / 0.5 s
is the core's aligned view at 4 / 2 Hz (`pipeline extract --rate 2`), faceless frames excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extractors.base import Extractor, Features, VideoSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    import torch

WEIGHTS = register_weights(Weights(
    name="VGGM_FACE_BN_FER", files=("vgg_m_face_bn_fer_dag.pth",), source="albanie/pytorch-benchmarks model zoo",
    kind="manual", licence="research use (Albanie & Vedaldi, BMVC 2016)",
    preprocessing={"mean_rgb_255": [131.4538, 103.9875, 91.4623], "std": [1, 1, 1], "native_size": 224,
                   "grey": True},
    meta={"how": "download vgg_m_face_bn_fer_dag.pth from Samuel Albanie's converted-model page, then "
                 "`pipeline models add VGGM_FACE_BN_FER FILE`"},
))


def vggm_net() -> torch.nn.Module:  # with the conversion's attribute names
    from torch import nn

    class VGGMFace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn49 = nn.Conv2d(3, 96, 7, stride=2), nn.BatchNorm2d(96)
            self.pool1 = nn.MaxPool2d(3, 2)
            self.conv2, self.bn50 = nn.Conv2d(96, 256, 5, stride=2, padding=1), nn.BatchNorm2d(256)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.bn51 = nn.Conv2d(256, 512, 3, padding=1), nn.BatchNorm2d(512)
            self.conv4, self.bn52 = nn.Conv2d(512, 512, 3, padding=1), nn.BatchNorm2d(512)
            self.conv5, self.bn53 = nn.Conv2d(512, 512, 3, padding=1), nn.BatchNorm2d(512)
            self.pool5 = nn.MaxPool2d(3, 2)
            self.fc6, self.bn54 = nn.Conv2d(512, 4096, 6), nn.BatchNorm2d(4096)
            self.fc7, self.bn55 = nn.Conv2d(4096, 4096, 1), nn.BatchNorm2d(4096)
            self.fc8 = nn.Linear(4096, 7)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # the 512-d conv feature
            x = self.pool1(self.relu(self.bn49(self.conv1(x))))
            x = self.pool2(self.relu(self.bn50(self.conv2(x))))
            x = self.relu(self.bn51(self.conv3(x)))
            x = self.relu(self.bn52(self.conv4(x)))
            x = self.pool5(self.relu(self.bn53(self.conv5(x))))
            return x.mean(dim=(2, 3))

    return VGGMFace()


@dataclass(frozen=True)
class VGGMFaceConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    size: int = 96
    grey: bool = True
    batch_frames: int = 256


@register_extractor
class VGGMFace(Extractor):
    name = "vggm_face"
    version = "1"
    modality = "video"
    input = "faces"
    Config = VGGMFaceConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    @property
    def feature_names(self) -> list[str]:
        return [f"vggm_{i:03d}" for i in range(512)]

    def setup(self, device: str = "cpu") -> None:
        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        net = vggm_net()
        load_state(self.weights_path() / WEIGHTS.files[0], net)
        self.model = net.eval().to(self.device)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:  # float [N, 3, H, W] 0-255 -> the network's input
        import torch
        import torch.nn.functional as F

        if self.config.grey:
            x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.config.size, self.config.size), mode="bilinear", align_corners=False)
        mean = torch.tensor(WEIGHTS.preprocessing["mean_rgb_255"], device=x.device)[None, :, None, None]
        return x - mean

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        from extractors.torch_util import face_embeddings

        self.ensure_setup()
        return face_embeddings(self.model, self.device, batch, 512, self.config.batch_frames, self.standardise,
                               self.config.precision)
