"""A local file written whole or not at all, and no temporary left when a signal lands mid-write.

CI once found ``checkpoint.pt.tmp`` beside a checkpoint after SIGTERM stopped training: the signal's
KeyboardInterrupt had landed inside ``torch.save``. Here a real process saves checkpoints in a loop under the
trainer's signal handling and receives a real SIGTERM while it writes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stores.atomic_file import write_atomic
from tests.helpers.cli import ROOT

LOOP = """
import sys, torch
from pathlib import Path
from pipeline.runtime.stop import TrainingSignals
from train.trainer import save_atomic
path = Path(sys.argv[1])
state = {"w": torch.randn(4_000_000)}
signals = TrainingSignals()
try:
    with signals:
        print("saving", flush=True)
        while True:
            save_atomic(state, path)
except KeyboardInterrupt:
    sys.exit(signals.exit_code())
"""


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text("old")

    def half_then_interrupted(tmp: Path) -> None:
        tmp.write_text("new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, half_then_interrupted)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    write_atomic(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


@pytest.mark.parametrize("after_s", [0.5, 0.77, 1.13])
def test_sigterm_while_saving_checkpoints_leaves_the_last_whole_one_and_no_temporary(tmp_path: Path,
                                                                                     after_s: float) -> None:
    import torch

    ckpt = tmp_path / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-c", LOOP, str(ckpt)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(after_s)  # several 16 MB saves in: the signal lands inside one of them most of the time
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert torch.load(ckpt, weights_only=True)["w"].shape == (4_000_000,)
