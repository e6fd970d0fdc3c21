"""A stand-in for OpenFace's FeatureExtraction: writes CSVs in OpenFace 2.2.0's exact schema.

What it does depends on the video's file name: ``crash`` (exit 1, no CSV), ``hang`` (sleeps),
``empty`` (empty CSV), ``trunc`` (last row cut), ``badheader`` (no AU columns), ``noface`` (success 0),
``lowconf`` (confidence 0.5 on odd frames); anything else is a normal run, one row per video frame.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "openface" / "openface-2.2.0-video2-head.csv"
AUS = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45"]


def header() -> list[str]:
    if SHARED.exists():
        return [c.strip() for c in SHARED.read_text().splitlines()[0].split(",")]
    cols = ["frame", "face_id", "timestamp", "confidence", "success"]
    cols += [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    cols += [f"eye_lmk_{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(56)]
    cols += [f"pose_{a}" for a in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]
    cols += [f"{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(68)]
    cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)]
    cols += [f"AU{a}_r" for a in AUS] + [f"AU{a}_c" for a in sorted(AUS + ["28"])]
    return cols


def main(argv: list[str]) -> int:
    video = Path(argv[argv.index("-f") + 1])
    out = Path(argv[argv.index("-out_dir") + 1])
    name = video.stem
    if "crash" in name:
        print("Segmentation fault (core dumped) while tracking", file=sys.stderr)
        return 1
    if "hang" in name:
        time.sleep(120)
    import av

    with av.open(str(video)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate)
        frames = s.frames or sum(1 for _ in c.decode(s))  # one row per video frame, as OpenFace
    cols = header()
    if "badheader" in name:
        cols = [c for c in cols if not c.startswith("AU")]
    rows = []
    for i in range(frames):
        row = {c: "0.0" for c in cols}
        row.update(frame=str(i + 1), face_id="0", timestamp=f"{i / fps:.3f}",
                   confidence="0.50" if "lowconf" in name and i % 2 else "0.98",
                   success="0" if "noface" in name else "1")
        for k, a in enumerate(AUS):
            if f"AU{a}_r" in row:
                row[f"AU{a}_r"] = f"{(k + i) % 5:.2f}"
        rows.append(", ".join(row[c] for c in cols))  # older OpenFace: a space after every comma
    text = ", ".join(cols) + "\n" + "\n".join(rows) + "\n"
    if "empty" in name:
        text = ""
    if "trunc" in name:
        text = text[: len(text) * 2 // 3]
    (out / f"{name}.csv").write_text(text)
    return 0  # OpenFace exits 0 even when it failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
