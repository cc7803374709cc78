"""The server's shared batch scheduler (facecast.server.scheduler) on fake streams: batching, fairness, order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("grpc")  # facecast.server needs the gRPC stubs
pytest.importorskip("nvidia_audio2face_3d")


class _Lane:
    """A fake stream: ``total`` frames ready at once; windows carry (lane, frame) so results can be traced."""

    def __init__(self, index: int, total: int) -> None:
        self.index, self.total, self.taken, self.done = index, total, 0, []
        self.finished = threading.Event()

    def pending(self) -> int:
        return self.total - self.taken

    def take(self, count: int):
        from facecast.infer.engine import NetworkInputs
        from facecast.server.session import Job

        frames = np.arange(self.taken, self.taken + count)
        self.taken += count
        windows = np.stack([np.full(count, self.index), frames, frames, frames], axis=1).astype(np.float32)
        emotion = np.zeros((count, 2), np.float32)
        return Job(self, NetworkInputs(frames, frames, (windows, emotion), emotion, 30.0))

    def finish(self, job, result) -> None:
        assert (result[:, 0] == self.index).all()
        self.done.extend(result[:, 1].astype(int).tolist())
        if len(self.done) == self.total:
            self.finished.set()

    def fail(self, exc) -> None:
        raise AssertionError(exc)


def test_scheduler_batches_round_robin_in_order():
    from facecast.server.scheduler import BatchScheduler

    batches = []

    def run_batch(windows, emotion):
        batches.append(windows[:, 0].astype(int).tolist())
        return windows.copy()

    scheduler = BatchScheduler(run_batch, max_batch=8, max_wait=0.0)
    lanes = [_Lane(0, 10), _Lane(1, 2), _Lane(2, 10)]
    for lane in lanes:
        scheduler.add(lane)
    scheduler.start()
    try:
        for lane in lanes:
            assert lane.finished.wait(10)
    finally:
        scheduler.stop()
    # one window per lane per turn: the short lane gets its share, nobody waits for a long lane to drain
    assert batches[0] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sorted(batches[1]) == [0] * 4 + [2] * 4 and batches[1][0] == 0  # next batch starts after lane 2
    assert sum(len(b) for b in batches) == 22 and max(len(b) for b in batches) <= 8
    for lane in lanes:
        assert lane.done == list(range(lane.total))  # each lane's frames are finished in order
    assert scheduler.stats.windows == 22 and scheduler.stats.largest_batch == 8


def test_scheduler_trims_the_heap_periodically():
    """The finisher thread trims the heap (glibc ``malloc_trim``) every ``trim_every`` seconds."""
    from facecast.server.scheduler import BatchScheduler

    scheduler = BatchScheduler(lambda w, e: w, max_batch=4, max_wait=0.0, trim_every=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while scheduler.stats.heap_trims < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler.stats.heap_trims >= 2
    finally:
        scheduler.stop()
