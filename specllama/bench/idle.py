"""Is the machine idle? The share of CPU time other processes took, sampled from ``/proc``.

``/proc/stat``'s first line gives machine-wide jiffies (user nice system idle iowait irq softirq
steal ...); ``/proc/<pid>/stat`` gives one process's ``utime + stime`` (all its threads). Over a
short interval, *others* = (machine busy - our own busy) / machine total, where busy counts
everything but ``idle`` and ``iowait`` (``steal``, time the hypervisor gave to other guests,
counts as taken by others too). Our own process is subtracted because llama.cpp's worker threads
may still spin for a moment after a decode.

Only Linux has ``/proc``; elsewhere :func:`sample` reports ``None`` shares and the benchmark says
it could not check.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

PROC = "/proc"


@dataclass(frozen=True)
class CpuTicks:
    """Machine-wide jiffies from the ``cpu`` line of ``/proc/stat``."""

    busy: int
    total: int
    steal: int = 0


@dataclass(frozen=True)
class Snapshot:
    """CPU counters at one instant: the machine, our process and every other process."""

    cpu: CpuTicks
    own: int
    procs: dict[int, tuple[str, int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class IdleSample:
    """What other processes did over ``interval_s``.

    Attributes:
        other_share: fraction ``[0, 1]`` of the machine's CPU time taken by other processes
            (None where ``/proc`` is unavailable).
        steal_share: part of ``other_share`` that was hypervisor steal.
        top: up to three ``(pid, command, share)`` of the busiest other processes.
        waited_s: seconds spent waiting for the machine to become idle before this sample.
        idle: ``other_share <= max_busy`` for the threshold it was checked against.
    """

    other_share: float | None
    steal_share: float = 0.0
    interval_s: float = 0.0
    top: tuple[tuple[int, str, float], ...] = ()
    waited_s: float = 0.0
    idle: bool = True

    def describe(self) -> str:
        if self.other_share is None:
            return "idle check unavailable (no /proc)"
        s = f"others {100 * self.other_share:.0f}% CPU"
        if self.top and self.other_share > 0.02:
            s += " (" + ", ".join(f"{c}[{p}] {100 * sh:.0f}%" for p, c, sh in self.top) + ")"
        return s


def parse_proc_stat(text: str) -> CpuTicks:
    """``/proc/stat`` text -> machine-wide busy and total jiffies."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            vals = [int(x) for x in parts[1:]]
            vals += [0] * (8 - len(vals))
            # guest and guest_nice are already included in user and nice
            user, nice, system, idle, iowait, irq, softirq, steal = vals[:8]
            total = user + nice + system + idle + iowait + irq + softirq + steal
            return CpuTicks(busy=total - idle - iowait, total=total, steal=steal)
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def parse_pid_stat(text: str) -> tuple[str, int, int]:
    """``/proc/<pid>/stat`` text -> ``(command, utime + stime, starttime)`` in jiffies.

    The command sits in parentheses and may itself contain spaces and parentheses, so fields
    are counted from the last ``)``. A kernel worker's command changes with its work queue, so
    ``starttime`` (not the command) tells a reused pid apart.
    """
    lo, hi = text.find("("), text.rfind(")")
    if lo < 0 or hi < lo:
        raise ValueError("malformed /proc/<pid>/stat")
    comm = text[lo + 1:hi]
    rest = text[hi + 1:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15, starttime field 22
    return comm, int(rest[11]) + int(rest[12]), int(rest[19])


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def snapshot(proc: str = PROC, own_pid: int | None = None, others: bool = True) -> Snapshot | None:
    """Read the counters now; None when ``proc`` has no ``stat`` (not Linux)."""
    stat = _read(os.path.join(proc, "stat"))
    if stat is None:
        return None
    own_pid = os.getpid() if own_pid is None else own_pid
    own_txt = _read(os.path.join(proc, str(own_pid), "stat"))
    own = parse_pid_stat(own_txt)[1] if own_txt else 0
    procs: dict[int, tuple[str, int]] = {}
    if others:
        try:
            names = os.listdir(proc)
        except OSError:
            names = []
        for name in names:
            if not name.isdigit() or int(name) == own_pid:
                continue
            txt = _read(os.path.join(proc, name, "stat"))
            if txt:
                try:
                    procs[int(name)] = parse_pid_stat(txt)
                except (ValueError, IndexError):
                    continue
    return Snapshot(parse_proc_stat(stat), own, procs)


def other_share(before: Snapshot, after: Snapshot, interval_s: float = 0.0) -> IdleSample:
    """The share of machine CPU time that processes other than ours took between two snapshots."""
    total = after.cpu.total - before.cpu.total
    if total <= 0:
        return IdleSample(other_share=0.0, interval_s=interval_s)
    busy = after.cpu.busy - before.cpu.busy
    own = after.own - before.own
    share = min(1.0, max(0.0, (busy - own) / total))
    steal = min(1.0, max(0.0, (after.cpu.steal - before.cpu.steal) / total))
    deltas = []
    for pid, (comm, ticks, start) in after.procs.items():
        prev = before.procs.get(pid)
        d = ticks - prev[1] if prev is not None and prev[2] == start else ticks  # new: all of it
        if d > 0:
            deltas.append((d, pid, comm))
    deltas.sort(reverse=True)
    top = tuple((pid, comm, d / total) for d, pid, comm in deltas[:3])
    return IdleSample(other_share=share, steal_share=steal, interval_s=interval_s, top=top)


def sample(interval_s: float = 0.5, proc: str = PROC) -> IdleSample:
    """Measure other processes' CPU share over ``interval_s`` seconds (we sleep meanwhile)."""
    a = snapshot(proc)
    if a is None:
        return IdleSample(other_share=None, interval_s=interval_s)
    time.sleep(interval_s)
    b = snapshot(proc)
    if b is None:
        return IdleSample(other_share=None, interval_s=interval_s)
    return other_share(a, b, interval_s)


def wait_idle(max_busy: float, wait_s: float, interval_s: float = 0.5, proc: str = PROC) -> IdleSample:
    """Sample until others take at most ``max_busy`` of the CPU or ``wait_s`` seconds have passed.

    Returns the last sample, with ``waited_s`` and ``idle`` (False: measured anyway while busy).
    """
    t0 = time.monotonic()
    while True:
        s = sample(interval_s, proc)
        waited = time.monotonic() - t0 - interval_s
        ok = s.other_share is None or s.other_share <= max_busy
        if ok or time.monotonic() - t0 >= wait_s:
            return IdleSample(other_share=s.other_share, steal_share=s.steal_share, interval_s=interval_s,
                              top=s.top, waited_s=max(0.0, waited), idle=ok)
