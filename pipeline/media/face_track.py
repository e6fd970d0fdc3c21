"""Detect every N frames, track in between: where the face stage spends its time, made cheap.

A CNN detection costs tens of milliseconds per frame on a CPU; pyramidal Lucas-Kanade optical flow of a
few dozen points costs about one. So the detector runs on every ``every``-th frame (all of a window's
key frames in one batch) and the face is followed in between by the flow of corner points inside its
box plus its landmarks, checked forward-backward. A track that loses too many points (occlusion, a cut,
fast motion) is re-detected on the spot; a key-frame detection that disagrees with the track replaces
it. Per frame the tracker gives the box, the 5 landmarks (when the detector gives them), whether a face
was found, and a confidence: the detector's score on key frames, times the share of points that
tracked reliably on the frames in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from extractors.mtcnn import Detections

Detect = Callable[[np.ndarray], list[Detections]]  # frames [B, H, W, 3] -> one Detections per frame


@dataclass
class TrackedFaces:
    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 (full-frame pixels)
    points: np.ndarray  # [N, 5, 2] landmarks, NaN where the detector gives none
    found: np.ndarray  # [N] bool
    confidence: np.ndarray  # [N] float32 in [0, 1]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` [4] against boxes ``b`` [K, 4]."""
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class FaceTracker:
    """Stateful per clip: feed windows of frames in order."""

    def __init__(self, detect: Detect, every: int = 5, max_gap: int = 5, track_width: int = 640,
                 min_tracked: float = 0.5, subject: str | None = None) -> None:
        if subject not in (None, "left", "right"):
            raise ValueError(f"subject must be left or right, not {subject!r}")
        self.detect, self.every, self.max_gap, self.subject = detect, max(1, every), max_gap, subject
        self.track_width, self.min_tracked = track_width, min_tracked
        self.k = 0  # frames seen so far in this clip
        self.box: np.ndarray | None = None
        self.points: np.ndarray | None = None
        self.score = 0.0
        self.misses = 0  # consecutive key frames without a detection while the track was held
        self.detections = 0  # detector calls (frames), for benchmarks and tests
        self._prev: np.ndarray | None = None
        self._pts: np.ndarray | None = None  # tracked corner points, [M, 2] in grey-image pixels
        self._scale = 1.0

    def process(self, frames: np.ndarray) -> TrackedFaces:
        n = len(frames)
        out = TrackedFaces(np.zeros((n, 4)), np.full((n, 5, 2), np.nan), np.zeros(n, bool), np.zeros(n, np.float32))
        keys = [i for i in range(n) if (self.k + i) % self.every == 0]
        dets = dict(zip(keys, self._detect(frames[keys]))) if keys else {}
        for i, frame in enumerate(frames):
            grey = self._grey(frame)
            conf = 0.0
            if i in dets:
                conf = self._key_frame(dets[i], grey)
            elif self.box is not None:
                conf = self._follow(grey)
                if conf == 0.0:  # lost or drifted: re-detect this frame now
                    conf = self._key_frame(self._detect(frame[None])[0], grey)
            self._prev = grey
            if self.box is not None and conf > 0:
                out.boxes[i], out.found[i], out.confidence[i] = self.box, True, conf
                if self.points is not None:
                    out.points[i] = self.points
        self.k += n
        return out

    # -- detection --------------------------------------------------------------------------------
    def _detect(self, frames: np.ndarray) -> list[Detections]:
        self.detections += len(frames)
        return self.detect(frames)

    def _key_frame(self, det: Detections, grey: np.ndarray) -> float:
        if len(det.boxes) == 0:
            if self.box is None:
                return 0.0
            self.misses += 1  # the detector missed a face the flow still holds: keep it a little while
            conf = self._follow(grey) if self.misses <= self.max_gap else 0.0
            return conf * 0.5 ** self.misses if conf else self._lose()
        if self.box is not None:
            overlap = iou(self.box, det.boxes)
            j = int(np.argmax(overlap)) if overlap.max() > 0.2 else self._pick(det)
        else:
            j = self._pick(det)
        self.box, self.score, self.misses = det.boxes[j].astype(float), float(det.scores[j]), 0
        self.points = None if det.points is None else det.points[j].astype(float)
        self._seed(grey)
        return self.score

    def _pick(self, det: Detections) -> int:
        """The face to (re)start a track on: the most prominent (area x score); in a two-subject video the
        leftmost or rightmost of the prominent faces (at least a quarter of the most prominent one's)."""
        area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
        weight = area * det.scores
        if self.subject is None:
            return int(np.argmax(weight))
        cand = np.flatnonzero(weight >= 0.25 * weight.max())
        cx = (det.boxes[cand, 0] + det.boxes[cand, 2]) / 2
        return int(cand[np.argmin(cx) if self.subject == "left" else np.argmax(cx)])

    def _lose(self) -> float:
        self.box = self.points = self._pts = None
        self.misses = 0
        return 0.0

    # -- tracking ---------------------------------------------------------------------------------
    def _grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        self._scale = min(1.0, self.track_width / w)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # one channel before resizing: a third of the work
        if self._scale < 1:
            grey = cv2.resize(grey, (int(w * self._scale), int(h * self._scale)), interpolation=cv2.INTER_AREA)
        return grey

    def _seed(self, grey: np.ndarray) -> None:
        """Points to follow: corners inside the box (inner 80 %), plus the landmarks."""
        s = self._scale
        x1, y1, x2, y2 = (self.box * s).astype(int)
        dx, dy = (x2 - x1) // 10, (y2 - y1) // 10
        mask = np.zeros_like(grey)
        mask[max(0, y1 + dy) : max(0, y2 - dy), max(0, x1 + dx) : max(0, x2 - dx)] = 255
        corners = cv2.goodFeaturesToTrack(grey, 40, 0.01, max(2.0, (x2 - x1) / 15), mask=mask)
        pts = [corners.reshape(-1, 2)] if corners is not None else []
        if self.points is not None:
            pts.append(self.points * s)
        self._pts = np.concatenate(pts).astype(np.float32) if pts else np.zeros((0, 2), np.float32)

    def _follow(self, grey: np.ndarray) -> float:
        """Move box and landmarks by the flow's similarity transform; 0.0 when the track is lost."""
        if self._prev is None or self._pts is None or len(self._pts) < 4:
            return 0.0
        p0 = self._pts.reshape(-1, 1, 2)
        lk = {"winSize": (15, 15), "maxLevel": 3,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, p0, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev, p1, None, **lk)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 1.0)
        share = float(good.mean())
        if good.sum() < 4 or share < self.min_tracked:
            return 0.0
        m, _ = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.LMEDS)
        if m is None:
            return 0.0
        s = self._scale
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        centre = (self.box[:2] + self.box[2:]) / 2 * s
        c = m[:, :2] @ centre + m[:, 2]
        half = (self.box[2:] - self.box[:2]) / 2 * s * scale
        self.box = np.concatenate([c - half, c + half]) / s
        if self.points is not None:
            self.points = (self.points * s @ m[:, :2].T + m[:, 2]) / s
        self._pts = p1[good].reshape(-1, 2)
        if len(self._pts) < 10:
            self._seed(grey)
        return self.score * share
