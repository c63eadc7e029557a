"""When a camera's recorded frames have a gap: the one rule for replay and for clip files.

A camera sends at its own rate, with jitter, and a micro-batch job delivers its frames in
bursts; only capture times say when frames are missing. A pause is a gap when it lasts
longer than `GAP_FACTOR` of the camera's usual interval (the median of its recent ones),
and at least `MIN_GAP_S`: a camera that drops a frame now and then has no gaps, one that
went dark for seconds has one. Replay shows a gap as a gap, and a clip marks it, rather
than freezing on the last frame.
"""

from __future__ import annotations

import statistics
from collections import deque

MIN_GAP_S = 1.0
# Before its usual interval is known, only a pause this long is a gap (a slow camera's first
# interval is not one).
FIRST_GAP_S = 10.0
GAP_FACTOR = 4.0
INTERVALS_KEPT = 32  # recent intervals that the usual one is the median of


class GapFinder:
    """Fed a camera's capture times in order, says which frame follows a gap."""

    def __init__(self) -> None:
        self._previous_ns: int | None = None
        self._intervals: deque[int] = deque(maxlen=INTERVALS_KEPT)

    def usual_interval_ns(self) -> float | None:
        """The camera's usual interval: the median of its recent ones (None before one)."""
        return statistics.median(self._intervals) if self._intervals else None

    def gap_before(self, capture_ns: int) -> int | None:
        """The gap (ns) between the previous frame and this one, if it is a gap; else None."""
        previous, self._previous_ns = self._previous_ns, capture_ns
        if previous is None or capture_ns <= previous:
            return None
        interval = capture_ns - previous
        usual = self.usual_interval_ns()
        if usual is None:
            threshold = FIRST_GAP_S * 1e9
        else:
            threshold = max(MIN_GAP_S * 1e9, GAP_FACTOR * usual)
        if interval > threshold:
            return interval  # not kept as an interval: it would raise the usual one
        self._intervals.append(interval)
        return None
