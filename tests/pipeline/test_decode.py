"""Decoding once with PyAV: timestamps, audio resampling, segments by seeking, bounded windows."""

import numpy as np
import pytest

from pipeline.errors import ClipError
from pipeline.media import synth
from pipeline.media.decode import ClipDecoder, ClipSource, probe


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


def _stereo_wav(path, left: np.ndarray, right: np.ndarray, rate: int) -> None:
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=rate)
        s.layout = "stereo"
        pcm = (np.stack([left, right], 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = rate, 0
        for packet in s.encode(frame):
            out.mux(packet)
        for packet in s.encode():
            out.mux(packet)


def test_stereo_audio_is_the_channel_mean_resampled_with_a_flat_passband(tmp_path):
    """Against an independent computation: (L+R)/2 (not FFmpeg's (L+R)/sqrt(2)), resampled 44.1 -> 16 kHz by
    scipy's polyphase filter; a 7 kHz tone (inside the 8 kHz band) keeps its level, 9.5 kHz is removed."""
    from scipy.signal import resample_poly

    rate, n = 44100, 44100 * 2
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 7000 * t) + 0.02 * rng.normal(size=n)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 9500 * t)
    _stereo_wav(tmp_path / "s.wav", left, right, rate)
    d = ClipDecoder(ClipSource("s", str(tmp_path / "s.wav")), want_video=False, want_audio=True)
    list(d.windows())
    ref = resample_poly((left + right) / 2, 160, 441)
    got = d.audio[: len(ref)]
    core = slice(1600, len(ref) - 1600)  # away from the edges, where the two filters' transients differ
    gain = np.sqrt(np.mean(got[core] ** 2) / np.mean(ref[core] ** 2))
    assert gain == pytest.approx(1.0, abs=0.01)  # FFmpeg's mono downmix would give 1.414
    err = np.sum((got[core] - ref[core]) ** 2) / np.sum(ref[core] ** 2)
    assert 10 * np.log10(err) < -30  # two different good filters: they differ only near the band edge
    spec = np.abs(np.fft.rfft(got[core] * np.hanning(len(got[core]))))
    freqs = np.fft.rfftfreq(len(got[core]), 1 / 16000)
    level = {f: spec[np.argmin(np.abs(freqs - f))] for f in (220, 7000, 16000 - 9500)}
    assert level[7000] / level[220] == pytest.approx(0.1 / 0.15, rel=0.02)  # 7 kHz at its level: 0.2/2 vs 0.3/2
    assert level[16000 - 9500] / level[220] < 0.003  # 9.5 kHz would alias to 6.5 kHz: removed
