"""Errors that name the clip, the stage and the fix, so a failure row is one readable line."""

from __future__ import annotations

from stores.errors import StoreError, StoreLockedError

__all__ = ["ClipError", "ConfigError", "StoreError", "StoreLockedError", "describe_exception"]


class ClipError(Exception):
    """One clip could not be processed at one stage; the run records it and carries on."""

    def __init__(self, stage: str, cause: str, fix: str = "") -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage, self.cause, self.fix = stage, cause, fix

    def line(self) -> str:
        return f"{self.stage}: {self.cause}" + (f" ({self.fix})" if self.fix else "")


class ConfigError(ValueError):
    """A bad argument or configuration file, rejected before any work starts."""


def describe_exception(stage: str, exc: BaseException) -> str:
    """A one-line reason for an unexpected exception inside a stage."""
    if isinstance(exc, ClipError):
        return exc.line()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{stage}: {type(exc).__name__}: {text}"[:500]
