"""Method settings, declared once.

A :class:`Setting` is one method flag of ``specllama run`` and the field of the same key in a server
request's ``specllama`` object (``--budget-pc`` and ``budget_pc``): its names, type, help and
allowed range. A method's config dataclass binds its fields to settings, and the field's default is
that method's default::

    @dataclass(frozen=True)
    class MyConfig:
        width: int = WIDTH.field(8)        # --my-width, default 8 for this method
        def __post_init__(self):
            validate(self)                 # ranges and choices, errors naming the flag

A method names the constructor arguments built from settings in its ``settings`` class attribute
(``{"cfg": Configured(MyConfig)}``). The front ends generate their click options (``options``) and
server fields (``serve.schema``) from those declarations and build every method through
:func:`specllama.settings.resolve`; nothing else lists a method's flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Callable, Iterator, Mapping

from ..errors import ConfigError
from .base import Budget

SETTING = "specllama.setting"  # field metadata: the Setting a field is bound to
NESTED = "specllama.nested"  # field metadata: {subfield: Setting} for a nested config declared elsewhere
LOWER = "specllama.min"  # field metadata: this method's own lower bound
WHERE = "specllama.where"  # field metadata: words naming the method in that bound's error
CONVERT = "specllama.convert"  # field metadata: flag value -> {field: value} (one flag, several fields)


@dataclass(frozen=True)
class Setting:
    """One method setting as users meet it.

    Attributes:
        key: the key in the front ends' option dicts, and the server's ``specllama.<key>`` field.
        flags: the command-line names, llama.cpp style (``("--budget-pc",)``).
        type: ``int``, ``float``, ``str`` or ``bool`` (an on/off flag).
        help: the flag's help text.
        choices: the allowed values of a ``str`` setting.
        choices_text: how an error names the choices [default: ``one of a, b``].
        min, max: the allowed range of a number, both ends included.
        invert: the flag turns its bound field off (``--no-weighted-query`` -> ``weighted_query``).
        show_default: the flag defaults to (and ``--help`` shows) the default its methods share.
        strict: refuse the setting for a method that does not take it, instead of ignoring it.
    """

    key: str
    flags: tuple[str, ...]
    type: type = int
    help: str | None = None
    choices: tuple[str, ...] = ()
    choices_text: str = ""
    min: float | None = None
    max: float | None = None
    invert: bool = False
    show_default: bool = False
    strict: bool = False

    @property
    def flag(self) -> str:
        """The long flag, as errors name it."""
        return self.flags[-1]

    def check(self, v: Any, lower: float | None = None, where: str = "") -> None:
        """``ConfigError`` naming the flag when ``v`` is outside the range (``lower`` replaces
        ``min``) or the choices; None is always allowed (unset)."""
        lo = self.min if lower is None else lower
        if v is None:
            return
        if self.choices and v not in self.choices:
            words = self.choices_text or "one of " + ", ".join(self.choices)
            raise ConfigError(f"{self.flag} must be {words}, got {v!r}")
        if lo is not None and self.max is not None and not lo <= v <= self.max:
            raise ConfigError(f"{self.flag} must be in {lo}..{self.max}, got {v}")
        if lo is not None and v < lo:
            raise ConfigError(f"{self.flag} must be >= {lo}{' ' + where if where else ''}, got {v}")

    def value(self, v: Any) -> Any:
        """The bound field's value for the given flag value."""
        return (not v) if self.invert else v

    def field(self, default: Any = None, *, min: float | None = None, where: str = "",
              convert: Callable[[Any], dict] | None = None) -> Any:
        """A dataclass field bound to this setting, with this method's ``default``; if given, its own
        lower bound ``min`` (named in errors with ``where``, e.g. ``for specpc``), and ``convert``,
        the fields a flag value sets when it is not simply this field's value (the flag value is
        then checked against the setting's own range)."""
        meta = {SETTING: self, LOWER: min, WHERE: where, CONVERT: convert}
        return dataclasses.field(default=default, metadata=meta)


def nested(factory, **bound: Setting) -> Any:
    """A field holding a config declared elsewhere, with some of its fields bound to settings
    (``attention: AttentionConfig = nested(AttentionConfig, window=WINDOW)``)."""
    return dataclasses.field(default_factory=factory, metadata={NESTED: bound})


def validate(cfg: Any) -> None:
    """Check every bound field of the dataclass ``cfg`` (call it from ``__post_init__``)."""
    for f in fields(cfg):
        s = f.metadata.get(SETTING)
        if s is not None:
            s.check(getattr(cfg, f.name), f.metadata.get(LOWER), f.metadata.get(WHERE, ""))


def bound(cfg: Any, skip: tuple[str, ...] = ()) -> Iterator[tuple[Setting, Any]]:
    """``(setting, default)`` for every field of the config instance ``cfg`` bound to a setting,
    nested configs included, in field order; fields named in ``skip`` are left out."""
    for f in fields(cfg):
        if f.name in skip:
            continue
        value = getattr(cfg, f.name)
        if SETTING in f.metadata:
            yield f.metadata[SETTING], f.metadata[SETTING].value(value)
        elif NESTED in f.metadata:
            for sub, s in f.metadata[NESTED].items():
                yield s, s.value(getattr(value, sub))
        elif is_dataclass(value):
            yield from bound(value)


def build(cfg: Any, given: Mapping[str, Any], skip: tuple[str, ...] = ()) -> Any:
    """``cfg`` with every bound field the ``given`` options set (not None) replaced, nested configs
    included; the result is validated by its ``__post_init__``."""
    changes = {}
    for f in fields(cfg):
        if f.name in skip:
            continue
        value = getattr(cfg, f.name)
        s = f.metadata.get(SETTING)
        if s is not None:
            v = given.get(s.key)
            if v is not None and f.metadata.get(CONVERT) is not None:
                s.check(v)
                changes.update(f.metadata[CONVERT](v))
            elif v is not None:
                changes[f.name] = s.value(v)
        elif NESTED in f.metadata:
            sub = {n: s.value(given[s.key]) for n, s in f.metadata[NESTED].items() if given.get(s.key) is not None}
            if sub:
                changes[f.name] = replace(value, **sub)
        elif is_dataclass(value):
            new = build(value, given)
            if new is not value:
                changes[f.name] = new
    return replace(cfg, **changes) if changes else cfg


@dataclass(frozen=True)
class Configured:
    """A constructor argument that is a config dataclass, its bound fields set from the options.

    Attributes:
        cls: the config dataclass; its default instance holds the method's defaults.
        skip: fields this method does not take from the options (it sets them itself).
    """

    cls: type
    skip: tuple[str, ...] = ()

    def settings(self) -> list[tuple[Setting, Any]]:
        return list(bound(self.cls(), self.skip))

    def build(self, given: Mapping[str, Any], base: Any = None) -> Any:
        return build(self.cls() if base is None else base, given, self.skip)


@dataclass(frozen=True)
class TokenBudget:
    """A constructor argument that is a :class:`Budget` of ``setting`` tokens (``default`` unset)."""

    setting: Setting
    default: int

    def settings(self) -> list[tuple[Setting, Any]]:
        return [(self.setting, self.default)]

    def build(self, given: Mapping[str, Any], base: Any = None) -> Budget:
        v = given.get(self.setting.key)
        if v is None:
            return base if base is not None else Budget(tokens=self.default)
        self.setting.check(v)
        return Budget(tokens=v)
