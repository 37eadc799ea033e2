"""Checking output paths before the work that fills them (``bench --save/--plot``, ``eval --out``).

``os.access`` says yes to root for places nothing can be created in (``/proc``), so these checks
create and remove a probe where the output will go. An existing output file is opened for
appending, which neither truncates nor changes it.
"""

from __future__ import annotations

import os
import tempfile

from .errors import ConfigError


def nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path with none)."""
    p = os.path.normpath(path)
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent in ("", p):
            return parent or "."
        p = parent
    return p


def _check_parent(path: str, flag: str) -> str:
    """The directory ``path`` goes in; raise unless it exists and is a directory."""
    parent = os.path.dirname(os.path.normpath(path)) or "."
    if os.path.isdir(parent):
        return parent
    found = nearest_existing(parent)
    if os.path.lexists(found) and not os.path.isdir(found):
        raise ConfigError(f"{flag} {path}: {found} is a file, not a directory")
    raise ConfigError(f"{flag} {path}: directory {parent} does not exist")


def check_writable_file(path: str, flag: str) -> None:
    """Raise ``ConfigError`` unless the file ``path`` can be written, leaving the disk as it was."""
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a directory")
    _check_parent(path, flag)
    try:
        if os.path.lexists(path):
            with open(path, "a"):
                pass
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            os.unlink(path)
    except FileExistsError:
        pass  # created by someone else meanwhile: writable enough
    except OSError as exc:
        raise ConfigError(f"cannot write {flag} {path}: {exc.strerror}") from None


def check_writable_dir(path: str, flag: str) -> None:
    """Raise ``ConfigError`` unless ``path`` is, or can be created as, a writable directory.

    Nothing is created: a probe directory is made in ``path`` (or in its nearest existing
    ancestor) and removed at once.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a file, not a directory")
    found = nearest_existing(path)
    if not os.path.isdir(found):
        raise ConfigError(f"{flag} {path}: {found} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".specllama-probe-", dir=found))
    except OSError as exc:
        if os.path.normpath(found) == os.path.normpath(path):
            raise ConfigError(f"cannot write to {flag} {path}: {exc.strerror}") from None
        raise ConfigError(f"cannot create {flag} {path} in {found}: {exc.strerror}") from None
