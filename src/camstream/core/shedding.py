"""Past capacity, which frames of a batch skip detection, and why (the `live` policy).

The rules themselves are `camstream.core.freshness` (newest first, no camera starves) and
`camstream.core.load` (whether the job is past capacity); this module applies them to one
batch: its analysis budget (`BatchBudget`), the verdict on each frame when its turn comes
(`Shedding.skip_reason`), and the frames that will skip detection however soon their turn
came (`early_skips`), which go out before the batch's analysis.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from camstream.core.freshness import FreshnessGuard
from camstream.core.settings import RecordSettings


class BatchBudget:
    """The time one batch (a Spark task) may spend analysing frames past capacity.

    Runs from the batch's start; once spent, frames skip detection, but the batch's first
    frame is always analysed, so that every batch makes progress. Thread-safe.
    """

    def __init__(self, budget_ms: int, started_ns: int, starving_ms: int | None = None) -> None:
        self.budget_ms = budget_ms
        self.started_ns = started_ns
        # Frames of starving cameras may go on past the budget, up to this (a bound, so that
        # a batch stays short whatever the number of cameras).
        self.starving_ms = budget_ms if starving_ms is None else max(budget_ms, starving_ms)
        self._analysed = 0
        self._lock = threading.Lock()

    def starving_allowed(self, now_ns: int) -> bool:
        return (now_ns - self.started_ns) / 1e6 <= self.starving_ms

    def spent(self, now_ns: int) -> str | None:
        """The reason to skip a frame whose turn comes at `now_ns`, or None."""
        spent_ms = (now_ns - self.started_ns) / 1e6
        with self._lock:
            if self._analysed == 0 or spent_ms <= self.budget_ms:
                return None
        return f"shed: its batch spent {spent_ms:.0f} of {self.budget_ms} ms analysing"

    def analysing(self) -> None:
        with self._lock:
            self._analysed += 1


@dataclass(frozen=True)
class Shedding:
    """How one batch judges its frames under the `live` policy (`settings.max_age_ms`).

    `past_capacity`: the job cannot analyse every frame (`LoadMeter`, or no history yet);
    `budget`: the batch's part of the micro-batch's analysis time; `guard`: the worker's
    record of what each camera had analysed, so that none starves.
    """

    settings: RecordSettings
    past_capacity: bool = True
    guard: FreshnessGuard | None = None
    budget: BatchBudget | None = None

    def skip_reason(
        self, camera_id: str, capture_ts_ns: int, now_ns: int, lookahead_ns: int = 0
    ) -> str | None:
        """Why a frame whose turn for detection came at `now_ns` skips it, or None to
        analyse it (then recorded as its camera's newest analysed frame).

        Under capacity every frame is analysed, but one that waited past `max_lag_ms`, which
        proves the job past capacity after all (the guard's meter learns it) and is judged as
        past capacity. Past capacity, a frame older than `max_age_ms` is not analysed, unless
        its camera is starving; nor is any frame once its batch spent its part of the
        micro-batch's analysis budget, but for the batch's first and, up to twice the whole
        budget, those of starving cameras. `lookahead_ns`: when the camera's next frame comes
        to a batch (`freshness.lookaheads`).
        """
        settings, guard, budget = self.settings, self.guard, self.budget
        if settings.max_age_ms is None:
            return None
        age_ms = (now_ns - capture_ts_ns) / 1e6
        if not self.past_capacity:
            if settings.max_lag_ms is None or age_ms <= settings.max_lag_ms:
                if guard is not None:
                    guard.claim(camera_id, capture_ts_ns, True)
                return None
            if guard is not None and guard.meter is not None:
                guard.meter.lagging(settings.task_slots)
        reason = None
        if budget is not None and (shed := budget.spent(now_ns)) is not None:
            reason = shed
            if (
                guard is not None
                and budget.starving_allowed(now_ns)
                and guard.claim(camera_id, capture_ts_ns, False, lookahead_ns)
            ):
                reason = None  # a starving camera's frame goes on past the budget (bounded)
        elif age_ms > settings.max_age_ms:
            reason = f"stale: {age_ms:.0f} ms old > {settings.max_age_ms} ms"
            if guard is not None and guard.claim(camera_id, capture_ts_ns, False, lookahead_ns):
                reason = None  # a starving camera's frame, however old
        elif guard is not None:
            guard.claim(camera_id, capture_ts_ns, True)
        if reason is None and budget is not None:
            budget.analysing()
        return reason


def batch_shedding(
    frames: Sequence[tuple[str, int, int]],
    settings: RecordSettings,
    guard: FreshnessGuard | None,
    started_ns: int,
) -> Shedding:
    """How a batch of valid frames (camera id, seq, capture time) sheds: whether it is past
    capacity (with no meter, no history: always; else as the meter judges it, its cameras'
    rates updated from this batch), and, past it, its analysis budget."""
    if settings.max_age_ms is None:
        return Shedding(settings, past_capacity=False)
    meter = guard.meter if guard is not None else None
    if meter is not None:
        meter.frames(list(frames))
        if not meter.past_capacity(settings.task_slots):
            return Shedding(settings, past_capacity=False, guard=guard)
    cameras = {camera_id for camera_id, _, _ in frames}
    return Shedding(settings, True, guard, _budget(cameras, settings, guard, started_ns))


def _budget(
    cameras: set[str], settings: RecordSettings, guard: FreshnessGuard | None, started_ns: int
) -> BatchBudget | None:
    """This batch's part of a micro-batch's analysis budget: its cameras' share of the live
    cameras, times the tasks that run at once (at most the whole budget)."""
    if settings.batch_budget_ms is None:
        return None
    live = max(len(cameras), guard.live_cameras(cameras) if guard is not None else 0, 1)
    share = min(1.0, settings.task_slots * len(cameras) / live)
    budget_ms = max(1, round(settings.batch_budget_ms * share))
    # Starving cameras' frames may take up to twice the whole budget: no camera starves, and
    # a batch stays short whatever the number of cameras.
    return BatchBudget(budget_ms, started_ns, starving_ms=2 * settings.batch_budget_ms)


def early_skips(
    captures: Sequence[tuple[str, int]],
    settings: RecordSettings,
    now_ns: int,
    candidates: set[int] | None = None,
) -> dict[int, str]:
    """Past capacity, the frames (by index into `captures`: camera id and capture time, in
    the batch's order) whose detection would be skipped however soon their turn came, with
    the reason: not their camera's newest in the batch, and older than `max_age_ms` already
    or not among the `candidates` (the first frames in the detection order, as many as the
    batch may analyse: `LoadMeter.forecast`). Per camera only a run of its first frames (in
    the batch's order), so that they go out before its others."""
    if settings.max_age_ms is None:
        return {}
    max_age_ns = settings.max_age_ms * 1_000_000
    by_camera: dict[str, list[int]] = {}
    for index, (camera_id, _) in enumerate(captures):
        by_camera.setdefault(camera_id, []).append(index)
    early: dict[int, str] = {}
    for indices in by_camera.values():
        # A starving camera's claim goes to its newest frame (first in the detection order).
        newest = max(indices, key=lambda index: captures[index][1])
        for index in indices:
            age_ns = now_ns - captures[index][1]
            if index == newest:
                break
            if age_ns > max_age_ns:
                early[index] = f"stale: {age_ns / 1e6:.0f} ms old > {settings.max_age_ms} ms"
            elif candidates is not None and index not in candidates:
                early[index] = "shed: past capacity, its camera's newer frames go first"
            else:
                break
    return early
