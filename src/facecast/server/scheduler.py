"""One inference engine shared by every stream: dynamic batching, round-robin fairness, ordered post-processing.

The scheduler thread waits until some stream has a ready window, then gathers more for at most ``max_wait``
seconds or until ``max_batch`` windows are ready, takes them round robin (one window per stream per turn, the
next batch starting after the last stream served) and runs them in one backend call. A finisher thread runs the
per-stream face pipeline on the results in batch order, so each stream's frames stay in order while the next
batch is already being inferred. The finisher queue is short, so inference never runs far ahead of it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facecast.server.heap import trim_heap

log = logging.getLogger("facecast.server")

RunBatch = Callable[..., np.ndarray]
"""One backend call on the jobs' input arrays (:attr:`facecast.infer.engine.NetworkInputs.arrays`) joined along the
batch axis: ``(windows [B, L], emotion [B, E]) -> [B, D]``, or for chunks ``(chunks [B, L], offsets [B, K],
emotion [B, K, E]) -> [B, K, D]``."""


Join = Callable[[list], list[np.ndarray]]
"""The jobs' inputs as one backend call's arguments."""
Split = Callable[[object, list], list]
"""One backend call's result, back to each job."""


def join_rows(jobs: list) -> list[np.ndarray]:
    """The jobs' input arrays joined along the batch axis."""
    return [np.concatenate(parts) for parts in zip(*(job.inputs.arrays for job in jobs), strict=True)]


def split_rows(result: np.ndarray, jobs: list) -> list[np.ndarray]:
    """Each job's rows of the result, in order."""
    bounds = np.cumsum([0] + [len(job) for job in jobs])
    return [result[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class Lane(Protocol):
    """What the scheduler needs from a stream (see :class:`facecast.server.session.ServerStream`)."""

    def pending(self) -> int: ...

    def take(self, count: int): ...

    def finish(self, job, result: np.ndarray) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


@dataclass
class SchedulerStats:
    """Counters since start (read them without a lock: they are only indicative)."""

    batches: int = 0
    windows: int = 0
    busy_seconds: float = 0.0
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    heap_trims: int = 0

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else 0.0


class BatchScheduler:
    """Batches ready windows from many lanes into single backend calls."""

    def __init__(
        self, run_batch: RunBatch, max_batch: int = 32, max_wait: float = 0.005, trim_every: float = 30.0,
        join: Join | None = None, split: Split | None = None,
    ) -> None:  # fmt: skip
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run_batch = run_batch
        self.join = join or join_rows
        self.split = split or split_rows
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.trim_every = float(trim_every)
        """Seconds between heap trims (:func:`facecast.server.heap.trim_heap`) by the finisher thread."""
        self.stats = SchedulerStats()
        self._lanes: list[Lane] = []
        self._next = 0  # index in _lanes where the next batch starts
        self._cond = threading.Condition()
        self._stopping = False
        self._finish_queue: queue.Queue = queue.Queue(maxsize=2)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> BatchScheduler:
        if self._threads:
            return self
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._schedule_loop, name="facecast-scheduler", daemon=True),
            threading.Thread(target=self._finish_loop, name="facecast-finisher", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads (work in flight is finished or dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # -- lanes -------------------------------------------------------------------------------------------------

    def add(self, lane: Lane) -> None:
        with self._cond:
            self._lanes.append(lane)

    def remove(self, lane: Lane) -> None:
        with self._cond:
            if lane in self._lanes:
                i = self._lanes.index(lane)
                del self._lanes[i]
                if i < self._next:
                    self._next -= 1
                if self._next >= len(self._lanes):
                    self._next = 0

    def lanes(self) -> list[Lane]:
        """The lanes now registered (a snapshot)."""
        with self._cond:
            return list(self._lanes)

    @property
    def num_lanes(self) -> int:
        with self._cond:
            return len(self._lanes)

    def notify(self) -> None:
        """A lane has new ready windows."""
        with self._cond:
            self._cond.notify()

    # -- threads -----------------------------------------------------------------------------------------------

    def _pending(self) -> list[int]:
        return [lane.pending() for lane in self._lanes]

    def _collect(self):
        """Under the lock: wait for work, then take up to ``max_batch`` windows round robin."""
        while not self._stopping and not any(self._pending()):
            self._cond.wait()
        deadline = time.monotonic() + self.max_wait
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if sum(self._pending()) >= self.max_batch or remaining <= 0:
                break
            self._cond.wait(remaining)
        if self._stopping:
            return []
        n = len(self._lanes)
        order = [self._lanes[(self._next + i) % n] for i in range(n)]
        pending = [lane.pending() for lane in order]
        quota = [0] * n
        total, last = 0, -1
        while total < self.max_batch and any(q < p for q, p in zip(quota, pending, strict=True)):
            for i in range(n):
                if total >= self.max_batch:
                    break
                if quota[i] < pending[i]:
                    quota[i] += 1
                    total += 1
                    last = i
        if last >= 0:
            self._next = (self._next + last + 1) % n
        jobs = []
        for lane, q in zip(order, quota, strict=True):
            if q == 0:
                continue
            try:
                jobs.append(lane.take(q))
            except Exception as exc:  # a broken lane is dropped; the others go on
                log.exception("taking windows from a stream failed")
                self._lanes.remove(lane)
                self._next = 0
                lane.fail(exc)
        return jobs

    def _schedule_loop(self) -> None:
        while True:
            with self._cond:
                jobs = self._collect()
                if self._stopping:
                    break
            jobs = [job for job in jobs if len(job)]
            if not jobs:
                continue
            started = time.perf_counter()
            try:
                inputs = self.join(jobs)
                result = self.run_batch(*inputs)
                answers = self.split(result, jobs)
            except Exception as exc:  # a backend failure ends the streams in this batch, not the server
                log.exception("inference failed for a batch of %d windows", sum(len(j) for j in jobs))
                for job in jobs:
                    job.stream.fail(exc)
                continue
            self._count(len(inputs[0]), time.perf_counter() - started)
            self._put((jobs, answers))

    def _put(self, item) -> None:
        while not self._stopping:
            try:
                self._finish_queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _count(self, size: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.windows += size
        stats.busy_seconds += seconds
        stats.largest_batch = max(stats.largest_batch, size)
        stats.batch_sizes[size] = stats.batch_sizes.get(size, 0) + 1

    def _finish_loop(self) -> None:
        last_trim = time.monotonic()
        while True:
            if time.monotonic() - last_trim >= self.trim_every:
                trim_heap()
                self.stats.heap_trims += 1
                last_trim = time.monotonic()
            try:
                item = self._finish_queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping:
                    return
                continue
            jobs, answers = item
            for job, rows in zip(jobs, answers, strict=True):
                try:
                    job.stream.finish(job, rows)
                except Exception as exc:  # one stream's failure must not stop the others
                    log.exception("post-processing failed")
                    job.stream.fail(exc)
