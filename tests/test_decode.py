"""Decoding once with PyAV: timestamps, audio resampling, segments by seeking, bounded windows."""

import numpy as np
import pytest

from pipeline import synth
from pipeline.decode import ClipDecoder, ClipSource, probe
from pipeline.errors import ClipError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    frames = synth.animate_face(synth.face_image(), 100, 25, 0, 1, 1, 1, 0)
    synth.write_clip(path, frames, 25, synth.voice(4.0, 150, 4, 0.5, 0, sample_rate=48000), sample_rate=48000)
    return path


def test_whole_clip_frames_timestamps_and_audio(clip):
    d = ClipDecoder(ClipSource("c", str(clip)), want_video=True, want_audio=True, window_frames=16)
    windows = list(d.windows())
    assert [len(w.frames) for w in windows] == [16] * 6 + [4]
    assert windows[-1].last and not windows[0].last
    times = np.concatenate([w.times for w in windows])
    np.testing.assert_allclose(times, np.arange(100) / 25, atol=1e-6)
    np.testing.assert_allclose(windows[0].ends[:-1], windows[0].times[1:])
    assert d.audio.dtype == np.float32 and abs(len(d.audio) / 16000 - 4.0) < 0.05
    assert d.video_duration == pytest.approx(4.0)
    info = probe(str(clip))
    assert info.has_video and info.has_audio and info.fps == 25 and info.frames == 100


def test_segment_is_reached_by_seeking_and_trimmed(clip):
    d = ClipDecoder(ClipSource("c", str(clip), start=2.0, end=3.0), True, True)
    frames = [w for w in d.windows()]
    times = np.concatenate([w.times for w in frames])
    assert len(times) == 25 and times[0] == pytest.approx(0.0) and times[-1] == pytest.approx(0.96)
    assert len(d.audio) == 16000


def test_variable_frame_rate_keeps_real_timestamps(tmp_path):
    import av

    path = tmp_path / "vfr.mkv"
    img = synth.face_image(64)
    pts = [0, 1, 2, 5, 6, 12]  # in 1/25 s: gaps make it variable-rate
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = __import__("fractions").Fraction(1, 25)
        for p in pts:
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = p, s.codec_context.time_base
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    (w,) = list(ClipDecoder(ClipSource("v", str(path)), True, False).windows())
    np.testing.assert_allclose(w.times, np.array(pts) / 25, atol=1e-3)
    np.testing.assert_allclose(w.ends[:-1], np.array(pts[1:]) / 25, atol=1e-3)


def test_missing_stream_and_bad_files_are_clip_errors(tmp_path, clip):
    wav = tmp_path / "a.wav"
    synth.write_wav(wav, np.zeros(16000, np.float32))
    with pytest.raises(ClipError, match="no video stream"):
        list(ClipDecoder(ClipSource("a", str(wav)), True, True).windows())
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ClipError, match="^open: not a readable media file"):
        list(ClipDecoder(ClipSource("j", str(junk)), True, True).windows())
