"""Synthetic audio-visual media: a speaking voice and a moving real face, written with PyAV.

Used by the embedded demo and by the tests, which need media in real containers (mp4/flv/wav) that go
through the real decoder and the real face detector.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def voice(
    duration: float,
    f0: float,
    syllable_rate: float,
    energy: float,
    seed: int,
    sample_rate: int = 44100,
) -> np.ndarray:
    """A voiced, syllabic signal: harmonics of a gliding f0 under a syllable envelope, plus breath noise."""
    rng = np.random.default_rng(seed)
    n = int(duration * sample_rate)
    t = np.arange(n) / sample_rate
    glide = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(glide) / sample_rate
    harmonics = sum((0.6**k) * np.sin(k * phase) for k in range(1, 8))
    syll = 0.5 - 0.5 * np.cos(2 * np.pi * syllable_rate * t + rng.uniform(0, 6))
    env = syll**2 * np.clip(t / 0.05, 0, 1) * np.clip((duration - t) / 0.05, 0, 1)
    x = energy * env * harmonics / 3 + 0.003 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)


def face_image(size: int = 240) -> np.ndarray:
    """A real photograph of a face (scikit-image's astronaut), cropped around the face, RGB uint8."""
    import cv2
    from skimage import data

    img = data.astronaut()[10:290, 120:400]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def animate_face(
    base: np.ndarray, n_frames: int, fps: float, angle: float, scale: float, brightness: float,
    squash: float, seed: int,
) -> Iterable[np.ndarray]:
    """Frames of ``base`` warped by a class-specific pose and expression proxy, moving over time."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = base.shape[:2]
    ph = rng.uniform(0, 6, size=3)
    for i in range(n_frames):
        t = i / fps
        a = angle + 3 * np.sin(2 * np.pi * 0.5 * t + ph[0])
        s = scale * (1 + 0.03 * np.sin(2 * np.pi * 0.8 * t + ph[1]))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), a, s)
        m[1, :2] *= squash
        m[0, 2] += 4 * np.sin(2 * np.pi * 0.3 * t + ph[2])
        frame = cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        yield np.clip(frame.astype(np.float32) * brightness, 0, 255).astype(np.uint8)


def write_clip(
    path: str | Path,
    frames: Iterable[np.ndarray] | None,
    fps: float,
    audio: np.ndarray | None,
    sample_rate: int = 44100,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    display_rotation: float | None = None,
) -> None:
    """Mux frames (RGB uint8) and mono audio into one container; either may be None (one-stream files).
    ``display_rotation``: degrees counter-clockwise a player turns the frames (a display matrix, as phones write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = as_ = None
        frames = iter(frames) if frames is not None else None
        first = next(frames) if frames is not None else None
        if first is not None:
            vs = out.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height = first.shape[1], first.shape[0]
            vs.pix_fmt = "yuv420p"
            if display_rotation is not None:
                vs.set_display_rotation(display_rotation)
            if video_codec == "libx264":
                vs.options = {"preset": "ultrafast", "crf": "23"}
        if audio is not None:
            as_ = out.add_stream(audio_codec, rate=sample_rate)
            as_.layout = "mono"
        if vs is not None:
            for img in _chain(first, frames):
                for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if as_ is not None:
            _encode_audio(out, as_, audio, sample_rate)


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _encode_audio(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  audio: np.ndarray, sr: int) -> None:
    fmt = "s16" if stream.codec_context.name.startswith("pcm_s16") else "fltp"
    step = stream.codec_context.frame_size or 1024
    for i in range(0, len(audio), step):
        chunk = audio[i : i + step][None, :]
        if fmt == "s16":
            chunk = (chunk * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
        frame.sample_rate = sr
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    write_clip(path, None, 25, audio, sample_rate, audio_codec="pcm_s16le")
