"""Whether a job is past its capacity: what its cameras send, times what a frame costs.

The `live` freshness policy sheds detection only past capacity (`camstream.core.freshness`);
under it, every frame is analysed, however long it waited, exactly as under `all`. A job
that merely runs seconds behind (a queue that does not grow) is under capacity; one whose
cameras send more than it analyses falls further behind with every batch.

The estimate: each camera's frame rate (from its frames' capture times in a batch), summed
over the cameras seen lately, times the CPU time an analysed frame costs (a moving average
of each batch's process CPU, all its threads, over the frames it analysed), against the
cores the job has. What the estimate cannot see (other processes on the machine, the
engine's own work between batches) the lag shows: a frame that waited past the lag limit
proves the job past capacity at the load it had then, and the threshold comes down to it.
Hysteresis keeps a job near its limit from switching every batch.

Plain Python, thread-safe; the worker's `FreshnessGuard` keeps one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Past capacity above this utilisation (CPU time the cameras' frames need over the cores
# the job has): the rest of a core's time goes to decoding, encoding and the engine.
ENTER_UTILISATION = 0.9
# Back under capacity below this share of the threshold.
LEAVE_SHARE = 0.85
# The threshold never comes down below this (a lag caused by something else, say a pause of
# the whole machine, cannot switch analysis off for good).
MIN_THRESHOLD = 0.3
# After a frame waited past the lag limit, the job counts as past capacity for this long
# whatever the estimate says (it just proved wrong).
HOLD_S = 30.0
# A lag in a meter's first seconds is the job's start (Spark, the workers, the model
# loading), not its load: it holds the job past capacity but leaves the threshold.
WARMUP_S = 60.0
# Weight of the newest observation in the moving averages.
SMOOTHING = 0.2
# Past capacity, a batch's candidates for detection are this many times the frames its
# predecessors analysed in as much budget (newest first); the rest go out at once.
FORECAST_MARGIN = 1.5


class LoadMeter:
    """Whether the cameras send more than the job analyses (`past_capacity`)."""

    def __init__(self, window_s: float = 10.0, max_cameras: int = 20_000) -> None:
        self.window_s = window_s
        self.max_cameras = max_cameras
        self.threshold = ENTER_UTILISATION
        self._cameras: OrderedDict[str, _Camera] = OrderedDict()  # least recently seen first
        self._cost_ns: float | None = None
        self._past = False
        self._held_until = float("-inf")  # monotonic
        self._first_cost: float | None = None  # monotonic
        self._analysed_per_ms: float | None = None  # past capacity, per ms of batch budget
        self._lock = threading.Lock()

    def frames(self, frames: Sequence[tuple[str, int, int]], now: float | None = None) -> None:
        """A batch's frames (camera id, seq, capture time): each camera's capture time per
        frame, from this batch's frames and the last one this meter saw (seq numbers span
        the batches other workers took)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for camera_id, seq, capture_ts_ns in sorted(frames, key=lambda f: (f[0], f[1])):
                known = self._cameras.pop(camera_id, None)
                interval = None
                if known is not None:
                    interval, last_seq, last_ts = known.interval_ns, known.seq, known.capture_ts_ns
                    # Not across a pause (a camera that reconnects keeps its seq).
                    gap_ns = capture_ts_ns - last_ts
                    if last_seq < seq and 0 < gap_ns <= self.window_s * 1e9:
                        spacing = gap_ns / (seq - last_seq)
                        interval = spacing if interval is None else _smooth(interval, spacing)
                self._cameras[camera_id] = _Camera(interval, seq, capture_ts_ns, now)
            while self._cameras and (
                len(self._cameras) > self.max_cameras
                or now - next(iter(self._cameras.values())).seen > self.window_s
            ):
                self._cameras.popitem(last=False)

    def cost(self, cpu_ns: int, now: float | None = None) -> None:
        """The CPU time one frame's analysis took (the whole batch's over its analysed
        frames: what a frame passed through costs is small, and counted with them)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first_cost is None:
                self._first_cost = now
            self._cost_ns = cpu_ns if self._cost_ns is None else _smooth(self._cost_ns, cpu_ns)

    def analysed(self, count: int, budget_ms: int) -> None:
        """Past capacity, how many frames a batch with `budget_ms` of analysis analysed."""
        with self._lock:
            per_ms = count / max(1, budget_ms)
            previous = self._analysed_per_ms
            self._analysed_per_ms = per_ms if previous is None else _smooth(previous, per_ms)

    def forecast(self, budget_ms: int) -> int | None:
        """Past capacity, how many frames a batch with `budget_ms` of analysis may analyse,
        with a margin (`FORECAST_MARGIN`); None before a batch past capacity has told."""
        with self._lock:
            if self._analysed_per_ms is None:
                return None
            return math.ceil(round(FORECAST_MARGIN * self._analysed_per_ms * budget_ms, 6)) + 1

    def utilisation(self, cores: int) -> float | None:
        """The cores the cameras' frames need over the cores the job has (None: no frame
        analysed yet, or no camera's rate known)."""
        with self._lock:
            return self._utilisation(cores)

    def _utilisation(self, cores: int) -> float | None:
        rates = [1e9 / c.interval_ns for c in self._cameras.values() if c.interval_ns]
        if self._cost_ns is None or not rates:
            return None
        return sum(rates) * self._cost_ns / 1e9 / max(1, cores)

    def past_capacity(self, cores: int, now: float | None = None) -> bool:
        """Whether to shed now: above the threshold, until back below `LEAVE_SHARE` of it
        (and for `HOLD_S` after a lag)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            utilisation = self._utilisation(cores)
            if now < self._held_until:
                self._past = True
            elif utilisation is not None:
                limit = self.threshold * (LEAVE_SHARE if self._past else 1.0)
                past, self._past = self._past, utilisation > limit
                if past != self._past:
                    log.warning(
                        "load: %s capacity (the cameras' frames need %.2f of the cores, the"
                        " threshold is %.2f): %s",
                        "past" if self._past else "back under",
                        utilisation,
                        self.threshold,
                        "shedding detection" if self._past else "every frame analysed",
                    )
            return self._past

    def lagging(self, cores: int, now: float | None = None) -> None:
        """A frame waited past the lag limit: the job is past capacity at today's load,
        whatever the estimate said, and its threshold comes down below that load."""
        now = time.monotonic() if now is None else now
        with self._lock:
            held, self._held_until = now < self._held_until, now + HOLD_S
            utilisation = self._utilisation(cores)
            warm = self._first_cost is not None and now - self._first_cost >= WARMUP_S
            if utilisation is not None and warm:
                lowered = min(self.threshold, utilisation * LEAVE_SHARE)
                self.threshold = max(MIN_THRESHOLD, lowered)
            self._past = True
        if not held:
            log.warning(
                "load: a frame waited past the lag limit: past capacity for %.0f s at least"
                " (the threshold is %.2f): shedding detection",
                HOLD_S,
                self.threshold,
            )


@dataclass(frozen=True)
class _Camera:
    interval_ns: float | None  # capture time per frame (None: one frame seen so far)
    seq: int
    capture_ts_ns: int
    seen: float  # monotonic


def _smooth(average: float, value: float) -> float:
    return (1 - SMOOTHING) * average + SMOOTHING * value
