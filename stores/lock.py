"""One writer at a time per store: an OS lock that dies with its process (so `kill -9` leaves none)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from stores.errors import StoreLockedError
from stores.fs import StoreFS


class StoreLock:
    """``fcntl.flock`` on ``<store>/.lock`` for local stores.

    The kernel releases it when the holder exits, however it exits, so a crashed run never blocks the
    next one. Remote (object-store) URLs have no such lock: runs against them must not overlap, which
    the store tolerates anyway (parts are content-addressed, commits are whole files).
    """

    def __init__(self, fs: StoreFS) -> None:
        self.fs = fs
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        if not self.fs.is_local:
            return self
        path = Path(self.fs.path(".lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise StoreLockedError(
                f"store {self.fs.url} is in use by another run ({holder}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def held_by(fs: StoreFS) -> str | None:
        """Who holds the store's lock now ("pid ..., host ..., since ..."), or None (free, or a remote store)."""
        if not fs.is_local or not fs.exists(".lock"):
            return None
        fd = os.open(fs.path(".lock"), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
        finally:
            os.close(fd)  # closing drops a lock taken just now
        return None

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
