"""Which frames a job past its capacity analyses: the newest ones, and every camera now and then.

Under the `live` freshness policy (the default), a valid frame that is older than
`max_age_ms` when its turn for detection comes is not run through the detector: it goes out
validated, unannotated, with a `skipped` header, so that a job that fell behind its cameras
catches up with the present instead of lagging ever more. Two rules keep that fair:

- in a batch, the frames are analysed newest first (`detection_order`), so the time the
  batch has goes to the pictures the wall will show;
- no camera starves (`FreshnessGuard`): a frame whose camera had no frame analysed for
  `min_analysis_interval_ms` of its own capture time (or that this worker has not analysed
  yet) is analysed however old it is, and goes first.

Under capacity every frame is younger than `max_age_ms` when its turn comes, so nothing is
skipped and the output is that of the `all` policy. Ages use the cameras' capture clocks:
a camera whose clock runs behind looks late and is analysed at the guard's interval only;
the interval itself is measured in the camera's own clock, so skew cannot starve it.

Plain Python: the worker keeps one guard (`worker_guard`); the per-record function takes it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Cameras remembered per worker at most; the least recently analysed are forgotten first
# (a forgotten camera counts as starving: it is analysed, never skipped, by forgetting).
MAX_CAMERAS = 20_000


class FreshnessGuard:
    """Per camera, the capture time of its newest analysed frame; thread-safe."""

    def __init__(self, min_interval_ms: int, max_cameras: int = MAX_CAMERAS) -> None:
        self.min_interval_ns = int(min_interval_ms) * 1_000_000
        self.max_cameras = max_cameras
        self._analysed: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def starving(self, camera_id: str, capture_ts_ns: int) -> bool:
        """True if this frame's camera had nothing analysed for the interval before it."""
        with self._lock:
            return self._starving(camera_id, capture_ts_ns)

    def _starving(self, camera_id: str, capture_ts_ns: int) -> bool:
        last = self._analysed.get(camera_id)
        return last is None or capture_ts_ns - last >= self.min_interval_ns

    def claim(self, camera_id: str, capture_ts_ns: int, fresh: bool) -> bool:
        """Whether to analyse this frame: fresh ones, and those of a starving camera.

        Answered and recorded at once (under the lock), so that frames of one camera that
        threads take at the same moment cannot both claim the camera's starvation.
        """
        with self._lock:
            if not fresh and not self._starving(camera_id, capture_ts_ns):
                return False
            last = self._analysed.pop(camera_id, None)
            self._analysed[camera_id] = capture_ts_ns if last is None else max(last, capture_ts_ns)
            while len(self._analysed) > self.max_cameras:
                self._analysed.popitem(last=False)
            return True

    def cameras(self) -> int:
        with self._lock:
            return len(self._analysed)


_worker_guard: tuple[int, FreshnessGuard] | None = None


def worker_guard(min_interval_ms: int) -> FreshnessGuard:
    """This process's guard (a Spark Python worker keeps it between batches)."""
    global _worker_guard
    if _worker_guard is None or _worker_guard[0] != min_interval_ms:
        _worker_guard = (min_interval_ms, FreshnessGuard(min_interval_ms))
    return _worker_guard[1]


def detection_order(
    items: Sequence[T],
    camera_and_capture: Callable[[T], tuple[str, int]],
    guard: FreshnessGuard | None,
) -> list[T]:
    """`items` in the order to analyse them: starving cameras' frames first, then newest first.

    Python's sort is stable, so frames captured at the same moment keep the batch's order.
    """

    def priority(item: T) -> tuple[bool, int]:
        camera_id, capture_ts_ns = camera_and_capture(item)
        starving = guard is not None and guard.starving(camera_id, capture_ts_ns)
        return (not starving, -capture_ts_ns)

    return sorted(items, key=priority)
