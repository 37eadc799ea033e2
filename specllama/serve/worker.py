"""One thread that owns the :class:`~specllama.runtime.Runtime` and runs requests one at a time.

A llama.cpp context cannot be shared between requests, so requests wait in a bounded FIFO queue
(:class:`QueueFull` when it is full: the server answers 503). Each request is a :class:`Ticket`: the
event loop submits it and reads its events (``text`` pieces, then ``done``, ``error`` or
``cancelled``) from an asyncio queue the worker thread feeds.

Cancelling a ticket (its client went away) skips it if it has not started, and otherwise makes the
next ``emit`` call raise :class:`Cancelled` inside the generation loop, which stops it at the next
token. The draft's run and the target's prefill are not interruptible: a request cancelled during
them stops when its first token is sampled.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import SpecllamaError
from ..runtime import Runtime

log = logging.getLogger("specllama.serve")

TextFn = Callable[[str], None]
JobFn = Callable[[Runtime, TextFn], Any]


class Cancelled(Exception):
    """Raised from a job's ``emit`` when its client has gone: unwinds the generation loop."""


class QueueFull(Exception):
    """The worker is busy and ``queue_size`` requests already wait."""


class ShuttingDown(Exception):
    """The worker no longer takes requests."""


@dataclass(frozen=True)
class Event:
    """What a job reports: ``text`` (value: str), ``done`` (value: the job's return value),
    ``error`` (value: the exception) or ``cancelled``."""

    kind: str
    value: Any = None


class Ticket:
    """A submitted job, seen from the event loop."""

    def __init__(self, fn: JobFn, stream: bool, loop: asyncio.AbstractEventLoop):
        self.fn = fn
        self.stream = stream
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the worker to stop this job (safe to call from any thread, any number of times)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    async def next(self) -> Event:
        return await self._events.get()

    def post(self, kind: str, value: Any = None) -> None:
        """Hand an event to the event loop (called from the worker thread)."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, Event(kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass


class Worker:
    """Runs jobs ``fn(rt, emit)`` one at a time on a thread that owns ``rt`` (closed on stop)."""

    def __init__(self, rt: Runtime, queue_size: int):
        self.rt = rt
        self._queue: queue.Queue[Ticket | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._current: Ticket | None = None
        self._stopping = False
        self._lock = threading.Lock()
        # served: done; cancelled: client gone; invalid: a SpecllamaError (the request's fault or the
        # setup's); failed: a bug; rejected: the queue was full
        self.stats = {"served": 0, "cancelled": 0, "invalid": 0, "failed": 0, "rejected": 0}

    # -- event-loop side ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="specllama-worker", daemon=True)
            self._thread.start()

    def submit(self, fn: JobFn, stream: bool = False) -> Ticket:
        """Queue ``fn``; raises :class:`QueueFull` or :class:`ShuttingDown` without blocking."""
        if self._stopping or self._thread is None:
            raise ShuttingDown()
        ticket = Ticket(fn, stream, asyncio.get_running_loop())
        try:
            self._queue.put_nowait(ticket)
        except queue.Full:
            with self._lock:
                self.stats["rejected"] += 1
            raise QueueFull() from None
        return ticket

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def health(self) -> dict:
        with self._lock:
            return {"busy": self.busy, "queued": self.queued, **self.stats}

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what waits and what runs, end the thread, close the runtime."""
        self._stopping = True
        while True:
            try:
                t = self._queue.get_nowait()
            except queue.Empty:
                break
            if t is not None:
                t.cancel()
                t.post("cancelled")
        cur = self._current
        if cur is not None:
            cur.cancel()
        if self._thread is None:
            self.rt.close()
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a prefill longer than the timeout
            log.warning("the worker is still busy; leaving it to exit with the process")

    # -- worker thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                t = self._queue.get()
                if t is None:
                    return
                if t.cancelled:
                    self._count("cancelled")
                    t.post("cancelled")
                    continue
                self._current = t
                try:
                    self._one(t)
                finally:
                    self._current = None
        finally:
            self.rt.close()

    def _one(self, t: Ticket) -> None:
        def emit(piece: str) -> None:
            if t.cancelled:
                raise Cancelled()
            if t.stream:
                t.post("text", piece)

        try:
            value = t.fn(self.rt, emit)
        except Cancelled:
            self._count("cancelled")
            t.post("cancelled")
        except SpecllamaError as exc:
            self._count("invalid")
            t.post("error", exc)
        except Exception as exc:  # a bug: keep serving, say what happened
            self._count("failed")
            log.error("internal error: %s", "".join(traceback.format_exception(exc)).rstrip())
            t.post("error", exc)
        else:
            self._count("served")
            t.post("done", value)

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1
