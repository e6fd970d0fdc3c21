"""Entry points: extract/status/verify/demo (main), training, experiments, models. ``pipeline`` is ``app``."""

from pipeline.cli.main import app

__all__ = ["app"]
