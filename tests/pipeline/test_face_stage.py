"""The face stage on real faces: MTCNN with its published weights, detect-and-track, per-consumer crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from extractors import registry, weights
from extractors.base import FaceCrop, VideoSegment
from extractors.mtcnn import MTCNN
from pipeline.media import synth
from pipeline.media.face import TEMPLATE, FaceConfig, FaceStage
from tests.helpers.cli import cli, extract_json, opencv_sample


def _run(stage: FaceStage, frames: np.ndarray, window: int = 32) -> dict[FaceCrop, VideoSegment]:
    """The stage over a clip, window by window, joined back (found, confidence, crops per spec)."""
    parts: dict[FaceCrop, list[VideoSegment]] = {}
    for i in range(0, len(frames), window):
        w = frames[i : i + window]
        t = np.arange(i, i + len(w)) / 25
        for spec, seg in stage.process(VideoSegment("c", w, t, t + 0.04)).items():
            parts.setdefault(spec, []).append(seg)
    cat = np.concatenate
    return {s: VideoSegment("c", cat([p.frames for p in v]), cat([p.times for p in v]), cat([p.ends for p in v]),
                            cat([p.found for p in v]), True, cat([p.confidence for p in v]))
            for s, v in parts.items()}


def _rotate(img: np.ndarray, angle: float) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def test_mtcnn_with_published_weights_places_box_and_landmarks_on_a_real_face(mtcnn_dir):
    img = synth.face_image(240)  # scikit-image's astronaut, face centred
    (det,) = MTCNN(mtcnn_dir).detect(img[None])
    assert len(det.boxes) == 1 and det.scores[0] > 0.99
    x1, y1, x2, y2 = det.boxes[0]
    assert 40 < x2 - x1 < 200 and x1 < 120 < x2 and y1 < 120 < y2
    (le, re, nose, lm, rm) = det.points[0]
    assert le[0] < nose[0] < re[0] and lm[0] < rm[0]  # left/right order
    assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])  # eyes above nose above mouth
    assert (x1 <= det.points[0][:, 0]).all() and (det.points[0][:, 0] <= x2).all()
    (none,) = MTCNN(mtcnn_dir).detect(np.full((1, 240, 240, 3), 128, np.uint8))
    assert len(none.boxes) == 0


@pytest.mark.parametrize("variant", ["upright", "+20", "-20", "2x"])
def test_default_face_stage_finds_the_small_real_face_of_messi5(mtcnn_dir, variant):
    """OpenCV's messi5.jpg (face ~37 px in 548 x 342) held as a video: the old stage found it in 0 %."""
    img = cv2.cvtColor(cv2.imread(str(opencv_sample("messi5.jpg"))), cv2.COLOR_BGR2RGB)
    img = {"upright": img, "+20": _rotate(img, 20), "-20": _rotate(img, -20),
           "2x": cv2.resize(img, None, fx=2, fy=2)}[variant]
    stage = FaceStage(FaceConfig(), [FaceCrop(112)])
    (seg,) = _run(stage, np.stack([img] * 40)).values()
    assert seg.found.mean() >= 0.9
    assert stage.tracker.detections <= 40 // 5 + 1  # detect every 5th frame, track in between


def test_default_face_stage_follows_the_animated_megamind_face(mtcnn_dir):
    import av

    with av.open(str(opencv_sample("Megamind.avi"))) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    stage = FaceStage(FaceConfig(), [FaceCrop(112)])
    (seg,) = _run(stage, frames).values()
    assert seg.found.mean() >= 0.9
    assert stage.tracker.detections < len(frames) / 3


def test_track_confidence_cut_and_faceless_frames(mtcnn_dir):
    """Detect on key frames, flow in between; a cut to an empty scene ends the track; confidence <= score."""
    face = np.stack(list(synth.animate_face(synth.face_image(), 20, 25, 0, 1, 1, 1, seed=0)))
    blank = np.full_like(face, 128)
    stage = FaceStage(FaceConfig(detect_every=5), [FaceCrop(112)])
    (seg,) = _run(stage, np.concatenate([face, blank[:12], face[:8]]), window=16).values()
    assert seg.found[:20].all() and not seg.found[20:32].any() and seg.found[35:].all()
    assert ((seg.confidence > 0.5) == seg.found).all() and (seg.confidence <= 1).all()
    assert (seg.frames[~seg.found] == 0).all()


def test_each_consumer_gets_its_crop_once_aligned_by_landmarks(mtcnn_dir):
    base = synth.face_image(240)
    frames = np.stack([_rotate(base, 15)] * 6)
    specs = [FaceCrop(112), FaceCrop(160, "box", 0.0), FaceCrop(112)]
    out = _run(FaceStage(FaceConfig(detect_every=1), specs), frames)
    assert set(out) == {FaceCrop(112), FaceCrop(160, "box", 0.0)}
    assert out[FaceCrop(160, "box", 0.0)].frames.shape == (6, 160, 160, 3)
    aligned = out[FaceCrop(112)].frames[0]
    (det,) = MTCNN(weights.resolve("MTCNN")).detect(np.ascontiguousarray(aligned)[None])
    want = (0.5 + (TEMPLATE - 0.5) / 1.2) * 112  # margin 0.1
    assert np.abs(det.points[0] - want).max() < 6  # the 15-degree roll is undone: landmarks on the template


def test_haar_fallback_needs_no_weights_and_marks_faceless_frames():
    face = np.stack(list(synth.animate_face(synth.face_image(), 6, 25, 0, 1, 1, 1, seed=0)))
    video = np.concatenate([face, np.full_like(face, 128)])
    (seg,) = _run(FaceStage(FaceConfig(detector="haar", detect_every=1, max_gap=0), [FaceCrop(112)]), video).values()
    assert seg.found.tolist() == [True] * 6 + [False] * 6
    (hog,) = registry.create("face_hog").compute([seg])
    assert hog.mask.tolist() == seg.found.tolist() and hog.confidence is not None
    assert np.abs(hog.values[:6]).sum() > 0 and np.abs(hog.values[6:]).sum() == 0


def _add_state(root, name: str, like: str, net, filename: str) -> None:
    import torch

    torch.save(net.state_dict(), root / filename)
    cli("models", "add", name, str(root / filename), "--like", like, "--models", str(root / "m"), check=True)


@pytest.mark.slow  # ~50 s: InceptionResnetV1 + ResNet-50 on CPU
def test_facenet_and_resnet_face_end_to_end_with_mtcnn(mini_corpus, tmp_path, mtcnn_dir):
    """Test-made weights registered like the published ones; the real MTCNN in the same model directory."""
    import torch
    import torchvision

    from extractors.facenet import inception_resnet_v1

    torch.manual_seed(0)
    _add_state(tmp_path, "TEST_FACENET", "FACENET_VGGFACE2", inception_resnet_v1().eval(),
               "20180402-114759-vggface2.pt")
    _add_state(tmp_path, "TEST_RESNET", "RESNET18_IMAGENET1K_V1", torchvision.models.resnet18(weights=None),
               "resnet18-f37072fd.pth")
    from torchvision.models.video import r2plus1d_18

    _add_state(tmp_path, "TEST_R2P1D", "R2PLUS1D_18_KINETICS400_V1", r2plus1d_18(weights=None),
               "r2plus1d_18-91a641e6.pth")
    cli("models", "add", "MTCNN", str(mtcnn_dir), "--models", str(tmp_path / "m"), check=True)
    store = str(tmp_path / "store")
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", store, "--models",
                     str(tmp_path / "m"), "--extractors", "facenet,resnet_face,face_hog,r2plus1d", "--set",
                     "facenet.weights=TEST_FACENET", "--set", "resnet_face.weights=TEST_RESNET", "--set",
                     "r2plus1d.weights=TEST_R2P1D", "--set", "r2plus1d.faces=true", "--set", "r2plus1d.face_size=96",
                     "--quiet", "--shard-size", "4")
    assert r["counts"]["failed"] == 0 and r["calls"]["facenet"] > 0 and r["calls"]["r2plus1d"] > 0
    from stores.feature_store import FeatureStore

    fs = FeatureStore(store)
    live = fs.index().set_index(["clip_id", "stage", "extractor"]).sort_index()
    clip = live.index[0][0]
    fn = fs.read(live.loc[(clip, "native", "facenet")])
    rn = fs.read(live.loc[(clip, "native", "resnet_face")])
    assert fn.values.shape[1] == 512 and rn.values.shape[1] == 512
    assert fn.mask.mean() > 0.9 and np.allclose(np.linalg.norm(fn.values[fn.mask], axis=1), 1, atol=1e-4)
    assert fn.confidence is not None and (fn.confidence[fn.mask] > 0.5).all()
    attrs = fs.group_attrs("native", "", "facenet")
    assert attrs["face"]["detector"] == "mtcnn" and attrs["face"]["crop"]["size"] == 160
    # JMT's R(2+1)D on the face stage's aligned crops at its own size: one 512-d vector per 8 frames
    rd = fs.read(live.loc[(clip, "native", "r2plus1d")])
    frames = len(fs.read(live.loc[(clip, "native", "face_hog")]).values)
    assert rd.values.shape == (-(-frames // 8), 512) and rd.mask.mean() > 0.8
    attrs = fs.group_attrs("native", "", "r2plus1d")
    assert attrs["input"] == "faces" and attrs["face"]["crop"] == {"size": 96, "align": "landmarks", "margin": 0.1}


def test_mtcnn_asked_for_without_weights_is_refused_before_any_clip(mini_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--models",
               str(tmp_path / "empty"), "--extractors", "face_hog", "--face-detector", "mtcnn", "--quiet")
    assert proc.returncode != 0 and "MTCNN" in proc.stderr and "pipeline models fetch MTCNN" in proc.stderr
    assert not store.exists()
    bad = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--min-face", "2")
    assert bad.returncode != 0 and "--min-face" in bad.stderr


def test_two_subject_video_gives_each_side_its_own_face(mtcnn_dir):
    """Aff-Wild2's `_left`/`_right` annotations are two subjects of one video: each gets its own face, and the
    side is part of the faces extractors' cache key (the two results are never shared)."""
    import pandas as pd

    from pipeline.engine.plan import _extra, clip_sources
    from pipeline.media.face import face_key

    left, right = synth.face_image(150), synth.face_image(190)
    canvas = np.full((220, 520, 3), 90, np.uint8)
    canvas[10:160, 20:170], canvas[15:205, 310:500] = left, right
    frames = np.stack([canvas] * 6)
    centre = {}
    for subject in (None, "left", "right"):
        stage = FaceStage(FaceConfig(detect_every=5), [FaceCrop(112)], subject)
        (seg,) = _run(stage, frames).values()
        assert seg.found.all()
        box = stage.tracker.box
        centre[subject] = (box[0] + box[2]) / 2
    assert centre[None] > 260 and centre["right"] > 260 and centre["left"] < 260  # default: the most prominent
    manifest = pd.DataFrame({"clip_id": ["v1_left", "v1_right", "v2"], "media_path": ["v1.mp4", "v1.mp4", "v2.mp4"],
                             "audio_path": None, "start": None, "end": None,
                             "subject_position": ["left", "right", "main"]})
    srcs = clip_sources(manifest)
    assert [s.subject for s in srcs] == ["left", "right", None]
    key = face_key(FaceConfig(detector="haar"))
    assert _extra(key, srcs[0]) != _extra(key, srcs[1]) and _extra(key, srcs[2]) == key
