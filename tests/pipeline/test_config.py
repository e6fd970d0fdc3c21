"""ExtractConfig.create: the one constructor the CLI, the demo and the presets use."""

from __future__ import annotations

import pytest

from pipeline.engine.config import ExtractConfig
from pipeline.errors import ConfigError


def test_a_presets_options_and_set_items_merge_and_are_validated_once_into_specs(tmp_path):
    cfg = ExtractConfig.create("demo", tmp_path, tmp_path / "s", extractors={"logmel": {"n_mels": 40}},
                               settings=["logmel.fmin=0"], rate=10)
    assert cfg.extractors == {"logmel": {"n_mels": 40, "fmin": 0}}
    assert cfg.specs["logmel"].config.n_mels == 40 and cfg.specs["logmel"].config.fmin == 0.0
    assert cfg.align.view == "10hz"
    assert ExtractConfig.create("demo", tmp_path, tmp_path / "s").specs.keys() >= {"logmel", "face_hog"}
    with pytest.raises(ConfigError, match="n_mels"):
        ExtractConfig.create("demo", tmp_path, tmp_path / "s", extractors="logmel", settings=["logmel.n_mels=0"])
