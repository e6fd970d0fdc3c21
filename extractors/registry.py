"""The one extractor registry: a decorator that fails loudly on duplicates and unknown names."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from extractors import builtins
from extractors.base import Extractor

_REGISTRY: dict[str, type[Extractor]] = {}
_INSTANCES: dict[tuple[str, str], Extractor] = {}
E = TypeVar("E", bound=type[Extractor])

class UnknownExtractorError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def register_extractor(cls: E) -> E:
    """Class decorator: add ``cls`` to the registry under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__qualname__} has no string `name`; every extractor needs one")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        other = _REGISTRY[name]
        raise ValueError(
            f"duplicate extractor name {name!r}: {cls.__module__}.{cls.__qualname__} "
            f"and {other.__module__}.{other.__qualname__}"
        )
    if not dataclasses.is_dataclass(cls.Config) or not cls.Config.__dataclass_params__.frozen:
        raise TypeError(f"{name}: Config must be a frozen dataclass")
    _REGISTRY[name] = cls
    return cls


def load_builtins() -> None:
    builtins.load()


def names() -> list[str]:
    load_builtins()
    return sorted(_REGISTRY)


#: ``NAME@WEIGHTS``: extractor NAME with its ``weights`` option set to WEIGHTS, stored as a stream of its own,
#: so features of fine-tuned weights (one per fold, say) live beside the public checkpoint's in one store.
STREAM = re.compile(r"^([a-z0-9_]+)@([A-Za-z0-9_-]+)$")


def base_name(name: str) -> str:
    """The registered extractor behind a stream name (``bert@BERT_FOLD0`` -> ``bert``)."""
    m = STREAM.match(name)
    return m.group(1) if m else name


def get(name: str) -> type[Extractor]:
    load_builtins()
    try:
        return _REGISTRY[base_name(name)]
    except KeyError:
        raise UnknownExtractorError(
            f"unknown extractor {name!r}; known extractors: {', '.join(sorted(_REGISTRY))}"
        ) from None


def make_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """Build the extractor's frozen config from overrides, rejecting unknown fields by name."""
    cls = get(name)
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    m = STREAM.match(name)
    if m:
        if "weights" not in fields:
            raise ValueError(f"{name!r}: {m.group(1)} has no learned weights; NAME@WEIGHTS names a stream of an "
                             "extractor with a weights option (e.g. bert@BERT_FOLD0)")
        overrides.setdefault("weights", m.group(2))
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"extractor {name!r} has no option(s) {unknown}; its options are {sorted(fields) or 'none'}"
        )
    for key, value in list(overrides.items()):
        default = getattr(cls.Config(), key)
        if isinstance(default, tuple) and isinstance(value, list):
            overrides[key] = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[key] = float(value)
        _check_type(name, key, overrides[key], default)
        _check_range(name, key, overrides[key], default)
    return cls.Config(**overrides)


#: Options whose default is > 0 but for which 0 means something (a band from 0 Hz, no tolerance).
ZERO_ALLOWED = frozenset({"fmin", "frame_tolerance"})


def _check_range(name: str, key: str, value: Any, default: Any) -> None:
    """A size, count, duration or rate (an option whose default is > 0) stays > 0: ``n_mels=-3`` or
    ``batch_frames=0`` is refused before any work, for every extractor, the user's own too."""
    if isinstance(default, bool) or not isinstance(default, int | float) or not default > 0:
        return
    low_ok = key in ZERO_ALLOWED
    if not (value >= 0 if low_ok else value > 0):
        raise ValueError(f"extractor {name!r}: option {key} must be {'>= 0' if low_ok else '> 0'}, got {value!r}")


def _check_type(name: str, key: str, value: Any, default: Any) -> None:
    """An option's value has its default's type (``--set logmel.n_mels=forty`` is refused before any work, as in
    a dry run; a ``None`` default takes anything its extractor's own checks accept)."""
    if default is None:
        return
    want = bool if isinstance(default, bool) else int if isinstance(default, int) else type(default)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if not ok:
        raise ValueError(f"extractor {name!r}: option {key}={value!r} must be {want.__name__} "
                         f"(the default is {default!r}); e.g. --set {name}.{key}={default!r}")


@dataclass(frozen=True)
class ExtractorSpec:
    """A requested extractor with its config validated once (on the driver): what travels to the workers."""

    name: str
    config: Any  # the extractor's frozen Config

    def create(self) -> Extractor:
        return get(self.name)(self.config)


def spec(name: str, overrides: dict[str, Any] | None = None) -> ExtractorSpec:
    """Validate ``overrides`` (from the CLI, a preset or a YAML file) into a spec; raises KeyError/ValueError."""
    return ExtractorSpec(name, make_config(name, overrides))


def create(name: str, overrides: dict[str, Any] | None = None) -> Extractor:
    return spec(name, overrides).create()


def instance(s: ExtractorSpec) -> Extractor:
    """A per-process cached instance, so a worker loads each model once and reuses it for every task."""
    ext = s.create()
    key = (s.name, ext.fingerprint())
    if key not in _INSTANCES:
        _INSTANCES[key] = ext
    return _INSTANCES[key]

