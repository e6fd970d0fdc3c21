"""The shared face stage: detect, track and crop an aligned face per frame, once per clip.

Any extractor with ``input = "faces"`` receives the crops of this stage instead of raw frames. A frame
with no face keeps its place with ``found = False`` (its features are marked invalid, never dropped).
Detectors are pluggable through :data:`DETECTORS`; the default is OpenCV's shipped Haar cascade,
which runs offline anywhere. Alignment rotates the crop so that the eyes are level when both eyes
are detected inside the face box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from extractors.base import VideoSegment


@dataclass(frozen=True)
class FaceConfig:
    detector: str = "haar"
    crop_size: int = 112
    margin: float = 0.2  # box enlarged by this fraction on each side before cropping
    detect_width: int = 320  # frames are downscaled to this width for detection
    max_gap: int = 5  # frames a lost face is held at its last box before being marked not found
    smoothing: float = 0.6  # weight of the previous box in the tracked box (0 = no smoothing)
    min_size: float = 0.1  # smallest face, as a fraction of the frame's shorter side
    align_eyes: bool = True


class FaceDetector(Protocol):
    def __call__(self, gray: np.ndarray, min_size: int) -> list[tuple[int, int, int, int]]: ...


def _haar() -> FaceDetector:
    face = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if face.empty():
        raise RuntimeError("OpenCV's Haar cascade is missing; install opencv-python-headless<5")

    def detect(gray: np.ndarray, min_size: int) -> list[tuple[int, int, int, int]]:
        boxes = face.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
        return [tuple(int(v) for v in b) for b in boxes]

    return detect


#: name -> factory. Register another detector (e.g. a DNN) by adding a factory here.
DETECTORS: dict[str, Callable[[], FaceDetector]] = {"haar": _haar}
_EYES: cv2.CascadeClassifier | None = None
_CACHE: dict[str, FaceDetector] = {}


def detector(name: str) -> FaceDetector:
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; known: {sorted(DETECTORS)}")
    if name not in _CACHE:
        _CACHE[name] = DETECTORS[name]()
    return _CACHE[name]


class FaceTracker:
    """Stateful per clip: feed windows in order, get windows of crops with a found mask."""

    def __init__(self, config: FaceConfig) -> None:
        self.config = config
        self.detect = detector(config.detector)
        self.box: np.ndarray | None = None  # x, y, w, h in full-frame pixels
        self.lost = 0

    def process(self, window: VideoSegment) -> VideoSegment:
        c = self.config
        n = len(window.frames)
        crops = np.zeros((n, c.crop_size, c.crop_size, 3), np.uint8)
        found = np.zeros(n, bool)
        for i, frame in enumerate(window.frames):
            box = self._track(frame)
            if box is not None:
                crops[i] = self._crop(frame, box)
                found[i] = True
        return VideoSegment(window.clip_id, crops, window.times, window.ends, found, window.last)

    def _track(self, frame: np.ndarray) -> np.ndarray | None:
        c = self.config
        h, w = frame.shape[:2]
        scale = min(1.0, c.detect_width / w)
        small = cv2.resize(frame, (int(w * scale), int(h * scale))) if scale < 1 else frame
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        boxes = [np.array(b, float) / scale for b in self.detect(gray, max(12, int(c.min_size * min(gray.shape))))]
        if boxes:
            if self.box is None:
                best = max(boxes, key=lambda b: b[2] * b[3])
                self.box = best
            else:  # tracking: the detection nearest the current track
                centre = self.box[:2] + self.box[2:] / 2
                best = min(boxes, key=lambda b: np.linalg.norm(b[:2] + b[2:] / 2 - centre))
                self.box = c.smoothing * self.box + (1 - c.smoothing) * best
            self.lost = 0
            return self.box
        self.lost += 1
        if self.box is not None and self.lost <= c.max_gap:
            return self.box
        self.box = None
        return None

    def _crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        c = self.config
        x, y, w, h = box
        side = max(w, h) * (1 + 2 * c.margin)
        cx, cy = x + w / 2, y + h / 2
        angle = self._eye_angle(frame, box) if c.align_eyes else 0.0
        s = c.crop_size / side
        m = cv2.getRotationMatrix2D((cx, cy), angle, s)
        m[0, 2] += c.crop_size / 2 - cx
        m[1, 2] += c.crop_size / 2 - cy
        return cv2.warpAffine(frame, m, (c.crop_size, c.crop_size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    @staticmethod
    def _eye_angle(frame: np.ndarray, box: np.ndarray) -> float:
        """In-plane roll (degrees) from the two eyes in the upper half of the face; 0 if not both found."""
        global _EYES
        if _EYES is None:
            _EYES = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
        x, y, w, h = (int(v) for v in box)
        roi = frame[max(0, y) : max(0, y) + h // 2, max(0, x) : max(0, x) + w]
        if roi.size == 0:
            return 0.0
        gray = cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY)
        eyes = _EYES.detectMultiScale(gray, 1.1, 5, minSize=(max(4, w // 10), max(4, w // 10)))
        if len(eyes) < 2:
            return 0.0
        eyes = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
        (x1, y1, w1, h1), (x2, y2, w2, h2) = sorted(eyes, key=lambda e: e[0])
        dy = (y2 + h2 / 2) - (y1 + h1 / 2)
        dx = (x2 + w2 / 2) - (x1 + w1 / 2)
        angle = float(np.degrees(np.arctan2(dy, dx)))
        return angle if abs(angle) < 30 else 0.0
