"""Defences against hostile clients: refusals with a gRPC status code, reads that outlive a timeout, draining a
refused client's requests, and the minimum audio rate.

Why drain: when a server ends a call while the client is still writing, gRPC's asyncio client (up to at least
grpcio 1.67; grpc/grpc#36066) reports its failed write as ``INTERNAL: Internal error from Core`` in place of the
status the server sent. So before a refusal's status goes out the server reads and drops what the client still
sends (raw bytes, never parsed) until it half-closes, for at most :data:`DRAIN_SECONDS` (then until just after its
next request, when a client that writes now and then is between writes, for at most as long again), with at most
:data:`MAX_DRAINING` calls draining at once (beyond that the status goes out at once).
"""

from __future__ import annotations

import asyncio
from collections import deque

import grpc

DRAIN_SECONDS = 2.0
"""How long a refused call's requests are read and dropped before its status is sent (at most twice this)."""

MAX_DRAINING = 64
"""Most calls draining at once."""

TICK_SECONDS = 1.0
"""How often a waiting reader checks its stream's audio rate."""

TIMEOUT = object()
"""What :meth:`Reads.next` returns when no request came in time."""


class Refusal(Exception):
    """Ends a call with a gRPC status ``code`` and ``message`` (``stalled``: the client reads nothing, so no in-band
    status is written first)."""

    def __init__(self, code: grpc.StatusCode, message: str, stalled: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stalled = stalled


class Reads:
    """A call's requests, one read at a time. A timed-out read stays pending and is picked up by the next call of
    :meth:`next` (cancelling a gRPC read would end the call)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self._task: asyncio.Future | None = None
        self.ended = False
        """The client half-closed (or the call is over)."""

    async def next(self, timeout: float):
        """The next request's bytes, ``grpc.aio.EOF``, or :data:`TIMEOUT` after ``timeout`` seconds."""
        if self.ended:
            return grpc.aio.EOF
        if self._task is None:
            self._task = asyncio.ensure_future(self.context.read())
            self._task.add_done_callback(retrieve)
        done, _ = await asyncio.wait((self._task,), timeout=max(timeout, 0.0))
        if not done:
            return TIMEOUT
        task, self._task = self._task, None
        try:
            result = task.result()
        except BaseException:
            self.ended = True
            raise
        if result is grpc.aio.EOF:
            self.ended = True
        return result

    def cancel(self) -> None:
        """Drop a pending read (the call is over)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self.ended = True


def retrieve(task: asyncio.Future) -> None:
    """Mark a task's exception as seen (a call cancelled by its client fails its pending read and write)."""
    if not task.cancelled():
        task.exception()


class Drainer:
    """Reads and drops a refused call's requests until it half-closes (see the module docstring)."""

    def __init__(self, seconds: float = DRAIN_SECONDS, limit: int = MAX_DRAINING) -> None:
        self.seconds = seconds
        self.limit = limit
        self.active = 0
        self.drained = 0
        """Calls drained so far (for tests and statistics)."""

    async def drain(self, reads: Reads) -> None:
        """Read until the client half-closes or for ``seconds``; past that, return right after the client's next
        request (for at most ``seconds`` more), when a client that writes now and then is between writes."""
        if reads.ended or self.active >= self.limit:
            return
        self.active += 1
        loop = asyncio.get_running_loop()
        soft = loop.time() + self.seconds
        hard = soft + self.seconds
        try:
            while (left := hard - loop.time()) > 0:
                try:
                    data = await reads.next(left)
                except Exception:  # the call is over (cancelled or failed)
                    return
                if data is TIMEOUT or data is grpc.aio.EOF or loop.time() >= soft:
                    return
        finally:
            self.active -= 1
            self.drained += 1


class AudioRateMeter:
    """Seconds of audio received over a sliding window of reading time (time the server spent waiting for the
    client's next message; pauses for backpressure do not count)."""

    def __init__(self, min_rate: float, window: float, now: float) -> None:
        self.min_rate = float(min_rate)
        self.window = float(window)
        self._start = now
        self._paused = 0.0
        self._paused_at: float | None = None
        self._events: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def clock(self, now: float) -> float:
        """Reading time since the meter started."""
        paused = self._paused + (now - self._paused_at if self._paused_at is not None else 0.0)
        return now - self._start - paused

    def pause(self, now: float) -> None:
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        if self._paused_at is not None:
            self._paused += now - self._paused_at
            self._paused_at = None

    def add(self, seconds: float, now: float) -> None:
        """``seconds`` of audio arrived."""
        if seconds > 0:
            self._events.append((self.clock(now), seconds))
            self._sum += seconds

    def shortfall(self, now: float) -> float | None:
        """The rate over the last window (a fraction of real time) when it is below ``min_rate`` once the first
        window has passed; ``None`` while the stream keeps up (or the check is off)."""
        clock = self.clock(now)
        if self.min_rate <= 0 or clock < self.window:
            return None
        while self._events and self._events[0][0] <= clock - self.window:
            self._sum -= self._events.popleft()[1]
        self._sum = max(self._sum, 0.0) if self._events else 0.0
        rate = self._sum / self.window
        return rate if rate < self.min_rate else None
