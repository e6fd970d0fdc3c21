"""Ctrl-C and SIGTERM for a running driver: the first asks for a clean stop, the second exits at once.

SLURM sends SIGTERM at walltime and on ``scancel`` of a batch driver; a terminal sends SIGINT. Either
way the run stops submitting, gives running tasks a short grace period to commit (commits are
idempotent, so abandoning them is also safe), closes the cluster, says what is committed and how to
resume, and exits 130 (SIGINT) or 143 (SIGTERM), as shells expect.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(Exception):
    """The run ended before its work was done; ``code`` is the process exit status to use."""

    def __init__(self, message: str, code: int, report: Any = None) -> None:
        super().__init__(message)
        self.code, self.report = code, report


class _Handlers:
    """Installs ``_handle`` for SIGINT and SIGTERM in the main thread, whatever the process inherited (a
    script's background job starts with SIGINT ignored), and restores the old handlers on exit."""

    _old: dict[int, Any]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}


class StopSignals(_Handlers):
    """Context manager: installs the two-step handlers in the main thread, restores the old ones on exit."""

    def __init__(self, announce: Any = None) -> None:
        self.signum: int | None = None
        self._announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def exit_code(self) -> int:
        return 128 + int(self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._announce(f"{signal.Signals(signum).name} again: exiting now. Everything committed so far is kept; "
                           "run the same command to resume.")
            os._exit(128 + signum)
        self.signum = signum
        self._announce(f"{signal.Signals(signum).name}: stopping — no new tasks; running tasks get a few seconds to "
                       "commit. Press Ctrl-C again to exit at once.")


class TrainingSignals(_Handlers):
    """Context manager for training in the main thread: SIGINT and SIGTERM raise KeyboardInterrupt.

    Training checkpoints every epoch (written then renamed, so a stop never leaves half a file) and
    resumes from the last one, so stopping mid-epoch loses at most that epoch. Both handlers are
    installed explicitly, as extraction's are: a process started in the background of a script inherits
    SIGINT *ignored*, and Python's own Ctrl-C handling would then never fire. ``exit_code`` is 130
    (SIGINT) or 143 (SIGTERM)."""

    def __init__(self) -> None:
        self.signum = signal.SIGINT

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        raise KeyboardInterrupt

    def exit_code(self) -> int:
        return 128 + int(self.signum)
