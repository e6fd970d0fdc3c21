"""The installed package's version, from its metadata (one source: pyproject.toml), for the store's attrs."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    """``0.1.0``; ``unknown`` when run from a tree that was never installed."""
    try:
        return metadata.version("affect-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


PACKAGE = f"affect-pipeline {package_version()}"
