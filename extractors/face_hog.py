"""HOG of the aligned face crop, per frame: the appearance descriptor OpenFace's AU models are built on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.feature import hog

from extractors.base import Extractor, Features, VideoSegment, positive
from extractors.registry import register_extractor


@dataclass(frozen=True)
class FaceHOGConfig:
    orientations: int = 9
    pixels_per_cell: int = 8
    cells_per_block: int = 2
    size: int = 112  # the crop is resized to size x size before HOG (OpenFace aligns to 112 x 112)

    def __post_init__(self) -> None:
        positive(self, "orientations", "pixels_per_cell", "cells_per_block", "size")
        if self.size < self.pixels_per_cell * self.cells_per_block:
            raise ValueError(f"size {self.size} is smaller than one HOG block "
                             f"({self.pixels_per_cell} x {self.cells_per_block} px)")


@register_extractor
class FaceHOG(Extractor):
    name = "face_hog"
    version = "1"
    modality = "video"
    input = "faces"
    Config = FaceHOGConfig

    @property
    def feature_names(self) -> list[str]:
        c = self.config
        cells = c.size // c.pixels_per_cell
        blocks = cells - c.cells_per_block + 1
        n = blocks * blocks * c.cells_per_block * c.cells_per_block * c.orientations
        return [f"hog_{i:04d}" for i in range(n)]

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        import cv2

        c = self.config
        out = []
        for seg in batch:
            values = np.zeros((len(seg.frames), self.dim), np.float32)
            found = np.ones(len(seg.frames), bool) if seg.found is None else seg.found
            for i, crop in enumerate(seg.frames):
                if not found[i]:
                    continue  # no face: the frame stays, marked invalid
                gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
                if gray.shape != (c.size, c.size):
                    gray = cv2.resize(gray, (c.size, c.size), interpolation=cv2.INTER_AREA)
                values[i] = hog(
                    gray,
                    orientations=c.orientations,
                    pixels_per_cell=(c.pixels_per_cell, c.pixels_per_cell),
                    cells_per_block=(c.cells_per_block, c.cells_per_block),
                    block_norm="L2-Hys",
                    feature_vector=True,
                )
            out.append(Features(values, seg.times, seg.ends, found, seg.confidence))
        return out
