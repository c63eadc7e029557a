"""The output record of a frame: drawn on, marked, and fitted to the output topic.

Plain Python over bytes and numpy. A frame that skipped detection goes out as it came with
the reason; an analysed one with its boxes drawn and its detection event. Every output
record fits the output topic: the picture is re-encoded smaller when it must be.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import cv2
import numpy as np

from camstream.core.annotation import annotate
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    H_FITTED,
    H_SKIPPED,
    INPUT_HEADERS,
    RESULT_NAMES,
    Headers,
    analytics_headers,
    cut_headers,
    detection_event,
    header_bytes,
    headers_dropped_note,
    record_bytes,
)
from camstream.core.jpeg import FittedJpeg, decode_checked, decode_jpeg, encode_jpeg, fit_jpeg
from camstream.core.records import CheckedFrame, Clock, ProcessedRecord
from camstream.core.settings import RecordSettings
from camstream.errors import FrameError

_NO_BOXES = np.zeros((0, 4), dtype=np.int32)


@dataclass(frozen=True)
class OutputFrame:
    """What an output record is made of: the checked frame it comes from, the picture it
    carries (the frame's own JPEG, or one drawn on), its boxes and its extra headers."""

    frame: CheckedFrame
    jpeg: bytes
    boxes: np.ndarray
    image_bgr: np.ndarray | None = None  # the picture decoded, when it already was
    extra: tuple[tuple[str, bytes], ...] = ()

    @property
    def key(self) -> bytes:
        return self.frame.meta.camera_id.encode()

    def headers(self, clock: Clock, passed: Headers | None = None) -> Headers:
        """The output's headers: the input's (or `passed` of them) with the results."""
        headers = self.frame.headers if passed is None else passed
        return analytics_headers(headers, self.boxes.tolist(), clock(), extra=self.extra)


def skipped_output(
    frame: CheckedFrame, reason: str, settings: RecordSettings, clock: Clock
) -> ProcessedRecord:
    """A frame that skips detection, validated like every frame (the cheapest full decode:
    1/8 size, grey), unannotated and marked with the reason."""
    decode_checked(frame.jpeg, frame.info, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    extra = ((H_SKIPPED, reason.encode()),)
    return output_record(OutputFrame(frame, frame.jpeg, _NO_BOXES, extra=extra), settings, clock)


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
        () if carried_from_seq is None else ((H_CARRIED_FROM_SEQ, str(carried_from_seq).encode()),)
    )
    if len(boxes) == 0:
        out = OutputFrame(frame, frame.jpeg, boxes, extra=extra)
    else:
        detection = settings.detection
        annotated = annotate(
            decode_checked(frame.jpeg, frame.info),
            boxes,
            colour_bgr=detection.box_colour_bgr,
            thickness=detection.box_thickness,
        )
        out = OutputFrame(
            frame, encode_jpeg(annotated, settings.jpeg_quality), boxes, annotated, extra
        )
    result = output_record(out, settings, clock)
    event = None
    if result.faces and settings.events_max_bytes is not None:
        event = detection_event(result.headers, settings.output_topic, settings.events_max_bytes)
    carried = carried_from_seq is not None
    return dataclasses.replace(result, carried=carried, analysed=not carried, event=event)


def output_record(out: OutputFrame, settings: RecordSettings, clock: Clock) -> ProcessedRecord:
    """The output record, re-encoded smaller when it would not fit the output topic.

    Headers that alone leave no room for any frame (only compression lets such a record
    in) are cut first: the input's own headers outside the contract, the largest first,
    until the frame fits as it is or none is left (`headers_dropped` says how many).
    """
    key, limit = out.key, settings.output_max_bytes
    skipped = any(name == H_SKIPPED for name, _ in out.extra)
    faces = len(out.boxes)
    headers = out.headers(clock)
    if record_bytes(key, out.jpeg, headers) <= limit:
        return ProcessedRecord(True, key, out.jpeg, headers, faces=faces, skipped=skipped)
    if record_bytes(key, None, headers) > limit:
        out = _cut_passed_headers(out, limit, clock)
        headers = out.headers(clock)
        if record_bytes(key, out.jpeg, headers) <= limit:
            return ProcessedRecord(True, key, out.jpeg, headers, faces=faces, skipped=skipped)

    # Too large for the output topic: the same picture at lower quality, then smaller.
    meta = out.frame.meta
    image = out.image_bgr if out.image_bgr is not None else decode_jpeg(out.jpeg)
    source = {"source_width": meta.width, "source_height": meta.height}

    def candidate_headers(candidate: FittedJpeg) -> Headers:
        scale = candidate.width / meta.width
        scaled = np.rint(out.boxes.astype(np.float64) * scale).astype(np.int64).tolist()
        fitted = json.dumps({"jpeg_quality": candidate.quality, **source}, separators=(",", ":"))
        return analytics_headers(
            out.frame.headers,
            scaled,
            clock(),
            size=(candidate.width, candidate.height),
            extra=[*out.extra, (H_FITTED, fitted.encode())],
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
    headers = candidate_headers(fitted)
    return ProcessedRecord(
        True, key, fitted.jpeg, headers, faces=faces, skipped=skipped, fitted=True
    )


def _cut_passed_headers(out: OutputFrame, limit: int, clock: Clock) -> OutputFrame:
    """`out` with the input headers it keeps when they alone would not fit its topic, and
    the note that says how many went. Only those the output passes on and the contract
    does not name may go."""
    headers = out.frame.headers
    ranks = [
        None if value is None or name in RESULT_NAMES or name in INPUT_HEADERS else 0
        for name, value in headers
    ]
    fixed = [h for h, rank in zip(headers, ranks, strict=True) if rank is None]
    passed = [h for h, rank in zip(headers, ranks, strict=True) if rank is not None]
    # Room for the note at its longest (every passed header gone), so that it fits too.
    longest = headers_dropped_note(len(passed), sum(header_bytes(*h) for h in passed))
    with_longest = dataclasses.replace(out, extra=(*out.extra, longest))
    room = limit - record_bytes(out.key, out.jpeg, with_longest.headers(clock, passed=fixed))
    kept, count, size = cut_headers(headers, ranks, room)
    frame = dataclasses.replace(out.frame, headers=kept)
    return dataclasses.replace(
        out, frame=frame, extra=(*out.extra, headers_dropped_note(count, size))
    )
