"""The per-record function: the frame contract and the per-frame function, for one record.

Plain Python over bytes, like the per-frame function it applies: Spark (or anything else)
only hands it a record's key, value and headers. `process_record` never raises for a
record: whatever goes wrong with one becomes a dead letter that carries the record as it
came (as far as it fits) and the reason, and every record it returns fits the topic it goes
to, however large the record came (compression lets in records far over a topic's limit).
A broken environment is no record's fault (`camstream.errors.ENVIRONMENT_FAILURES`): it
goes through, and fails the task.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from camstream.core.analysis import detect_in_jpeg
from camstream.core.annotation import annotate
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    H_FITTED,
    H_SKIPPED,
    H_VALUE_DROPPED,
    INPUT_HEADERS,
    RESULT_NAMES,
    FrameMeta,
    Headers,
    RecordSource,
    analytics_headers,
    bounded_key,
    contract_first_ranks,
    cut_headers,
    dead_letter_headers,
    detection_event,
    header_bytes,
    headers_dropped_note,
    record_bytes,
)
from camstream.core.freshness import FreshnessGuard
from camstream.core.jpeg import (
    FittedJpeg,
    JpegInfo,
    check_jpeg,
    decode_checked,
    decode_jpeg,
    encode_jpeg,
    fit_jpeg,
)
from camstream.core.settings import RecordSettings
from camstream.errors import ENVIRONMENT_FAILURES, FrameError

Clock = Callable[[], int]


@dataclass(frozen=True)
class ProcessedRecord:
    """What the job writes for one input record: to the output or to the dead-letter topic."""

    ok: bool
    key: bytes | None
    value: bytes | None
    headers: Headers
    error: str | None = None
    faces: int = 0
    skipped: bool = False
    fitted: bool = False
    # The motion gate: boxes carried from an earlier frame, or detected on this one.
    carried: bool = False
    analysed: bool = False
    # The detection event (JSON) of an output frame with faces, when events are written.
    event: bytes | None = None


def process_record(
    key: Any,
    value: Any,
    headers: Any,
    settings: RecordSettings,
    clock: Clock = time.time_ns,
) -> ProcessedRecord:
    """Apply the contract and the per-frame function to one Kafka record. Never raises for
    the record's sake.

    A record that cannot be processed comes back with ok=False, its original key, value
    and headers, and the reason (the exception's type and message), so that the caller
    dead-letters it and goes on with the frames around it. Every record returned fits its
    topic's size limit (`settings.output_max_bytes` or `settings.dead_letter_max_bytes`).
    An environment failure (`ENVIRONMENT_FAILURES`) is raised: every record would fail alike.

    Under the `live` freshness policy (`settings.max_age_ms`), a valid frame captured
    longer ago than that is validated like any other but not run through detection: it is
    passed on marked with a `skipped` header, so that a job that fell behind catches up
    with the present instead of lagging ever more (`camstream.core.freshness`; the batch
    path adds newest-first order and the per-camera starvation guard).

    A batch of records with the motion gate goes through the same stages
    (`check_record`, `detect_frame`, `finish_frame`) in `camstream.core.batch`.
    """
    key, value, headers, problem = normalise(key, value, headers)
    failures: list[BaseException] = []
    with record_failures(failures.append):
        if problem:
            raise FrameError(problem)
        frame = check_record(key, value, headers, settings)
        stale = stale_output(frame, settings, clock)
        if stale is not None:
            return stale
        return finish_frame(frame, detect_frame(frame, settings), settings, clock)
    return dead_letter(key, value, headers, reason(failures[0]), settings, clock)


def reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def record_failures(failed: Callable[[Exception], object]) -> Iterator[None]:
    """The per-record guarantee: a record's failure goes to `failed` (for its dead letter),
    and one bad record never stops the job; an environment failure goes through."""
    try:
        yield
    except ENVIRONMENT_FAILURES:
        raise  # not this record's fault: every record would fail alike
    except Exception as exc:
        failed(exc)


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
class CheckedFrame:
    """A record that passed the frame contract: its trimmed JPEG, parsed headers and size."""

    key: bytes
    jpeg: bytes
    info: JpegInfo
    meta: FrameMeta
    headers: Headers


def check_record(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    settings: RecordSettings,
) -> CheckedFrame:
    """The contract's checks; raises FrameError naming what is wrong."""
    if value is None:
        raise FrameError("frame value is null")
    if settings.max_frame_bytes is not None and len(value) > settings.max_frame_bytes:
        raise FrameError(
            f"frame value is {len(value)} bytes, over the {settings.max_frame_bytes}-byte limit"
            " (CAMSTREAM_MAX_FRAME_BYTES)"
        )
    meta = FrameMeta.from_headers(headers)
    if key is None:
        raise FrameError(
            f"record key is null: it must be the camera id ({meta.camera_id!r}), which keeps"
            " a camera's frames on one partition and in order"
        )
    if key != meta.camera_id.encode():
        raise FrameError(f"record key {key[:40]!r} differs from camera_id {meta.camera_id!r}")
    info = check_jpeg(value)
    if (info.width, info.height) != (meta.width, meta.height):
        raise FrameError(
            f"width/height headers say {meta.width}x{meta.height}"
            f" but the JPEG is {info.width}x{info.height}"
        )
    jpeg = value[: info.end]  # a trailer after the image is not passed on
    return CheckedFrame(key, jpeg, info, meta, headers)


def stale_output(
    frame: CheckedFrame,
    settings: RecordSettings,
    clock: Clock,
    guard: FreshnessGuard | None = None,
    budget: BatchBudget | None = None,
    lookahead_ns: int = 0,
    shedding: bool = True,
) -> ProcessedRecord | None:
    """Under the `live` policy, the output of a frame not to analyse, else None.

    Not `shedding` (the job under capacity, `camstream.core.load`), every frame is analysed
    but one that waited past `max_lag_ms`, which proves the job past capacity after all
    (the guard's meter learns it) and is judged as past capacity.

    Asked right before detection, when the frame's turn has come (it may have waited in its
    batch behind others). A frame older than `max_age_ms` is not analysed, unless its
    camera is starving (`guard`); nor is any frame once its batch has spent its part of the
    micro-batch's analysis budget (`budget`), but for the batch's first and, up to the whole
    budget, those of starving cameras. A frame to analyse is recorded
    as its camera's newest analysed one. `lookahead_ns`: when the camera's next frame
    comes to a batch (`freshness.lookaheads`).
    """
    if settings.max_age_ms is None:
        return None
    now = clock()
    age_ms = (now - frame.meta.capture_ts_ns) / 1e6
    if not shedding:
        if settings.max_lag_ms is None or age_ms <= settings.max_lag_ms:
            if guard is not None:
                guard.claim(frame.meta.camera_id, frame.meta.capture_ts_ns, True)
            return None
        if guard is not None and guard.meter is not None:
            guard.meter.lagging(settings.task_slots)
    reason = None
    if budget is not None and (shed := budget.spent(now)) is not None:
        reason = shed
        if (
            guard is not None
            and budget.starving_allowed(now)
            and guard.claim(frame.meta.camera_id, frame.meta.capture_ts_ns, False, lookahead_ns)
        ):
            reason = None  # a starving camera's frame goes on past the budget (bounded)
    elif age_ms > settings.max_age_ms:
        reason = f"stale: {age_ms:.0f} ms old > {settings.max_age_ms} ms"
        camera_id, capture_ts_ns = frame.meta.camera_id, frame.meta.capture_ts_ns
        if guard is not None and guard.claim(camera_id, capture_ts_ns, False, lookahead_ns):
            reason = None  # a starving camera's frame, however old
    elif guard is not None:
        guard.claim(frame.meta.camera_id, frame.meta.capture_ts_ns, True)
    if reason is None:
        if budget is not None:
            budget.analysing()
        return None
    return skipped_output(frame, reason, settings, clock)


def skipped_output(
    frame: CheckedFrame, reason: str, settings: RecordSettings, clock: Clock
) -> ProcessedRecord:
    """A frame that skips detection, validated like every frame (the cheapest full decode:
    1/8 size, grey), unannotated and marked with the reason."""
    decode_checked(frame.jpeg, frame.info, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    skipped = (H_SKIPPED, reason.encode())
    return _output(
        frame.meta, frame.jpeg, None, _NO_BOXES, frame.headers, settings, clock, [skipped]
    )


def detect_frame(frame: CheckedFrame, settings: RecordSettings) -> np.ndarray:
    """The frame's faces, (N, 4) int32 xyxy in its pixels."""
    return detect_in_jpeg(frame.jpeg, frame.info, settings.detection)


def finish_frame(
    frame: CheckedFrame,
    boxes: np.ndarray,
    settings: RecordSettings,
    clock: Clock,
    carried_from_seq: int | None = None,
) -> ProcessedRecord:
    """The output record of an analysed frame: drawn on when it has boxes, fitted to the
    output topic, with its detection event. `carried_from_seq` marks boxes that the motion
    gate carried forward from that frame of the camera instead of detecting them."""
    extra = (
        [] if carried_from_seq is None else [(H_CARRIED_FROM_SEQ, str(carried_from_seq).encode())]
    )
    if len(boxes) == 0:
        result = _output(frame.meta, frame.jpeg, None, boxes, frame.headers, settings, clock, extra)
    else:
        detection = settings.detection
        annotated = annotate(
            decode_checked(frame.jpeg, frame.info),
            boxes,
            colour_bgr=detection.box_colour_bgr,
            thickness=detection.box_thickness,
        )
        drawn = encode_jpeg(annotated, settings.jpeg_quality)
        result = _output(frame.meta, drawn, annotated, boxes, frame.headers, settings, clock, extra)
    event = None
    if result.faces and settings.events_max_bytes is not None:
        event = detection_event(result.headers, settings.output_topic, settings.events_max_bytes)
    carried = carried_from_seq is not None
    return dataclasses.replace(result, carried=carried, analysed=not carried, event=event)


_NO_BOXES = np.zeros((0, 4), dtype=np.int32)


def _output(
    meta: FrameMeta,
    jpeg: bytes,
    image_bgr: np.ndarray | None,
    boxes: np.ndarray,
    headers: Headers,
    settings: RecordSettings,
    clock: Clock,
    extra: Sequence[tuple[str, bytes]] = (),
) -> ProcessedRecord:
    """The output record, re-encoded smaller when it would not fit the output topic.

    Headers that alone leave no room for any frame (only compression lets such a record
    in) are cut first: the input's own headers outside the contract, the largest first,
    until the frame fits as it is or none is left (`headers_dropped` says how many).
    """
    key = meta.camera_id.encode()
    limit = settings.output_max_bytes
    skipped = any(name == H_SKIPPED for name, _ in extra)
    out_headers = analytics_headers(headers, boxes.tolist(), clock(), extra=extra)
    if record_bytes(key, jpeg, out_headers) <= limit:
        return ProcessedRecord(True, key, jpeg, out_headers, faces=len(boxes), skipped=skipped)
    if record_bytes(key, None, out_headers) > limit:
        headers, extra = _cut_passed_headers(key, jpeg, headers, boxes, extra, limit, clock)
        out_headers = analytics_headers(headers, boxes.tolist(), clock(), extra=extra)
        if record_bytes(key, jpeg, out_headers) <= limit:
            return ProcessedRecord(True, key, jpeg, out_headers, faces=len(boxes), skipped=skipped)

    # Too large for the output topic: the same picture at lower quality, then smaller.
    image = image_bgr if image_bgr is not None else decode_jpeg(jpeg)
    source = {"source_width": meta.width, "source_height": meta.height}

    def candidate_headers(candidate: FittedJpeg) -> Headers:
        scale = candidate.width / meta.width
        scaled = np.rint(boxes.astype(np.float64) * scale).astype(np.int64).tolist()
        fitted = json.dumps({"jpeg_quality": candidate.quality, **source}, separators=(",", ":"))
        return analytics_headers(
            headers,
            scaled,
            clock(),
            size=(candidate.width, candidate.height),
            extra=[*extra, (H_FITTED, fitted.encode())],
        )

    def fits(candidate: FittedJpeg) -> bool:
        return record_bytes(key, candidate.jpeg, candidate_headers(candidate)) <= limit

    fitted, last = fit_jpeg(
        image,
        fits,
        min(settings.jpeg_quality, 100),
        min(settings.min_jpeg_quality, settings.jpeg_quality),
        settings.min_frame_width,
    )
    if fitted is None:
        raise FrameError(
            f"the annotated frame does not fit the output topic: still"
            f" {record_bytes(key, last.jpeg, candidate_headers(last))} bytes at JPEG quality"
            f" {last.quality} and {last.width}x{last.height}, over its max.message.bytes of"
            f" {limit} (raise it, or lower CAMSTREAM_MIN_JPEG_QUALITY or"
            " CAMSTREAM_MIN_FRAME_WIDTH)"
        )
    return ProcessedRecord(
        True,
        key,
        fitted.jpeg,
        candidate_headers(fitted),
        faces=len(boxes),
        skipped=skipped,
        fitted=True,
    )


def _cut_passed_headers(
    key: bytes,
    jpeg: bytes,
    headers: Headers,
    boxes: np.ndarray,
    extra: Sequence[tuple[str, bytes]],
    limit: int,
    clock: Clock,
) -> tuple[Headers, list[tuple[str, bytes]]]:
    """The input headers an output keeps when they alone would not fit its topic, and its
    extra headers with the note that says how many went. Only those the output passes on
    and the contract does not name may go."""
    ranks = [
        None if value is None or name in RESULT_NAMES or name in INPUT_HEADERS else 0
        for name, value in headers
    ]
    fixed = [h for h, rank in zip(headers, ranks, strict=True) if rank is None]
    passed = [h for h, rank in zip(headers, ranks, strict=True) if rank is not None]
    # Room for the note at its longest (every passed header gone), so that it fits too.
    longest = headers_dropped_note(len(passed), sum(header_bytes(*h) for h in passed))
    room = limit - record_bytes(
        key, jpeg, analytics_headers(fixed, boxes.tolist(), clock(), extra=[*extra, longest])
    )
    kept, count, size = cut_headers(headers, ranks, room)
    return kept, [*extra, headers_dropped_note(count, size)]


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    error: str,
    settings: RecordSettings,
    clock: Clock = time.time_ns,
    source: RecordSource | None = None,
) -> ProcessedRecord:
    """The record as it came, plus the reason, the time and where it came from; it fits the
    dead-letter topic, however large the record came.

    - A key longer than any camera id (MAX_KEY_BYTES) is replaced by its SHA-256, and
      `key_hashed` gives its length.
    - A dead-letter topic smaller than the input topic (someone else made it, with the
      broker's default limit) cannot take the largest records whole: then the value is left
      out, with a header that says so, and the key, headers, reason, source coordinates and
      the value's size still arrive.
    - Headers that even without the value would not fit are cut, the largest first, the
      contract's own last (`headers_dropped` says how many); the value stays if it fits
      beside those kept. The dead letter's own headers always stay.
    """
    failed_ts_ns = _safe_clock(clock)
    size = None if value is None else len(value)
    key, hashed = bounded_key(key)
    own = [*dead_letter_headers([], error, failed_ts_ns, source, size), *hashed]
    limit = settings.dead_letter_max_bytes
    if record_bytes(key, value, [*headers, *own]) <= limit:
        return ProcessedRecord(False, key, value, [*headers, *own], error=error)
    note = (
        f"{size or 0} bytes left out: the dead letter would exceed the dead-letter"
        f" topic's max.message.bytes of {limit}"
    )
    value_dropped = (H_VALUE_DROPPED, note.encode())
    if record_bytes(key, None, [*headers, *own, value_dropped]) <= limit:
        return ProcessedRecord(False, key, None, [*headers, *own, value_dropped], error=error)
    # The note at its longest (every original header gone), so that it fits too.
    longest = headers_dropped_note(len(headers), sum(header_bytes(*h) for h in headers))
    room = limit - record_bytes(key, None, [*own, value_dropped, longest])
    kept, count, cut_size = cut_headers(headers, contract_first_ranks(headers), room)
    cut = headers_dropped_note(count, cut_size)
    if record_bytes(key, value, [*kept, *own, cut]) <= limit:
        return ProcessedRecord(False, key, value, [*kept, *own, cut], error=error)
    return ProcessedRecord(False, key, None, [*kept, *own, value_dropped, cut], error=error)


def _safe_clock(clock: Clock) -> int:
    try:
        return int(clock())
    except Exception:  # a broken injected clock must not break the guarantee
        return time.time_ns()


def _as_bytes(raw: Any) -> bytes | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    raise TypeError(f"{type(raw).__name__} where bytes were expected")


def normalise(
    key: Any, value: Any, headers: Any
) -> tuple[bytes | None, bytes | None, Headers, str]:
    """Key, value and headers as bytes and (name, bytes | None) pairs, whatever came.

    Spark hands over bytes and a list of {key, value} structs; anything else that cannot
    be read as such is kept as far as possible and named in the returned problem.
    """
    problems: list[str] = []
    try:
        key = _as_bytes(key)
    except TypeError as exc:
        problems.append(f"key: {exc}")
        key = None
    try:
        value = _as_bytes(value)
    except TypeError as exc:
        problems.append(f"value: {exc}")
        value = None
    pairs: Headers = []
    try:
        for header in headers or ():
            name, raw = (header["key"], header["value"]) if isinstance(header, dict) else header
            if isinstance(name, bytes | bytearray):
                name = bytes(name).decode("utf-8", "replace")
            pairs.append((str(name), _as_bytes(raw)))
    except Exception as exc:  # whatever the headers are, the record still gets an outcome
        problems.append(f"headers: {type(exc).__name__}: {exc}")
    return key, value, pairs, "; ".join(problems)
