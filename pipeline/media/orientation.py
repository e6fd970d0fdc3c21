"""Frames upright as a player shows them: the container's display matrix (phones write one on every video).

A phone records the sensor's landscape frames and stores how to show them: a display matrix (ISO BMFF `tkhd`,
FFmpeg's DISPLAYMATRIX side data; the older `rotate` tag becomes one), a 90/180/270-degree rotation, possibly
with a mirror flip. Decoded frames come out as stored, so without this a portrait phone clip reaches the face
detector sideways. The matrix's linear part maps a stored pixel (x right, y down) to where it is shown:
``(x', y') = (a x + c y, b x + d y)``; of the eight orientations a square grid has, the one that does the same
is found once per clip and applied to every frame (a view and one copy per frame).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Orient = Callable[[np.ndarray], np.ndarray]
#: Part of the cache key of every result computed from frames: results stored before frames were turned upright
#: (a phone clip's faces looked for sideways) are not those of today, so they are recomputed once.
ORIENTATION_KEY = {"orientation": "display-matrix"}
_CANDIDATES: list[tuple[str, Orient]] = [
    (f"rot{k * 90}{'+flip' if flip else ''}", (lambda a, k=k, flip=flip: np.rot90(a[:, ::-1] if flip else a, k)))
    for flip in (False, True) for k in range(4)
]


def display_matrix(frame: object) -> np.ndarray | None:
    """The frame's 3x3 display matrix (16.16 fixed point as FFmpeg stores it, as floats), or None."""
    from av.sidedata.sidedata import Type

    side = getattr(frame, "side_data", None)
    data = side.get(Type.DISPLAYMATRIX) if side is not None else None
    if data is None:
        return None
    m = np.frombuffer(bytes(data), np.int32).astype(np.float64).reshape(3, 3)
    m[:, :2] /= 65536.0
    return m


def orientation(matrix: np.ndarray | None) -> tuple[str, Orient | None]:
    """(name, function) that shows stored frames as the matrix says; (``rot0``, None) for none or identity."""
    if matrix is None:
        return "rot0", None
    lin = np.rint(matrix[:2, :2]).astype(int)  # [[a, b], [c, d]]; non-right angles are rounded to the nearest
    if abs(np.linalg.det(lin)) != 1:
        return "rot0", None  # not an orthogonal map of the grid (a damaged matrix): frames as stored
    probe = np.arange(6).reshape(2, 3)  # rows = y, columns = x
    ys, xs = np.indices(probe.shape)
    nx, ny = xs * lin[0, 0] + ys * lin[1, 0], xs * lin[0, 1] + ys * lin[1, 1]
    nx, ny = nx - nx.min(), ny - ny.min()
    want = np.zeros((ny.max() + 1, nx.max() + 1), int)
    want[ny, nx] = probe
    for name, fn in _CANDIDATES:
        if fn(probe).shape == want.shape and np.array_equal(fn(probe), want):
            return name, None if name == "rot0" else fn
    return "rot0", None
