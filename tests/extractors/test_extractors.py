"""Extractor interface, registry, and the numerics of the offline extractors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from extractors import registry
from extractors.base import AudioSegment, Extractor
from pipeline.media import synth
from tests.helpers.reference_features import reference_logmel


def test_registry_lists_offline_extractors_and_rejects_unknown_names():
    assert {"logmel", "linear_spectrogram", "egemaps", "face_hog"} <= set(registry.names())
    with pytest.raises(KeyError, match="unknown extractor 'nope'.*logmel"):
        registry.get("nope")
    with pytest.raises(ValueError, match="no option.*'bogus'"):
        registry.make_config("logmel", {"bogus": 1})


def test_registry_fails_loudly_on_duplicates_and_unfrozen_configs():
    @dataclass(frozen=True)
    class Cfg:
        pass

    with pytest.raises(ValueError, match="duplicate extractor name 'logmel'"):
        registry.register_extractor(type("Other", (Extractor,), {"name": "logmel", "Config": Cfg}))

    @dataclass
    class Mutable:
        pass

    with pytest.raises(TypeError, match="frozen dataclass"):
        registry.register_extractor(type("Bad", (Extractor,), {"name": "bad_cfg_test", "Config": Mutable}))


def test_logmel_matches_an_independent_computation_and_the_frame_convention():
    x = synth.voice(1.0, 150, 4, 0.5, seed=1, sample_rate=16000)
    ext = registry.create("logmel")
    (f,) = ext.compute([AudioSegment("c", x)])
    ref = reference_logmel(x.astype(np.float64))
    assert f.values.shape == ref.shape == (1 + (16000 - 400) // 160, 64)
    np.testing.assert_allclose(f.values, ref, atol=2e-3)
    np.testing.assert_allclose(f.start[:3], [0.0, 0.01, 0.02])
    np.testing.assert_allclose(f.end[:3], [0.025, 0.035, 0.045])
    assert ext.rate == 100.0 and len(ext.feature_names) == 64


def test_linear_spectrogram_and_configurable_mel_bands():
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    (lin,) = registry.create("linear_spectrogram").compute([AudioSegment("c", x)])
    assert lin.values.shape == (1 + (8000 - 400) // 160, 257)
    (m40,) = registry.create("logmel", {"n_mels": 40}).compute([AudioSegment("c", x)])
    assert m40.values.shape[1] == 40
    (short,) = registry.create("logmel").compute([AudioSegment("c", x[:100])])
    assert short.values.shape == (1, 64)  # shorter than one window: padded to one frame


def test_egemaps_lld_shape_rate_and_determinism():
    x = synth.voice(1.5, 180, 4, 0.5, seed=2, sample_rate=16000)
    ext = registry.create("egemaps")
    (a,) = ext.compute([AudioSegment("c", x, t0=0.0)])
    (b,) = ext.compute([AudioSegment("c", x, t0=0.0)])
    assert a.values.shape[1] == 25 and ext.dim == 25
    assert abs(len(a) - 150) <= 6  # 10 ms hop
    np.testing.assert_array_equal(a.values, b.values)
    assert np.all(np.diff(a.start) > 0)
    compare = registry.create("egemaps", {"feature_set": "ComParE_2016"})
    assert compare.dim == 65
    with pytest.raises(ValueError, match="feature_set"):
        registry.make_config("egemaps", {"feature_set": "GeMAPS_bogus"})


def test_setup_runs_once_when_tasks_in_several_threads_share_an_instance():
    """A worker with several threads runs tasks that share one instance (registry.instance): the model is
    loaded once, and never by two threads at once (transformers' lazy imports are not thread-safe)."""
    import threading
    import time

    from extractors.base import Extractor

    class Slow(Extractor):
        name, modality, input = "slow_setup_probe", "audio", "audio"
        calls, active, overlap = 0, 0, False

        def setup(self, device: str = "cpu") -> None:
            type(self).active += 1
            type(self).overlap |= type(self).active > 1
            time.sleep(0.2)
            type(self).calls += 1
            type(self).active -= 1

    ext = Slow()
    threads = [threading.Thread(target=ext.ensure_setup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Slow.calls == 1 and not Slow.overlap


def test_every_extractor_refuses_option_values_of_the_wrong_type_or_range_before_any_work():
    """For every registered extractor and every numeric option that defaults > 0 (sizes, counts, durations):
    a non-positive value and a value of another type are refused by name; the defaults pass."""
    import dataclasses

    from extractors.registry import ZERO_ALLOWED

    checked = 0
    for name in registry.names():
        cfg = registry.get(name).Config
        registry.make_config(name, {})
        for f in dataclasses.fields(cfg):
            default = getattr(cfg(), f.name)
            if isinstance(default, bool) or not isinstance(default, int | float) or not default > 0:
                continue
            bad = -1 if f.name in ZERO_ALLOWED else 0
            with pytest.raises(ValueError, match=rf"option {f.name} must be"):
                registry.make_config(name, {f.name: type(default)(bad)})
            with pytest.raises(ValueError, match=rf"option {f.name}="):
                registry.make_config(name, {f.name: "forty"})
            checked += 1
    assert checked >= 30  # sizes, counts and durations of the built-in extractors
