"""Errors the store raises: each is one line that names the store and the fix (the CLI prints it, exit 2)."""

from __future__ import annotations


class StoreError(ValueError):
    """The store cannot be used as asked (a manifest that does not fit, a file that is not a store, ...)."""


class StoreLockedError(RuntimeError):
    """Another run holds the store's lock."""


class DamagedFile(StoreError):
    """A file of the store cannot be read (truncated, overwritten); ``path`` is relative to the store."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path
