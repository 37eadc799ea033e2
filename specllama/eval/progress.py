"""A progress line with an ETA on stderr, one job at a time.

The ETA sums, over the jobs left, the mean time of finished jobs of the same kind (a method at a
budget), falling back to the mean of all finished jobs for kinds not seen yet. On a terminal the
line is redrawn in place; elsewhere (logs, CI) each finished job prints one line.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Hashable
from typing import TextIO


def fmt_duration(seconds: float) -> str:
    s = round(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts ``total`` jobs of various kinds; :meth:`done` after each one."""

    def __init__(self, kinds: list[Hashable], stream: TextIO | None = None, width: int = 24):
        self.left: dict[Hashable, int] = defaultdict(int)
        for k in kinds:
            self.left[k] += 1
        self.total = len(kinds)
        self.n = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.times: dict[Hashable, list[float]] = defaultdict(list)
        self.t0 = time.perf_counter()

    def eta(self) -> float | None:
        every = [t for ts in self.times.values() for t in ts]
        if not every:
            return None
        overall = sum(every) / len(every)
        return sum(n * (sum(self.times[k]) / len(self.times[k]) if self.times.get(k) else overall)
                   for k, n in self.left.items())

    def done(self, kind: Hashable, seconds: float, label: str) -> None:
        self.n += 1
        self.left[kind] -= 1
        self.times[kind].append(seconds)
        self._draw(label)

    def skip(self, kind: Hashable) -> None:
        """A job already done in an earlier run: counts, takes no time, shows no line."""
        self.n += 1
        self.left[kind] -= 1

    def _draw(self, label: str) -> None:
        frac = self.n / self.total if self.total else 1.0
        fill = round(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        eta = self.eta()
        line = (f"[{bar}] {self.n}/{self.total} {label} | elapsed "
                f"{fmt_duration(time.perf_counter() - self.t0)} | ETA "
                f"{fmt_duration(eta) if eta is not None else '?'}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            if self.n == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and 0 < self.n < self.total:
            self.stream.write("\n")
            self.stream.flush()
