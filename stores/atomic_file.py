"""A local file written whole or not at all: to ``NAME.tmp`` beside it, then renamed into place.

Checkpoints, run results and fine-tuning state are written this way so that a stop mid-write keeps the
previous file. The temporary is removed when the write is interrupted too: training turns SIGINT/SIGTERM
into a KeyboardInterrupt that can land inside ``torch.save``, and a stopped run must leave no ``.tmp``
behind (CI caught one beside a checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``; on any exception, KeyboardInterrupt included, the
    temporary is removed and ``path`` is as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
