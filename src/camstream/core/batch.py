"""A batch of records through the per-record stages, with the motion gate between them.

The gate decides per camera in the camera's order, so it cannot run inside the parallel
per-record map; the expensive stages around it still can:

1. check each record against the contract, and make its motion thumbnail (parallel);
2. decide per frame, in the batch's order: analyse, or carry the boxes of the camera's last
   analysed frame (sequential, about 10 us a frame);
3. detect faces on the frames to analyse (parallel): on the whole frame, or, for a frame
   that moved, on its moving regions, keeping its camera's boxes outside them (in order).
   Under the `live` policy the frames go starving cameras first, then round robin over the
   cameras, each one's newest first, and
   each is judged fresh or not when its turn comes (`camstream.core.freshness`);
4. draw, fit and make each output record and its detection event (parallel).

One result per record (`process_batch`: in the records' order; `process_batch_parts`: in
parts as they are known, past capacity the frames that skip detection anyway first, so that
they do not wait for it), and none of it raises for a record: a record
that fails at any stage becomes a dead letter with the reason. An environment failure
(`camstream.errors.ENVIRONMENT_FAILURES`) is raised: every record would fail alike. Plain
Python: the caller hands in the records and a `map` (a thread pool's, or the builtin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from camstream.core.analysis import detect_in_regions
from camstream.core.contract import RecordSource
from camstream.core.freshness import FreshnessGuard, detection_order, lookaheads
from camstream.core.load import LoadMeter
from camstream.core.motion import GateDecision, MotionGate, motion_thumbnail, overlaps
from camstream.core.records import (
    BatchBudget,
    CheckedFrame,
    Clock,
    Headers,
    ProcessedRecord,
    check_record,
    dead_letter,
    detect_frame,
    finish_frame,
    normalise,
    reason,
    record_failures,
    skipped_output,
    stale_output,
)
from camstream.core.settings import RecordSettings
from camstream.errors import ENVIRONMENT_FAILURES, FrameError

Mapper = Callable[..., Iterable[Any]]


@dataclass(eq=False)  # each item is itself (kept in sets by identity)
class _Item:
    key: bytes | None
    value: bytes | None
    headers: Headers
    result: ProcessedRecord | None = None  # set once the record's outcome is known
    frame: CheckedFrame | None = None
    thumb: np.ndarray | None = None
    decision: GateDecision | None = None
    boxes: np.ndarray | None = None
    in_regions: bool = False  # detected on the moving regions only
    source: RecordSource | None = None  # where it was read, for its dead letter
    lookahead_ns: int = 0  # live policy: when its camera's next chance comes


def process_batch(
    records: Sequence[tuple[Any, ...]],
    settings: RecordSettings,
    gate: MotionGate | None = None,
    mapper: Mapper = map,
    clock: Clock = time.time_ns,
    guard: FreshnessGuard | None = None,
) -> list[ProcessedRecord]:
    """The records' outcomes, in order. Without a gate every valid frame is analysed, but
    under the `live` policy (`settings.max_age_ms`) those too old by their turn.

    A record is (key, value, headers), or (key, value, headers, RecordSource) to name
    where it was read in its dead letter. Under the `live` policy the frames are analysed
    newest first, and with a `guard` no camera starves (`camstream.core.freshness`).
    """
    results: list[ProcessedRecord | None] = [None] * len(records)
    for part in process_batch_parts(records, settings, gate, mapper, clock, guard):
        for index, result in part:
            results[index] = result
    return results  # type: ignore[return-value]


def process_batch_parts(
    records: Sequence[tuple[Any, ...]],
    settings: RecordSettings,
    gate: MotionGate | None = None,
    mapper: Mapper = map,
    clock: Clock = time.time_ns,
    guard: FreshnessGuard | None = None,
) -> Iterator[list[tuple[int, ProcessedRecord]]]:
    """`process_batch`'s outcomes as (record index, outcome), in parts as they are known,
    each part in the records' order; every record is in exactly one part.

    Past capacity, the frames that will skip detection anyway go out first, before the
    others are analysed (`early_skips`): nothing they show waits for detection it does not
    get. Each camera's frames stay in order: those that go first are the oldest of their
    camera in the batch. Otherwise there is one part.
    """
    started_ns = clock()  # the batch's analysis budget runs from here
    cpu_started_ns = time.process_time_ns()  # what the batch costs, all its threads
    normalised = [normalise(*record[:3]) for record in records]
    items = [_Item(key, value, headers) for key, value, headers, _ in normalised]
    for item, record in zip(items, records, strict=True):
        item.source = record[3] if len(record) > 3 else None
    problems = [problem for *_, problem in normalised]

    def failures(item: _Item) -> AbstractContextManager[None]:
        """Where a stage's work on `item` goes: its failure makes its dead letter."""

        def fail(exc: Exception) -> None:
            item.result = dead_letter(
                item.key, item.value, item.headers, reason(exc), settings, clock, item.source
            )

        return record_failures(fail)

    def check(item: _Item, problem: str) -> _Item:
        with failures(item):
            if problem:
                raise FrameError(problem)
            checked = check_record(item.key, item.value, item.headers, settings)
            item.frame = checked
            if gate is not None:
                item.thumb = motion_thumbnail(
                    checked.jpeg, checked.info, settings.motion.thumb_width
                )
        return item

    _run(mapper(check, items, problems))
    pending = [item for item in items if item.result is None and item.frame is not None]

    if gate is not None:
        for item in pending:
            try:
                meta = item.frame.meta  # type: ignore[union-attr]
                item.decision = gate.decide(
                    meta.camera_id, meta.seq, meta.capture_ts_ns, (meta.width, meta.height),
                    item.thumb,  # type: ignore[arg-type]
                )  # fmt: skip
            except ENVIRONMENT_FAILURES:
                raise
            except Exception:  # no decision is a decision to analyse
                item.decision = None

    def detect(item: _Item) -> _Item:
        with failures(item):
            frame, decision = item.frame, item.decision
            assert frame is not None
            stale = stale_output(frame, settings, clock, guard, budget, item.lookahead_ns, shedding)
            if stale is not None:  # too old by its turn, or its batch's time is spent
                item.result = stale
                return item
            if decision is not None and decision.regions:
                item.boxes = detect_in_regions(
                    frame.jpeg, frame.info, settings.detection, decision.regions
                )
                item.in_regions = True
            else:
                item.boxes = detect_frame(frame, settings)
                if decision is not None:
                    decision.reference.boxes_xyxy = item.boxes
        return item

    to_detect = [item for item in pending if _analyse(item)]
    budget = None
    emitted: list[int] = []  # indices of the records already yielded
    meter = guard.meter if guard is not None else None
    shedding = settings.max_age_ms is not None and _past_capacity(pending, settings, meter)
    if shedding:  # past capacity, the time goes to the newest frames
        in_order = to_detect  # the batch's order
        ahead = lookaheads([_camera_and_capture(item) for item in to_detect])
        for item, lookahead_ns in zip(to_detect, ahead, strict=True):
            item.lookahead_ns = lookahead_ns
        to_detect = detection_order(
            to_detect, _camera_and_capture, guard, lambda item: item.lookahead_ns
        )
        budget = _budget(pending, settings, guard, started_ns)
        if gate is None:  # with the gate, a frame may be the model of the frames after it
            forecast = None if meter is None or budget is None else meter.forecast(budget.budget_ms)
            candidates = None if forecast is None else set(to_detect[:forecast])
            early = early_skips(in_order, settings, started_ns, candidates)
            for item in early:
                with failures(item):
                    item.result = skipped_output(
                        item.frame,
                        early[item],
                        settings,
                        clock,  # type: ignore[arg-type]
                    )
            to_detect = [item for item in to_detect if item not in early]
            emitted = [index for index, item in enumerate(items) if item.result is not None]
            if emitted:
                yield [(index, items[index].result) for index in emitted]  # type: ignore[misc]
    _run(mapper(detect, to_detect))
    # In order: a frame analysed on its moving regions keeps the boxes of the frame it moved
    # from that lie outside them (the person who stood still while another walked by). That
    # frame's boxes are known by now, from an earlier batch or earlier in this one.
    for item in pending:
        if not item.in_regions or item.result is not None:
            continue
        with failures(item):
            decision = item.decision
            assert decision is not None and decision.previous is not None
            before = decision.previous.boxes_xyxy
            if before is None:  # its detection failed: no boxes to keep, look at it all
                item.boxes = detect_frame(item.frame, settings)  # type: ignore[arg-type]
            else:
                kept = [box for box in before if not overlaps(box, decision.regions)]
                item.boxes = np.concatenate([item.boxes, np.asarray(kept, np.int32).reshape(-1, 4)])
            decision.reference.boxes_xyxy = item.boxes
    # A model whose detection failed (or was skipped as stale) is no model: analyse the next.
    if gate is not None:
        for item in pending:
            if item.decision is not None and item.decision.analyse and item.result is not None:
                gate.drop(item.frame.meta.camera_id, item.decision.reference)  # type: ignore[union-attr]

    def finish(item: _Item) -> _Item:
        with failures(item):
            frame = item.frame
            assert frame is not None
            carried_from = None
            if not _analyse(item):
                reference = item.decision.reference  # type: ignore[union-attr]
                if reference.boxes_xyxy is None:  # its detection failed: detect this one
                    stale = stale_output(frame, settings, clock, guard, budget, 0, shedding)
                    if stale is not None:
                        item.result = stale
                        return item
                    item.boxes = detect_frame(frame, settings)
                else:
                    item.boxes, carried_from = reference.boxes_xyxy, reference.seq
            assert item.boxes is not None
            item.result = finish_frame(frame, item.boxes, settings, clock, carried_from)
        return item

    _run(mapper(finish, [item for item in pending if item.result is None]))
    if meter is not None:  # the whole batch's CPU over its analysed frames: what a frame costs
        analysed = sum(1 for item in pending if item.boxes is not None)
        if analysed:
            meter.cost((time.process_time_ns() - cpu_started_ns) // analysed)
        if shedding and budget is not None:  # what the next batch may analyse
            meter.analysed(analysed, budget.budget_ms)
    done = set(emitted)
    yield [(i, item.result) for i, item in enumerate(items) if i not in done]  # type: ignore[misc]


def early_skips(
    to_detect: list[_Item],
    settings: RecordSettings,
    now_ns: int,
    candidates: set[_Item] | None = None,
) -> dict[_Item, str]:
    """Past capacity, the frames whose detection would be skipped however soon their turn
    came, with the reason: not their camera's newest in the batch, and older than
    `max_age_ms` already or not among the `candidates` (the first frames in the detection
    order, as many as the batch may analyse: `LoadMeter.forecast`). Per camera only a run
    of its first frames (in the batch's order), so that they go out before its others."""
    if settings.max_age_ms is None:
        return {}
    max_age_ns = settings.max_age_ms * 1_000_000
    by_camera: dict[str, list[_Item]] = {}
    for item in to_detect:
        by_camera.setdefault(_camera_and_capture(item)[0], []).append(item)
    early: dict[_Item, str] = {}
    for frames in by_camera.values():
        # A starving camera's claim goes to its newest frame (first in the detection order).
        newest = max(frames, key=lambda item: _camera_and_capture(item)[1])
        for item in frames:
            age_ns = now_ns - _camera_and_capture(item)[1]
            if item is newest:
                break
            if age_ns > max_age_ns:
                early[item] = f"stale: {age_ns / 1e6:.0f} ms old > {settings.max_age_ms} ms"
            elif candidates is not None and item not in candidates:
                early[item] = "shed: past capacity, its camera's newer frames go first"
            else:
                break
    return early


def _past_capacity(pending: list[_Item], settings: RecordSettings, meter: LoadMeter | None) -> bool:
    """Whether this batch sheds: with no meter (no history), always; else while the meter
    judges the job past capacity, its cameras' rates updated from this batch."""
    if meter is None:
        return True
    metas = [item.frame.meta for item in pending if item.frame is not None]
    meter.frames([(meta.camera_id, meta.seq, meta.capture_ts_ns) for meta in metas])
    return meter.past_capacity(settings.task_slots)


def _budget(
    pending: list[_Item], settings: RecordSettings, guard: FreshnessGuard | None, started_ns: int
) -> BatchBudget | None:
    """This batch's part of a micro-batch's analysis budget: its cameras' share of the live
    cameras, times the tasks that run at once (at most the whole budget)."""
    if settings.batch_budget_ms is None:
        return None
    cameras = {_camera_and_capture(item)[0] for item in pending}
    live = max(len(cameras), guard.live_cameras(cameras) if guard is not None else 0, 1)
    share = min(1.0, settings.task_slots * len(cameras) / live)
    budget_ms = max(1, round(settings.batch_budget_ms * share))
    # Starving cameras' frames may take up to twice the whole budget: no camera starves, and
    # a batch stays short whatever the number of cameras.
    return BatchBudget(budget_ms, started_ns, starving_ms=2 * settings.batch_budget_ms)


def _camera_and_capture(item: _Item) -> tuple[str, int]:
    assert item.frame is not None
    return item.frame.meta.camera_id, item.frame.meta.capture_ts_ns


def _analyse(item: _Item) -> bool:
    return item.decision is None or item.decision.analyse


def _run(results: Iterator[Any] | Iterable[Any]) -> None:
    for _ in results:  # a lazy map does its work as it is consumed
        pass
