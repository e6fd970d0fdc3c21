"""The shared face stage: detect, track and crop an aligned face per frame, once per clip.

Any extractor with ``input = "faces"`` receives this stage's crops instead of raw frames, at the size
and alignment it declares (:class:`FaceCrop`); each distinct crop is cut once per frame however many
extractors use it. A frame with no face keeps its place with ``found = False`` (its features are
marked invalid, never dropped) and every frame carries a confidence for the alignment's filter.

Detectors: ``mtcnn`` (a CNN with 5 landmarks, extractors/mtcnn.py; the default where its weights are
installed) and ``haar`` (OpenCV's shipped cascade; needs nothing, finds fewer faces, no landmarks).
``auto`` picks mtcnn when ``pipeline models fetch MTCNN`` has been run, else haar. Detection runs every
``detect_every`` frames with optical-flow tracking in between (pipeline/media/face_track.py). Alignment maps
the 5 landmarks onto a canonical template with a similarity transform; without landmarks (haar) the
crop is the square box, levelled by the eyes when the eye cascade finds both.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from extractors.base import FaceCrop, VideoSegment
from extractors.mtcnn import MTCNN, Detections
from pipeline.media.face_track import Detect, FaceTracker, TrackedFaces
from pipeline.media.orientation import ORIENTATION_KEY

#: Five-point template (eye centres, nose tip, mouth corners) in crop units, from the widely used
#: 112 x 112 ArcFace alignment; scaled to every crop size.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                     [70.7299, 92.2041]]) / 112.0


@dataclass(frozen=True)
class FaceConfig:
    detector: str = "auto"  # auto | mtcnn | haar
    detect_every: int = 5  # run the detector on every N-th frame, track in between
    min_face: float = 0.05  # smallest face to find, as a fraction of the frame's shorter side ...
    min_face_px: int = 20  # ... but never below this many pixels (MTCNN's default)
    max_gap: int = 5  # key frames a track is held by flow alone when the detector misses it
    device: str = "cpu"  # where the detector runs; the shard task sets the worker's device


def face_key(cfg: FaceConfig) -> dict:
    """What of the face stage a stored result depends on (part of faces extractors' cache keys)."""
    key = dataclasses.asdict(cfg)
    key.pop("device")  # the same weights give the same faces on CPU and GPU (up to float rounding)
    key.update(ORIENTATION_KEY)  # frames upright as the display matrix says (pipeline/media/orientation.py)
    if cfg.detector == "mtcnn":
        from extractors import weights

        key["weights"] = weights.pinned("MTCNN")
    return key


def resolve_detector(name: str) -> str:
    """``auto`` -> ``mtcnn`` where its weights are installed (checked), else ``haar``."""
    if name != "auto":
        return name
    from extractors import weights

    try:
        weights.resolve("MTCNN")
        return "mtcnn"
    except weights.WeightsError:
        return "haar"


def _haar(cfg: FaceConfig) -> Callable[[np.ndarray], list[Detections]]:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's Haar cascade is missing; install opencv-python-headless<5")

    def detect(frames: np.ndarray) -> list[Detections]:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            min_px = max(cfg.min_face_px, cfg.min_face * min(h, w))
            scale = min(1.0, 24.0 / min_px * 1.25)  # the cascade's 24 px window still holds the smallest face
            small = cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
            found = cascade.detectMultiScale(grey, 1.1, 5, minSize=(24, 24))
            boxes = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in found], float).reshape(-1, 4) / scale
            out.append(Detections(boxes, np.ones(len(boxes)), None))
        return out

    return detect


_MODELS: dict[str, MTCNN] = {}
_LOCK = threading.Lock()  # tasks in several threads of one worker load one detector


def _mtcnn(cfg: FaceConfig) -> Callable[[np.ndarray], list[Detections]]:
    from extractors import weights

    with _LOCK:
        if cfg.device not in _MODELS:
            _MODELS[cfg.device] = MTCNN(weights.resolve("MTCNN", verify=False), cfg.device)
    model = _MODELS[cfg.device]

    def detect(frames: np.ndarray) -> list[Detections]:
        h, w = frames.shape[1:3]
        return model.detect(frames, max(cfg.min_face_px, cfg.min_face * min(h, w)))

    return detect


#: name -> factory of a batch detector. Register another detector by adding a factory here.
DETECTORS: dict[str, Callable[[FaceConfig], Detect]] = {"haar": _haar, "mtcnn": _mtcnn}
_EYES: cv2.CascadeClassifier | None = None


class FaceStage:
    """Per clip: windows of frames in, for each requested crop a window of crops (+ found, confidence)."""

    def __init__(self, config: FaceConfig, crops: Iterable[FaceCrop], subject: str | None = None) -> None:
        name = resolve_detector(config.detector)
        if name not in DETECTORS:
            raise ValueError(f"unknown face detector {name!r}; known: {sorted(DETECTORS)}")
        self.config, self.crops = config, sorted(set(crops), key=dataclasses.astuple)
        self.tracker = FaceTracker(DETECTORS[name](config), config.detect_every, config.max_gap, subject=subject)

    def process(self, window: VideoSegment) -> dict[FaceCrop, VideoSegment]:
        faces = self.tracker.process(window.frames)
        out = {}
        for spec in self.crops:
            crops = np.zeros((len(window.frames), spec.size, spec.size, 3), np.uint8)
            for i in np.flatnonzero(faces.found):
                crops[i] = crop(window.frames[i], faces, i, spec)
            out[spec] = VideoSegment(window.clip_id, crops, window.times, window.ends, faces.found.copy(),
                                     window.last, faces.confidence.copy())
        return out


def crop(frame: np.ndarray, faces: TrackedFaces, i: int, spec: FaceCrop) -> np.ndarray:
    """The aligned crop of frame ``i``: a similarity warp to ``spec.size`` x ``spec.size``."""
    pts = faces.points[i]
    if spec.align == "landmarks" and np.isfinite(pts).all():
        dst = (0.5 + (TEMPLATE - 0.5) / (1 + 2 * spec.margin)) * spec.size
        m, _ = cv2.estimateAffinePartial2D(pts.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
        if m is not None:
            return cv2.warpAffine(frame, m, (spec.size, spec.size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    x1, y1, x2, y2 = faces.boxes[i]
    side = max(x2 - x1, y2 - y1) * (1 + 2 * spec.margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = _eye_angle(frame, faces.boxes[i]) if spec.align == "landmarks" else 0.0
    m = cv2.getRotationMatrix2D((cx, cy), angle, spec.size / side)
    m[0, 2] += spec.size / 2 - cx
    m[1, 2] += spec.size / 2 - cy
    return cv2.warpAffine(frame, m, (spec.size, spec.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _eye_angle(frame: np.ndarray, box: np.ndarray) -> float:
    """In-plane roll (degrees) from the two eyes in the upper half of the box; 0 if not both found."""
    global _EYES
    if _EYES is None:
        _EYES = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    roi = frame[max(0, y1) : max(0, y1) + h // 2, max(0, x1) : max(0, x1) + w]
    if roi.size == 0:
        return 0.0
    eyes = _EYES.detectMultiScale(cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY), 1.1, 5,
                                  minSize=(max(4, w // 10), max(4, w // 10)))
    if len(eyes) < 2:
        return 0.0
    eyes = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
    (ex1, ey1, w1, h1), (ex2, ey2, w2, h2) = sorted(eyes, key=lambda e: e[0])
    angle = float(np.degrees(np.arctan2((ey2 + h2 / 2) - (ey1 + h1 / 2), (ex2 + w2 / 2) - (ex1 + w1 / 2))))
    return angle if abs(angle) < 30 else 0.0
