"""Methods: each one small module over the interface in ``base.py``."""

from __future__ import annotations

from .base import Budget, GenConfig, Job, Method
from .dense import Dense
from .randomkv import Random
from .speckv import SnapKV, SpecKV, SpecKVConfig
from .speckvpc import SpecKVPC
from .specpc import SpecPC, SpecPCConfig
from .streaming import Streaming
from .truncate import Truncate

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (Dense, SpecPC, SpecKV, SpecKVPC, SnapKV, Streaming, Truncate, Random)
}


def method_names() -> list[str]:
    return list(METHODS)


def make_method(name: str, **kwargs) -> Method:
    """Build a method by name. Keyword arguments each method may use: ``budget``, ``budget_pc``
    (``Budget``), ``cfg`` (``SpecPCConfig``), ``speckv`` (``SpecKVConfig``), ``n_predict``,
    ``seed``; a method ignores the ones it does not use."""
    from ..errors import ConfigError

    try:
        cls = METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
    return cls(**kwargs)


__all__ = ["Budget", "GenConfig", "Job", "Method", "METHODS", "make_method", "method_names",
           "SpecPCConfig", "SpecKVConfig"]
