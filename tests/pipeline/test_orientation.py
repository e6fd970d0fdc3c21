"""Phone videos upright: the display matrix FFmpeg writes is applied at decode, for every orientation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.media import synth
from pipeline.media.decode import ClipDecoder, ClipSource
from pipeline.media.orientation import orientation
from stores.feature_store import FeatureStore
from tests.helpers.cli import extract_json


def _matrix(a: float, b: float, c: float, d: float) -> np.ndarray:
    return np.array([[a, b, 0], [c, d, 0], [0, 0, 1.0]])


def test_every_orientation_of_the_grid_maps_pixels_as_the_matrix_says() -> None:
    """(x', y') = (a x + c y, b x + d y): each of the eight matrices of right-angle turns and mirror flips."""
    img = np.arange(12).reshape(3, 4)
    for a, b, c, d in [(1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0),
                       (-1, 0, 0, 1), (1, 0, 0, -1), (0, 1, 1, 0), (0, -1, -1, 0)]:
        name, fn = orientation(_matrix(a, b, c, d))
        out = img if fn is None else fn(img)
        ys, xs = np.indices(img.shape)
        nx, ny = a * xs + c * ys, b * xs + d * ys
        nx, ny = nx - nx.min(), ny - ny.min()
        want = np.zeros((ny.max() + 1, nx.max() + 1), int)
        want[ny, nx] = img
        np.testing.assert_array_equal(out, want, err_msg=name)
    assert orientation(None) == ("rot0", None)
    assert orientation(_matrix(0.5, 0, 0, 0.5))[1] is None  # not a turn of the grid: frames as stored


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_clip_with_a_display_rotation_decodes_upright(tmp_path, rotation) -> None:
    """Frames stored turned the other way, and the matrix that turns them back (as a phone writes them)."""
    face = synth.face_image(96)
    upright = list(synth.animate_face(face, 6, 25, 0, 1, 1, 1, 0))
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in upright]
    path = tmp_path / f"phone{rotation}.mp4"
    synth.write_clip(path, stored, 25, None, display_rotation=rotation)
    dec = ClipDecoder(ClipSource("phone", str(path)), want_video=True, want_audio=False)
    frames = np.concatenate([w.frames for w in dec.windows()])
    assert dec.orientation == f"rot{rotation}"
    assert frames.shape[1:3] == upright[0].shape[:2]
    err = np.abs(frames.astype(int) - np.stack(upright).astype(int)).mean()
    assert err < 6, err  # codec noise only: the same picture, upright


def test_faces_are_found_upright_in_a_portrait_phone_clip_end_to_end(tmp_path) -> None:
    face = synth.face_image(160)
    upright = list(synth.animate_face(face, 25, 25, 0, 1, 1, 1, 0))
    root = tmp_path / "clips"
    synth.write_clip(root / "phone.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in upright], 25,
                     synth.voice(1.0, 140, 4, 0.5, 0), display_rotation=90)
    synth.write_clip(root / "sideways.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in upright], 25,
                     synth.voice(1.0, 140, 4, 0.5, 0))  # the same frames without the matrix: what we used to see
    store = tmp_path / "s.zarr"
    extract_json("--dataset", "folder", "--root", str(root), "--store", str(store), "--extractors", "face_hog",
                 "--face-detector", "haar", "--quiet")
    live = FeatureStore(str(store)).index()
    valid = live[live["stage"] == "native"].set_index("clip_id")["valid"]
    assert valid["phone"] > 0.9 and valid["sideways"] < 0.5, valid.to_dict()
