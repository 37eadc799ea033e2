"""Methods: each one small module over the interface in ``base.py``."""

from __future__ import annotations

from .base import Budget, GenConfig, Job, Method
from .dense import Dense
from .specpc import SpecPC, SpecPCConfig

METHODS: dict[str, type[Method]] = {m.name: m for m in (Dense, SpecPC)}


def method_names() -> list[str]:
    return list(METHODS)


def make_method(name: str, **kwargs) -> Method:
    """Build a method by name; ``kwargs`` are passed to its constructor (budget, configs)."""
    from ..errors import ConfigError

    try:
        cls = METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
    return cls(**kwargs)


__all__ = ["Budget", "GenConfig", "Job", "Method", "METHODS", "make_method", "method_names",
           "SpecPCConfig"]
