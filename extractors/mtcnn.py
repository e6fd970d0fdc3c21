"""MTCNN (Zhang et al., IEEE SPL 2016): the face stage's CNN detector, with 5 landmarks.

Three small networks in cascade: P-Net proposes boxes over an image pyramid, R-Net rejects and refines
them on 24 x 24 crops, O-Net refines again on 48 x 48 crops and gives 5 landmarks (eye centres, nose
tip, mouth corners). The networks are written here (the PyPI package that ships the published weights,
``facenet-pytorch``, pins torch < 2.3 and numpy < 2); their layer names and the input layout follow that
package's conversion, so its three state dicts load as they are (``weights_only``, sha256-pinned).
Every stage is batched: all frames of a window go through P-Net together, all their candidates through
R-Net and O-Net together; candidate crops are cut with ``roi_align`` (zero outside the frame, as in the
original), on the GPU when the worker has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import Tensor

WEIGHTS = register_weights(Weights(
    name="MTCNN", files=("pnet.pt", "rnet.pt", "onet.pt"),
    sha256={"pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"},
    source="facenet-pytorch==2.6.0", kind="pypi", licence="MIT (facenet-pytorch); MTCNN by Zhang et al. 2016",
    preprocessing={"scale": "(x - 127.5) / 128", "channels": "RGB"},
    meta={"wheel_dir": "facenet_pytorch/data", "thresholds": [0.6, 0.7, 0.7], "factor": 0.709,
          "how": "`pipeline models fetch MTCNN` (pip downloads the facenet-pytorch wheel from PyPI, no install) "
                 "or unzip that wheel and `pipeline models add MTCNN facenet_pytorch/data`"},
))


def _nets() -> tuple[type[torch.nn.Module], type[torch.nn.Module], type[torch.nn.Module]]:  # torch lazily
    import torch
    from torch import nn

    class PNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (box offsets [N,4,h,w], face probability [N,h,w])
            x = self.prelu1(self.conv1(x))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(x)))))
            return self.conv4_2(x), torch.softmax(self.conv4_1(x), 1)[:, 1]

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (box offsets [N,4], face probability [N])
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))  # the converted weights' (W, H) order
            return self.dense5_2(x), torch.softmax(self.dense5_1(x), 1)[:, 1]

    class ONet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            # (offsets [N,4], landmarks [N,10], probability [N])
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu5(self.dense5(self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)))
            return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), 1)[:, 1]

    return PNet, RNet, ONet


@dataclass
class Detections:
    """One image's faces: boxes [K, 4] (x1, y1, x2, y2 in pixels), scores [K], landmarks [K, 5, 2] or None."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray | None = None


class MTCNN:
    """Batched MTCNN over equal-sized RGB uint8 frames; ``min_face`` in pixels of those frames."""

    def __init__(self, folder: Path, device: str = "cpu", min_face: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709) -> None:
        import torch

        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor
        # channels-last: 2-3x faster convolutions and pooling on CPU for these thin layers
        self.nets = [load_state(f"{folder}/{f}", cls()).eval().to(self.device, memory_format=torch.channels_last)
                     for f, cls in zip(WEIGHTS.files, _nets())]

    def scales(self, h: int, w: int, min_face: float | None = None) -> list[float]:
        """The pyramid: the smallest face maps to P-Net's 12 px cell, then steps of ``factor``."""
        m = 12.0 / (min_face or self.min_face)
        out, side = [], min(h, w) * m
        while side >= 12:
            out.append(m * self.factor ** len(out))
            side *= self.factor
        return out

    def detect(self, frames: np.ndarray, min_face: float | None = None) -> list[Detections]:
        """``min_face`` (pixels) overrides the instance's for this call: one model serves every frame size."""
        import torch

        if len(frames) == 0:
            return []
        with torch.inference_mode():
            # on CPU the frames stay uint8 arrays (OpenCV cuts and scales); a float copy of a batch of 720p
            # frames costs more than the networks. On GPU: one upload, torch does the rest.
            imgs = None if self.device.type == "cpu" else torch.from_numpy(np.ascontiguousarray(frames)).to(
                self.device).permute(0, 3, 1, 2).float().contiguous()
            boxes, idx = self._propose(imgs, frames, min_face)
            boxes, idx, _ = self._refine(imgs, frames, boxes, idx, 1, 24)
            boxes, idx, points = self._refine(imgs, frames, boxes, idx, 2, 48)
            boxes, idx, points = boxes.cpu().numpy(), idx.cpu().numpy(), points.cpu().numpy()
        out = []
        for b in range(len(frames)):
            sel = idx == b
            out.append(Detections(boxes[sel, :4].copy(), boxes[sel, 4].copy(), points[sel].copy()))
        return out

    def _pyramid(self, imgs: Tensor, frames: np.ndarray, sizes: list[tuple[int, int]]) -> list[Tensor]:
        """The pyramid levels, scaled for the networks. CPU: OpenCV's area resize, each level from the one
        before (a 720p frame is shrunk once, not once per level: 4x less resize time); GPU: torch."""
        import cv2
        import torch
        import torch.nn.functional as F

        prev = list(frames)
        for h, w in sizes:
            if self.device.type == "cpu":
                prev = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in prev]
                x = torch.from_numpy(np.stack(prev)).permute(0, 3, 1, 2).float()
            else:
                x = F.interpolate(imgs, size=(h, w), mode="area")
            yield ((x - 127.5) / 128.0).contiguous(memory_format=torch.channels_last)

    def _propose(self, imgs: Tensor, frames_np: np.ndarray, min_face: float | None) -> tuple[Tensor, Tensor]:
        """Candidate boxes ([K, 5]: box and score) and their frame ([K])."""
        import torch
        from torchvision.ops import batched_nms

        h, w = frames_np.shape[1:3]
        found, frames = [], []
        scales = self.scales(h, w, min_face)
        levels = self._pyramid(imgs, frames_np, [(int(h * s + 1), int(w * s + 1)) for s in scales])
        for s, level in zip(scales, levels):
            reg, prob = self.nets[0](level)
            b, yy, xx = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if len(b) == 0:
                continue
            cell = torch.stack([xx, yy], 1).float()
            q1, q2 = torch.floor((2 * cell + 1) / s), torch.floor((2 * cell + 12) / s)
            cand = torch.cat([q1, q2, prob[b, yy, xx][:, None], reg[b, :, yy, xx]], 1)
            keep = batched_nms(cand[:, :4], cand[:, 4], b, 0.5)
            found.append(cand[keep])
            frames.append(b[keep])
        if not found:
            return torch.zeros((0, 5), device=self.device), torch.zeros(0, dtype=torch.long, device=self.device)
        cand, b = torch.cat(found), torch.cat(frames)
        keep = batched_nms(cand[:, :4], cand[:, 4], b, 0.7)
        cand, b = cand[keep], b[keep]
        wh = (cand[:, 2:4] - cand[:, 0:2]).repeat(1, 2)
        boxes = cand[:, :4] + cand[:, 5:9] * wh
        return _square(torch.cat([boxes, cand[:, 4:5]], 1)), b

    def _crops(self, frames: np.ndarray, boxes: Tensor, idx: Tensor, size: int) -> Tensor:
        """CPU: each candidate's box cut from its uint8 frame (zero outside the frame, as in the original)
        and area-resized to ``size`` by OpenCV."""
        import cv2
        import torch

        h, w = frames.shape[1:3]
        out = np.zeros((len(boxes), size, size, 3), np.float32)
        corners = np.round(boxes[:, :4].cpu().numpy()).astype(int)
        for k, (b, (x0, y0, x1, y1)) in enumerate(zip(idx.tolist(), corners)):
            x1, y1 = max(x1, x0) + 1, max(y1, y0) + 1  # inclusive pixel boxes
            patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if cx1 > cx0 and cy1 > cy0:
                patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = frames[b, cy0:cy1, cx0:cx1]
            out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def _refine(self, imgs: Tensor, frames: np.ndarray, boxes: Tensor, idx: Tensor, stage: int,
                size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """R-Net (stage 1) or O-Net (stage 2) on the candidates' crops: keep, regress, NMS."""
        import torch
        from torchvision.ops import batched_nms, roi_align

        empty_pts = torch.zeros((0, 5, 2), device=boxes.device)
        if len(boxes) == 0:
            return boxes, idx, empty_pts
        if imgs is None:
            crops = (self._crops(frames, boxes, idx, size) - 127.5) / 128.0
        else:
            half = torch.tensor([-0.5, -0.5, 0.5, 0.5], device=boxes.device)  # inclusive pixel boxes
            rois = torch.cat([idx[:, None].float(), boxes[:, :4] + half], 1)
            # 2 x 2 samples per output pixel whatever the box size: the adaptive default samples a 700 px face
            # ~30 x 30 times per pixel for the same 24/48 px crop
            crops = (roi_align(imgs, rois, size, spatial_scale=1.0, sampling_ratio=2, aligned=True) - 127.5) / 128.0
        crops = crops.contiguous(memory_format=torch.channels_last)
        outs = [self.nets[stage](crops[i : i + 512]) for i in range(0, len(crops), 512)]
        reg, score = torch.cat([o[0] for o in outs]), torch.cat([o[-1] for o in outs])
        keep = score > self.thresholds[stage]
        boxes, idx, reg, score = boxes[keep], idx[keep], reg[keep], score[keep]
        wh = (boxes[:, 2:4] - boxes[:, 0:2] + 1).repeat(1, 2)
        points = empty_pts
        if stage == 2:
            lm = torch.cat([o[1] for o in outs])[keep]
            points = torch.stack([boxes[:, 0:1] + wh[:, 0:1] * lm[:, :5] - 1,
                                  boxes[:, 1:2] + wh[:, 1:2] * lm[:, 5:] - 1], 2)
        boxes = torch.cat([boxes[:, :4] + reg * wh, score[:, None]], 1)
        if stage == 1:
            keep = batched_nms(boxes[:, :4], boxes[:, 4], idx, 0.7)
            return _square(boxes[keep]), idx[keep], points
        keep = _nms_min(boxes, idx, 0.7)
        return boxes[keep], idx[keep], points[keep]


def _square(boxes: Tensor) -> Tensor:  # [K, 5] -> squares about the same centres
    import torch

    wh = boxes[:, 2:4] - boxes[:, 0:2]
    side = torch.max(wh, 1).values[:, None]
    x1y1 = boxes[:, 0:2] + wh / 2 - side / 2
    return torch.cat([x1y1, x1y1 + side, boxes[:, 4:5]], 1)


def _nms_min(boxes: Tensor, idx: Tensor, threshold: float) -> Tensor:
    """O-Net's final suppression: overlap over the smaller box (a face inside a face is one face)."""
    import torch

    order = torch.argsort(boxes[:, 4], descending=True).tolist()
    b = boxes.cpu().numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    frame = idx.cpu().numpy()
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            if frame[i] != frame[j]:
                continue
            iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]) + 1
            ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]) + 1
            if iw > 0 and ih > 0 and iw * ih / min(area[i], area[j]) > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)
