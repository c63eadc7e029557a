"""Which frames a job past its capacity analyses: the newest ones, and every camera now and then.

Under the `live` freshness policy (the default), a valid frame that is older than
`max_age_ms` when its turn for detection comes is not run through the detector: it goes out
validated, unannotated, with a `skipped` header, so that a job that fell behind its cameras
catches up with the present instead of lagging ever more. Two rules keep that fair:

- in a batch, the newest frame of each starving camera goes first, the longest starved
  first, then the others newest first (`detection_order`), so the time the batch has goes
  to the pictures the wall will show, round-robin over the cameras when it cannot do all;
- a camera starves (`FreshnessGuard`) when it had no frame analysed for
  `min_analysis_interval_ms` of its own capture time (or this worker has not analysed it
  yet); its frame is analysed however old it is;
- a micro-batch spends at most `batch_budget_ms` analysing, shared by the cameras: a task
  gets its cameras' part of all the live cameras, times the tasks that run at once; past
  it, its frames go out unanalysed as well (`records.BatchBudget`), its first excepted.

Under capacity every frame is younger than `max_age_ms` when its turn comes, so nothing is
skipped and the output is that of the `all` policy. Ages use the cameras' capture clocks:
a camera whose clock runs behind looks late and is analysed at the guard's interval only;
the interval itself is measured in the camera's own clock, so skew cannot starve it.

Plain Python: the worker keeps one guard (`worker_guard`); the per-record function takes it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Cameras remembered per worker at most; the least recently analysed are forgotten first
# (a forgotten camera counts as starving: it is analysed, never skipped, by forgetting).
MAX_CAMERAS = 20_000
# A camera that sent nothing for this long no longer counts among the live ones.
SEEN_WINDOW_S = 10.0


class FreshnessGuard:
    """Per camera, the capture time of its newest analysed frame; thread-safe."""

    def __init__(self, min_interval_ms: int, max_cameras: int = MAX_CAMERAS) -> None:
        self.min_interval_ns = int(min_interval_ms) * 1_000_000
        self.max_cameras = max_cameras
        self._analysed: OrderedDict[str, int] = OrderedDict()
        self._seen: OrderedDict[str, float] = OrderedDict()  # camera id -> monotonic time
        self._lock = threading.Lock()

    def live_cameras(self, camera_ids: set[str], window_s: float = SEEN_WINDOW_S) -> int:
        """Note that `camera_ids` sent frames now; how many cameras this worker saw lately.

        A task sees only its partition's cameras; the worker sees every partition's over a
        few batches, which is how a task knows its cameras' part of all of them.
        """
        now = time.monotonic()
        with self._lock:
            for camera_id in camera_ids:
                self._seen.pop(camera_id, None)
                self._seen[camera_id] = now
            while self._seen and (
                len(self._seen) > self.max_cameras
                or now - next(iter(self._seen.values())) > window_s
            ):
                self._seen.popitem(last=False)
            return len(self._seen)

    def starving(self, camera_id: str, capture_ts_ns: int) -> bool:
        """True if this frame's camera had nothing analysed for the interval before it."""
        with self._lock:
            return self._starving(camera_id, capture_ts_ns)

    def _starving(self, camera_id: str, capture_ts_ns: int) -> bool:
        last = self._analysed.get(camera_id)
        return last is None or capture_ts_ns - last >= self.min_interval_ns

    def last_analysed(self, camera_id: str) -> int | None:
        """The capture time of the camera's newest analysed frame, if this worker knows it."""
        with self._lock:
            return self._analysed.get(camera_id)

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
    """`items` in the order to analyse them: the newest frame of each starving camera first,
    the longest starved first (a round robin when the batch cannot analyse them all), then
    the rest newest first. Python's sort is stable: frames captured at the same moment keep
    the batch's order."""
    newest: dict[str, tuple[int, int]] = {}  # camera id -> (capture, index) of its newest
    for index, item in enumerate(items):
        camera_id, capture_ts_ns = camera_and_capture(item)
        if capture_ts_ns > newest.get(camera_id, (-1, -1))[0]:
            newest[camera_id] = (capture_ts_ns, index)
    first: list[tuple[int, int]] = []  # (last analysed, index) of starving cameras' newest
    if guard is not None:
        for camera_id, (capture_ts_ns, index) in newest.items():
            if guard.starving(camera_id, capture_ts_ns):
                first.append((guard.last_analysed(camera_id) or -1, index))
    first.sort()
    leading = {index for _, index in first}
    rest = sorted(
        (index for index in range(len(items)) if index not in leading),
        key=lambda index: -camera_and_capture(items[index])[1],
    )
    return [items[index] for _, index in first] + [items[index] for index in rest]
