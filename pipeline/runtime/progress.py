"""Progress of a run in clips *and* media seconds: a bar on a terminal, periodic plain lines otherwise.

In a SLURM batch job stderr is a file: a bar would show nothing until the end, so there the run prints
one line every ``every`` seconds. Workers report how far into a clip they are (``report`` below, sent as
Dask events), so a single 10-minute video moves the numbers long before its task ends.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def _hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunProgress:
    """Thread-safe counters (worker events arrive on the client's thread) plus their display."""

    def __init__(self, console: Console, total_clips: int, enabled: bool = True, every: float = 30.0,
                 label: str = "extract", unit: str = "clips") -> None:
        self.console, self.total, self.enabled, self.every, self.label = console, total_clips, enabled, every, label
        self.unit = unit  # "clips" counts media seconds too; anything else (verify's "parts") does not
        self.done_clips, self.media_done = 0, 0.0
        self.partial: dict[tuple[int, str], tuple[float, float]] = {}  # (shard, clip) -> (seconds done, of)
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._t0 = self._last_line = time.perf_counter()

    # -- counting ------------------------------------------------------------------------------
    def event(self, event: tuple[float, dict]) -> None:
        """A worker's note that it reached second ``at`` of ``of`` in a clip of a shard."""
        msg = event[1] if isinstance(event, tuple) else event
        with self._lock:
            self.partial[(int(msg["shard"]), str(msg["clip"]))] = (float(msg["at"]), float(msg.get("of") or 0.0))

    def shard_done(self, shard: int, clips: int, media_s: float) -> None:
        with self._lock:
            self.done_clips += clips
            self.media_done += media_s
            for k in [k for k in self.partial if k[0] == shard]:
                del self.partial[k]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            frac_in_flight = sum(min(1.0, a / o) for a, o in self.partial.values() if o > 0)
            media = self.media_done + sum(a for a, _ in self.partial.values())
            done = self.done_clips
        elapsed = time.perf_counter() - self._t0
        fraction = min(1.0, (done + frac_in_flight) / self.total) if self.total else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        return {"clips": done, "total": self.total, "media_s": media, "elapsed": elapsed, "fraction": fraction,
                "eta": eta, "clips_per_s": done / elapsed if elapsed > 0 else 0.0,
                "realtime": media / elapsed if elapsed > 0 else 0.0}

    def line(self) -> str:
        s = self.snapshot()
        eta = _hms(s["eta"]) if s["eta"] == s["eta"] else "?"
        media = (f"{s['media_s']:.0f} s of media, " if self.unit == "clips" else "")
        speed = f"{s['realtime']:.1f}x real time, " if self.unit == "clips" else ""
        return (f"{self.label}: {s['clips']}/{s['total']} {self.unit} ({100 * s['fraction']:.1f} %), {media}"
                f"{s['clips_per_s']:.2f} {self.unit}/s, {speed}elapsed {_hms(s['elapsed'])}, ETA {eta}")

    # -- display -------------------------------------------------------------------------------
    def tick(self) -> None:
        """Refresh the bar, or print a plain line when ``every`` seconds have passed."""
        if not self.enabled:
            return
        if self._bar is not None:
            s = self.snapshot()
            self._bar.update(self._task, completed=s["fraction"] * self.total,
                             info=self.line().split(": ", 1)[1])
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every:
            self._last_line = now
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def __enter__(self) -> RunProgress:
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(TextColumn(self.label), BarColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=max(1, self.total), info="starting")
        elif self.enabled:
            self.console.print(f"{self.label}: {self.total} {self.unit} to process; a progress line every "
                               f"{self.every:g} s", highlight=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self.tick()
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled:
            self.console.print(self.line(), highlight=False, soft_wrap=True)
