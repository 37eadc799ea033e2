"""A one-line progress bar on stderr for long prefills: tokens done of total, t/s and ETA."""

from __future__ import annotations

import sys
import time
from typing import Callable, Protocol, TextIO

MIN_TOKENS = 256  # prefills shorter than this get no bar


class Progress(Protocol):
    def update(self, done: int) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], "Progress | None"]
"""``factory(label, total)``: a bar for a prefill of ``total`` tokens, or None for no bar."""


def format_bar(label: str, done: int, total: int, elapsed: float, width: int = 24) -> str:
    """``label [#####.....] done/total tok | R t/s | ETA Ns`` (rate and ETA once known)."""
    total = max(1, total)
    done = min(max(0, done), total)
    fill = int(width * done / total)
    line = f"{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} tok"
    if done > 0 and elapsed > 0:
        rate = done / elapsed
        eta = (total - done) / rate
        line += f" | {rate:.0f} t/s | ETA {_duration(eta)}"
    return line


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressBar:
    """Redraws one stderr line in place (``\\r``), at most every ``interval`` seconds.

    :meth:`close` erases the line so the answer starts on a clean one.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, interval: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter):
        self.label = label
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.t0 = clock()
        self._last = -1.0
        self._drawn = False
        self.update(0)

    def update(self, done: int) -> None:
        now = self.clock()
        if done < self.total and now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r\x1b[K" + format_bar(self.label, done, self.total, now - self.t0))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def terminal_progress(stream: TextIO | None = None, min_tokens: int = MIN_TOKENS) -> ProgressFactory:
    """A factory that draws bars on ``stream`` (stderr) when it is a terminal and the prefill is long."""
    out = stream if stream is not None else sys.stderr

    def factory(label: str, total: int) -> ProgressBar | None:
        try:
            tty = out.isatty()
        except (AttributeError, ValueError):
            tty = False
        if not tty or total < min_tokens:
            return None
        return ProgressBar(label, total, out)

    return factory


def no_progress(label: str, total: int) -> None:
    return None
