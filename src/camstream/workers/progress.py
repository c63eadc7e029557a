"""Each worker's counts, in memory the group shares, and the line it prints every few seconds.

Each worker writes its own row only (one writer per number), and the group reads every row:
no lock is needed for counts that only grow, read now and then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TextIO

# The numbers of a worker's row, in order.
FIELDS = ("frames", "dead_letters", "events", "batches", "lag", "partitions")


@dataclass(frozen=True)
class WorkerTotals:
    """What workers did: input records out (to the output or the dead-letter topic), dead
    letters among them, detection events, batches committed; `lag`: records of their
    partitions not read yet (as of their last report); `partitions`: assigned now."""

    frames: int = 0
    dead_letters: int = 0
    events: int = 0
    batches: int = 0
    lag: int = 0
    partitions: int = 0

    def __add__(self, other: WorkerTotals) -> WorkerTotals:
        return WorkerTotals(*(getattr(self, n) + getattr(other, n) for n in FIELDS))


def shared_counts(ctx: Any, workers: int) -> Any:
    """A row of FIELDS per worker, in shared memory (`ctx`: a multiprocessing context)."""
    return ctx.Array("q", workers * len(FIELDS), lock=False)


def row_totals(counts: Any, index: int) -> WorkerTotals:
    start = index * len(FIELDS)
    return WorkerTotals(*counts[start : start + len(FIELDS)])


class WorkerProgress:
    """One worker's counts: kept in its row of the shared array, and printed as a line every
    `interval_s` seconds (frames/s since the last line)."""

    def __init__(
        self, counts: Any, index: int, interval_s: float, stream: TextIO | None = None
    ) -> None:
        self.counts = counts
        self.base = index * len(FIELDS)
        self.index = index
        self.interval_s = interval_s
        self.stream = stream
        self._last_at = time.monotonic()
        self._last_frames = 0

    def add(self, frames: int, dead_letters: int, events: int) -> None:
        """A batch written and committed."""
        for offset, amount in enumerate((frames, dead_letters, events, 1)):
            self.counts[self.base + offset] += amount

    def set_position(self, lag: int, partitions: int) -> None:
        self.counts[self.base + FIELDS.index("lag")] = lag
        self.counts[self.base + FIELDS.index("partitions")] = partitions

    @property
    def totals(self) -> WorkerTotals:
        return row_totals(self.counts, self.index)

    def due(self) -> bool:
        return time.monotonic() - self._last_at >= self.interval_s

    def line(self, pid: int) -> str:
        """The progress line since the last one (and starts the next interval)."""
        now, totals = time.monotonic(), self.totals
        rate = (totals.frames - self._last_frames) / max(1e-9, now - self._last_at)
        self._last_at, self._last_frames = now, totals.frames
        return (
            f"workers[{self.index}] pid {pid}: {rate:.1f} frames/s, {totals.frames} frames,"
            f" {totals.dead_letters} dead letters, {totals.events} events,"
            f" lag {totals.lag} on {totals.partitions} partitions"
        )
