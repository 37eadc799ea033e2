"""Methods: each one small module over the interface in ``base.py``."""

from __future__ import annotations

from .base import Budget, GenConfig, Job, Method
from .catalog import BUILTIN, COMMON
from .dense import Dense
from .randomkv import Random
from .setting import Setting
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


def method_class(name: str) -> type[Method]:
    from ..errors import ConfigError

    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def taken(cls: type[Method]) -> dict[Setting, list]:
    """The settings method ``cls`` takes, each with its defaults there (``--budget``/``--keep``
    for every method, then those its ``settings`` arguments bind)."""
    out: dict[Setting, list] = {s: [] for s in COMMON}
    for part in cls.settings.values():
        for s, default in part.settings():
            out.setdefault(s, []).append(default)
    return out


def all_settings() -> list[Setting]:
    """Every registered method's settings: the built-in ones in ``catalog`` order, then the others
    in registry order."""
    seen = {s: None for cls in METHODS.values() for s in taken(cls)}
    return [s for s in BUILTIN if s in seen] + [s for s in seen if s not in BUILTIN]


def method_setting() -> Setting:
    """``--method`` (and the server's ``method`` field): one of the registered methods."""
    return Setting("method", ("--method",), str, choices=tuple(METHODS),
                   help="Compression method [default: specpc with a draft, else dense].")


def method_flags() -> list[Setting]:
    """``--method``, then every registered method's settings: the flags of ``specllama run`` and
    the fields of a server request's ``specllama`` object."""
    return [method_setting(), *all_settings()]


def owners(s: Setting) -> list[str]:
    """The registered methods that take ``s``."""
    return [name for name, cls in METHODS.items() if s in taken(cls)]


def make_method(name: str, **kwargs) -> Method:
    """Build a method by name. Keyword arguments each method may use: ``budget``, ``budget_pc``
    (``Budget``), ``cfg`` (``SpecPCConfig``), ``speckv`` (``SpecKVConfig``), ``n_predict``,
    ``seed``; a method ignores the ones it does not use."""
    return method_class(name)(**kwargs)


__all__ = ["Budget", "GenConfig", "Job", "Method", "METHODS", "Setting", "all_settings", "make_method",
           "method_class", "method_flags", "method_names", "method_setting", "owners", "taken", "SpecPCConfig",
           "SpecKVConfig"]
