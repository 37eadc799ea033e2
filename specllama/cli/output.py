"""stderr lines shared by the commands (stdout carries only results)."""

from __future__ import annotations

import sys


def note(msg: str) -> None:
    """One ``specllama: ...`` line on stderr, flushed at once."""
    sys.stderr.write(f"specllama: {msg}\n")
    sys.stderr.flush()
