"""A batch of records through the per-record stages: check, gate, plan, detect, finish.

This is the path the job runs (`camstream.spark.worker` only hands it Arrow rows), and
`process_record` is the same path for one record. Each stage is a named function over the
batch's typed state (`Batch`, and a `Frame` per record that passed the contract):

1. `check_stage`: each record against the contract, and its motion thumbnail (parallel);
2. `gate_stage`: per frame, in the batch's order, analyse it or carry the boxes of its
   camera's last analysed frame (sequential: the gate decides per camera in order; about
   10 us a frame);
3. `plan_stage`: under the `live` policy, past capacity, the order the frames are analysed
   in (starving cameras first, then round robin over the cameras, each one's newest first:
   `camstream.core.freshness`) and the frames that skip detection however soon their turn
   came, which go out at once (`camstream.core.shedding`);
4. `detect_stage`: each frame judged fresh or not when its turn comes, the one verdict it
   gets (`judge`), then faces on the whole frame or on its moving regions (parallel);
   `regions_stage` then keeps, in order, the boxes of the frame it moved from that lie
   outside them (the person who stood still while another walked by);
5. `finish_stage`: draw, fit and make each output record and its detection event
   (parallel; `camstream.core.output`).

One outcome per record, and no stage raises for a record: a record that fails at any stage
becomes a dead letter with the reason. An environment failure
(`camstream.errors.ENVIRONMENT_FAILURES`) is raised: every record would fail alike. Plain
Python: the caller hands in the records and a `map` (a thread pool's, or the builtin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camstream.core.analysis import detect_in_jpeg, detect_in_regions
from camstream.core.boxes import box_contains, iou, widen
from camstream.core.contract import Headers, RecordSource
from camstream.core.freshness import FreshnessGuard, detection_order, lookaheads
from camstream.core.motion import GateDecision, MotionGate, motion_thumbnail, overlaps
from camstream.core.output import finish_frame, skipped_output
from camstream.core.records import (
    CheckedFrame,
    Clock,
    ProcessedRecord,
    check_record,
    dead_letter,
    normalise,
    reason,
    record_failures,
    safe_clock,
)
from camstream.core.settings import RecordSettings
from camstream.core.shedding import Shedding, batch_shedding, early_skips
from camstream.errors import ENVIRONMENT_FAILURES, FrameError

Mapper = Callable[..., Iterable[Any]]


@dataclass(frozen=True)
class Record:
    """A record as it came: key, value and headers as bytes, where it was read (for its
    dead letter) and what could not be read of it (`records.normalise`)."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    source: RecordSource | None
    problem: str


@dataclass(eq=False)  # each frame is itself (kept in sets by identity)
class Frame:
    """A record that passed the contract, on its way through the stages."""

    index: int  # of its record in the batch
    checked: CheckedFrame
    thumb: np.ndarray | None = None  # the motion gate's thumbnail
    decision: GateDecision | None = None  # None: analyse it (no gate, or no decision)
    boxes: np.ndarray | None = None  # its faces once detected (or carried)
    in_regions: bool = False  # detected on the moving regions only
    lookahead_ns: int = 0  # live policy: when its camera's next chance comes

    @property
    def camera_id(self) -> str:
        return self.checked.meta.camera_id

    @property
    def capture_ts_ns(self) -> int:
        return self.checked.meta.capture_ts_ns

    @property
    def needs_detection(self) -> bool:
        """Detect on it, unless it skips detection (else the gate carries its camera's
        model's boxes to it)."""
        return self.decision is None or self.decision.analyse


@dataclass(eq=False)
class Batch:
    """A batch's records, their outcomes as they become known, and what judges them."""

    records: list[Record]
    settings: RecordSettings
    gate: MotionGate | None
    mapper: Mapper
    clock: Clock
    guard: FreshnessGuard | None
    outcomes: list[ProcessedRecord | None] = field(init=False)

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.records)

    def done(self, frame: Frame) -> bool:
        return self.outcomes[frame.index] is not None

    def failures(self, index: int) -> AbstractContextManager[None]:
        """Where a stage's work on a record goes: its failure makes its dead letter."""

        def fail(exc: Exception) -> None:
            record = self.records[index]
            self.outcomes[index] = dead_letter(
                record.key,
                record.value,
                record.headers,
                reason(exc),
                self.settings,
                self.clock,
                record.source,
            )

        return record_failures(fail)


def process_record(
    key: Any, value: Any, headers: Any, settings: RecordSettings, clock: Clock = time.time_ns
) -> ProcessedRecord:
    """One Kafka record through the job's path (`process_batch` of one record). Never
    raises for the record's sake: one that cannot be processed comes back with ok=False,
    as it came, and the reason (the exception's type and message). Under the `live` policy
    (`settings.max_age_ms`) a frame captured longer ago than that skips detection and goes
    out marked `skipped`."""
    return process_batch([(key, value, headers)], settings, clock=clock)[0]


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
    parts = process_batch_parts(records, settings, gate, mapper, clock, guard)
    outcomes = {index: result for part in parts for index, result in part}
    return [outcomes[index] for index in range(len(records))]


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
    others are analysed (`plan_stage`): nothing they show waits for detection it does not
    get. Each camera's frames stay in order: those that go first are the oldest of their
    camera in the batch. Otherwise there is one part.
    """
    started_ns = safe_clock(clock)  # the batch's analysis budget runs from here
    cpu_started_ns = time.process_time_ns()  # what the batch costs, all its threads
    batch = Batch([_record(raw) for raw in records], settings, gate, mapper, clock, guard)
    frames = check_stage(batch)
    gate_stage(batch, frames)
    plan = plan_stage(batch, frames, started_ns)
    early = _known(batch) if plan.early_part else []
    if early:
        yield [(index, _outcome(batch, index)) for index in early]
    detect_stage(batch, plan, plan.order)
    regions_stage(batch, frames)
    drop_failed_models(batch, frames)
    finish_stage(batch, plan, frames)
    _measure(batch, plan, frames, cpu_started_ns)
    sent = set(early)
    yield [(index, _outcome(batch, index)) for index in range(len(records)) if index not in sent]


def _record(raw: tuple[Any, ...]) -> Record:
    key, value, headers, problem = normalise(*raw[:3])
    return Record(key, value, headers, raw[3] if len(raw) > 3 else None, problem)


def check_stage(batch: Batch) -> list[Frame]:
    """The records that pass the contract, as frames (with their motion thumbnails when
    the batch is gated); each other record's outcome is its dead letter."""
    thumb_width = batch.settings.motion.thumb_width

    def check(index: int) -> Frame | None:
        record = batch.records[index]
        with batch.failures(index):
            if record.problem:
                raise FrameError(record.problem)
            checked = check_record(record.key, record.value, record.headers, batch.settings)
            frame = Frame(index, checked)
            if batch.gate is not None:
                frame.thumb = motion_thumbnail(checked.jpeg, checked.info, thumb_width)
            return frame
        return None  # it failed: `failures` made its dead letter

    return [frame for frame in batch.mapper(check, range(len(batch.records))) if frame is not None]


def gate_stage(batch: Batch, frames: list[Frame]) -> None:
    """The gate's decision on each frame, in the batch's order (none without a gate)."""
    if batch.gate is None:
        return
    for frame in frames:
        meta = frame.checked.meta
        try:
            assert frame.thumb is not None  # made by check_stage for a gated batch
            frame.decision = batch.gate.decide(
                meta.camera_id, meta.seq, meta.capture_ts_ns, (meta.width, meta.height), frame.thumb
            )
        except ENVIRONMENT_FAILURES:
            raise
        except Exception:  # no decision is a decision to analyse
            frame.decision = None


@dataclass(frozen=True)
class Plan:
    """What a batch analyses, in which order, and how it judges each frame's turn."""

    order: list[Frame]  # the frames to detect on, in the order they are analysed
    shedding: Shedding  # the verdict on each frame when its turn comes (`judge`)
    early_part: bool  # the outcomes known now go out before the analysis


def plan_stage(batch: Batch, frames: list[Frame], started_ns: int) -> Plan:
    """The batch's plan; past capacity (the `live` policy), the time goes to the newest
    frames (`detection_order`), and, without a gate (with one, a frame may be the model of
    the frames after it), the frames that will skip detection however soon their turn came
    get their outcomes now, to go out first with the dead letters of the check."""
    to_detect = [frame for frame in frames if frame.needs_detection]
    settings, guard = batch.settings, batch.guard
    seen = [(f.camera_id, f.checked.meta.seq, f.capture_ts_ns) for f in frames]
    shedding = batch_shedding(seen, settings, guard, started_ns)
    if not shedding.past_capacity:
        return Plan(to_detect, shedding, early_part=False)
    ahead = lookaheads([(f.camera_id, f.capture_ts_ns) for f in to_detect])
    for frame, lookahead_ns in zip(to_detect, ahead, strict=True):
        frame.lookahead_ns = lookahead_ns
    order = detection_order(
        to_detect,
        lambda frame: (frame.camera_id, frame.capture_ts_ns),
        guard,
        lambda frame: frame.lookahead_ns,
    )
    if batch.gate is not None:
        return Plan(order, shedding, early_part=False)
    early = early_skips(
        [(frame.camera_id, frame.capture_ts_ns) for frame in to_detect],
        settings,
        started_ns,
        _candidates(to_detect, order, shedding),
    )
    for position, why in early.items():
        frame = to_detect[position]
        with batch.failures(frame.index):
            batch.outcomes[frame.index] = skipped_output(frame.checked, why, settings, batch.clock)
    going_early = {to_detect[position] for position in early}
    return Plan([f for f in order if f not in going_early], shedding, early_part=True)


def _candidates(frames: list[Frame], order: list[Frame], shedding: Shedding) -> set[int] | None:
    """The positions in `frames` (the batch's order) of those the batch may analyse: the
    first of the detection `order`, as many as the load meter forecasts (None: none)."""
    meter = shedding.guard.meter if shedding.guard is not None else None
    budget = shedding.budget
    if meter is None or budget is None:
        return None
    first = set(order[: meter.forecast(budget.budget_ms)])
    return {position for position, frame in enumerate(frames) if frame in first}


def judge(batch: Batch, plan: Plan, frame: Frame) -> bool:
    """The frame's one verdict, when its turn for detection comes: analyse it (True), or
    skip detection (its outcome says why)."""
    if batch.settings.max_age_ms is None:  # no `live` policy: every frame is analysed
        return True
    why = plan.shedding.skip_reason(
        frame.camera_id, frame.capture_ts_ns, batch.clock(), frame.lookahead_ns
    )
    if why is None:
        return True
    batch.outcomes[frame.index] = skipped_output(frame.checked, why, batch.settings, batch.clock)
    return False


CUT_FACE_IOU = 0.3  # a box this close to another is the same face


def detect_frame(frame: CheckedFrame, settings: RecordSettings) -> np.ndarray:
    """The frame's faces on the whole frame, (N, 4) int32 xyxy in its pixels."""
    return detect_in_jpeg(frame.jpeg, frame.info, settings.detection)


def detect_stage(batch: Batch, plan: Plan, to_detect: list[Frame]) -> None:
    """Faces on each frame to analyse, in the planned order: on its moving regions when
    the gate found some, else on the whole frame (which becomes its camera's model's)."""

    def detect(frame: Frame) -> None:
        with batch.failures(frame.index):
            if not judge(batch, plan, frame):
                return
            decision = frame.decision
            if decision is not None and decision.regions:
                detection = batch.settings.detection
                checked = frame.checked
                frame.boxes = detect_in_regions(
                    checked.jpeg, checked.info, detection, decision.regions
                )
                frame.in_regions = True
            else:
                frame.boxes = detect_frame(frame.checked, batch.settings)
                if decision is not None:
                    decision.reference.boxes_xyxy = frame.boxes

    _run(batch.mapper(detect, to_detect))


def regions_stage(batch: Batch, frames: list[Frame]) -> None:
    """In order: a frame analysed on its moving regions keeps the boxes of the frame it
    moved from that lie outside them. That frame's boxes are known by now, from an earlier
    batch or earlier in this one."""
    for frame in frames:
        if not frame.in_regions or batch.done(frame):
            continue
        with batch.failures(frame.index):
            decision = frame.decision
            assert decision is not None and decision.previous is not None
            assert frame.boxes is not None
            before = decision.previous.boxes_xyxy
            if before is None:  # its model's detection failed: no boxes to keep, look at it all
                frame.boxes = detect_frame(frame.checked, batch.settings)
            else:
                kept = [box for box in before if not overlaps(box, decision.regions)]
                frame.boxes = np.concatenate(
                    [
                        frame.boxes,
                        np.asarray(kept, np.int32).reshape(-1, 4),
                        *cut_faces(frame, before, batch.settings),
                    ]
                )
            decision.reference.boxes_xyxy = frame.boxes


def cut_faces(frame: Frame, before: np.ndarray, settings: RecordSettings) -> list[np.ndarray]:
    """Faces where the camera had one that a moving region cut through and nothing found
    in the region now: that face is looked at whole (a region's edge through a face hides
    it from the detector; a headlight sweeping past a person does that). Boxes found there
    that a region's detection already holds are left out."""
    assert frame.decision is not None and frame.boxes is not None
    regions = frame.decision.regions
    cut = [
        box
        for box in before
        if overlaps(box, regions)
        and not any(box_contains(region, box) for region in regions)
        and not any(iou(box, found) >= CUT_FACE_IOU for found in frame.boxes)
    ]
    if not cut:
        return []
    info = frame.checked.info
    margin = round(settings.motion.region_margin * info.width)
    widened = tuple(widen(box, margin, info.width, info.height) for box in cut)
    found = detect_in_regions(frame.checked.jpeg, info, settings.detection, widened)
    new = [box for box in found if not any(iou(box, old) >= CUT_FACE_IOU for old in frame.boxes)]
    return [np.asarray(new, np.int32).reshape(-1, 4)]


def drop_failed_models(batch: Batch, frames: list[Frame]) -> None:
    """A model whose detection failed (or was skipped) is no model: the gate forgets it,
    and the camera's next frame is analysed."""
    if batch.gate is None:
        return
    for frame in frames:
        if frame.decision is not None and frame.decision.analyse and batch.done(frame):
            batch.gate.drop(frame.camera_id, frame.decision.reference)


def finish_stage(batch: Batch, plan: Plan, frames: list[Frame]) -> None:
    """Each frame's output record: with its boxes, or its model's carried forward (with
    `carried_from_seq`); a frame whose model's detection failed is analysed itself."""

    def finish(frame: Frame) -> None:
        with batch.failures(frame.index):
            carried_from = None
            if not frame.needs_detection:
                assert frame.decision is not None
                reference = frame.decision.reference
                if reference.boxes_xyxy is None:  # its model's detection failed
                    if not judge(batch, plan, frame):
                        return
                    frame.boxes = detect_frame(frame.checked, batch.settings)
                else:
                    frame.boxes, carried_from = reference.boxes_xyxy, reference.seq
            assert frame.boxes is not None
            batch.outcomes[frame.index] = finish_frame(
                frame.checked, frame.boxes, batch.settings, batch.clock, carried_from
            )

    _run(batch.mapper(finish, [frame for frame in frames if not batch.done(frame)]))


def _measure(batch: Batch, plan: Plan, frames: list[Frame], cpu_started_ns: int) -> None:
    """What the batch tells the load meter: the CPU a frame with boxes costs (detected or
    carried: the cameras' rates count every frame), and how many the budget allowed."""
    meter = batch.guard.meter if batch.guard is not None else None
    if meter is None:
        return
    worked = sum(1 for frame in frames if frame.boxes is not None)
    if worked:
        meter.cost((time.process_time_ns() - cpu_started_ns) // worked)
    budget = plan.shedding.budget
    if plan.shedding.past_capacity and budget is not None:  # what the next batch may analyse
        meter.analysed(worked, budget.budget_ms)


def _known(batch: Batch) -> list[int]:
    return [index for index, outcome in enumerate(batch.outcomes) if outcome is not None]


def _outcome(batch: Batch, index: int) -> ProcessedRecord:
    outcome = batch.outcomes[index]
    assert outcome is not None, "every stage leaves each record an outcome"
    return outcome


def _run(results: Iterable[Any]) -> None:
    for _ in results:  # a lazy map does its work as it is consumed
        pass
