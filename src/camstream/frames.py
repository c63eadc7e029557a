"""The frame contract: what a frame looks like on `camera-stream` and `camera-analytics-stream`.

A Kafka record's key is the camera id (UTF-8), its value the JPEG bytes, and its metadata
travels in headers with UTF-8 values. Nothing here (or anywhere in camstream) unpickles
data read from Kafka: the only parsers applied to untrusted bytes are JPEG decoding,
UTF-8, integers and JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SCHEMA_VERSION = "1"

# Input headers, in the order they are written.
H_CAMERA_ID = "camera_id"
H_SEQ = "seq"
H_CAPTURE_TS_NS = "capture_ts_ns"
H_WIDTH = "width"
H_HEIGHT = "height"
H_SCHEMA_VERSION = "schema_version"
INPUT_HEADERS = (H_CAMERA_ID, H_SEQ, H_CAPTURE_TS_NS, H_WIDTH, H_HEIGHT, H_SCHEMA_VERSION)

# Added by the analytics job.
H_FACES = "faces"
H_BOXES_XYXY = "boxes_xyxy"
H_ANALYZED_TS_NS = "analyzed_ts_ns"
OUTPUT_HEADERS = (*INPUT_HEADERS, H_FACES, H_BOXES_XYXY, H_ANALYZED_TS_NS)

# Added instead of detection results when the `latest` policy skipped a stale frame.
H_SKIPPED = "skipped"

# Added to dead-letter records.
H_ERROR = "error"
H_FAILED_TS_NS = "failed_ts_ns"

Headers = list[tuple[str, bytes]]

# An upper bound on a frame's pixels: decoding a "JPEG" that claims to be larger would let
# one bad record exhaust a worker's memory (a 16384x16384 BGR frame is already 768 MiB).
MAX_FRAME_PIXELS = 8192 * 8192


class FrameError(ValueError):
    """A record does not follow the frame contract; the message says what is wrong."""


@dataclass(frozen=True)
class FrameMeta:
    """The metadata a producer attaches to every frame."""

    camera_id: str
    seq: int
    capture_ts_ns: int
    width: int
    height: int
    schema_version: str = SCHEMA_VERSION

    def to_headers(self) -> Headers:
        return [
            (H_CAMERA_ID, self.camera_id.encode()),
            (H_SEQ, str(self.seq).encode()),
            (H_CAPTURE_TS_NS, str(self.capture_ts_ns).encode()),
            (H_WIDTH, str(self.width).encode()),
            (H_HEIGHT, str(self.height).encode()),
            (H_SCHEMA_VERSION, self.schema_version.encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> FrameMeta:
        """Parse and validate input headers; raises FrameError naming the bad header."""
        values = headers_to_dict(headers)
        missing = [name for name in INPUT_HEADERS if name not in values]
        if missing:
            raise FrameError(f"missing header(s): {', '.join(missing)}")
        version = values[H_SCHEMA_VERSION]
        if version != SCHEMA_VERSION:
            raise FrameError(
                f"unsupported schema_version {version!r} (this job reads {SCHEMA_VERSION!r})"
            )
        camera_id = values[H_CAMERA_ID]
        if not camera_id or len(camera_id) > 255:
            raise FrameError("camera_id header must be 1-255 characters")
        seq = _parse_int(values, H_SEQ, minimum=0)
        capture_ts_ns = _parse_int(values, H_CAPTURE_TS_NS, minimum=0)
        width = _parse_int(values, H_WIDTH, minimum=1)
        height = _parse_int(values, H_HEIGHT, minimum=1)
        if width * height > MAX_FRAME_PIXELS:
            raise FrameError(f"frame of {width}x{height} exceeds {MAX_FRAME_PIXELS} pixels")
        return cls(camera_id, seq, capture_ts_ns, width, height, version)


def headers_to_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Decode header values as UTF-8; the last value wins for a repeated header name."""
    result: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        try:
            result[name] = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(f"header {name!r} is not valid UTF-8") from None
    return result


def _parse_int(values: dict[str, str], name: str, minimum: int) -> int:
    raw = values[name]
    try:
        value = int(raw)
    except ValueError:
        raise FrameError(f"header {name!r} is not an integer: {raw[:40]!r}") from None
    if value < minimum:
        raise FrameError(f"header {name!r} must be >= {minimum} (got {value})")
    return value


def analytics_headers(
    input_headers: Sequence[tuple[str, bytes]],
    boxes_xyxy: Sequence[Sequence[int]],
    analyzed_ts_ns: int,
) -> Headers:
    """All input headers plus the detection results, as the output contract requires."""
    boxes = [[int(v) for v in box] for box in boxes_xyxy]
    return [
        *((name, bytes(value)) for name, value in input_headers if name not in _RESULT_NAMES),
        (H_FACES, str(len(boxes)).encode()),
        (H_BOXES_XYXY, json.dumps(boxes, separators=(",", ":")).encode()),
        (H_ANALYZED_TS_NS, str(analyzed_ts_ns).encode()),
    ]


_RESULT_NAMES = frozenset(
    (H_FACES, H_BOXES_XYXY, H_ANALYZED_TS_NS, H_ERROR, H_FAILED_TS_NS, H_SKIPPED)
)


def dead_letter_headers(
    input_headers: Sequence[tuple[str, bytes | None]], error: str, failed_ts_ns: int
) -> list[tuple[str, bytes | None]]:
    """The original headers untouched (null values stay null) plus the reason and time."""
    return [
        *((name, None if value is None else bytes(value)) for name, value in input_headers),
        (H_ERROR, error.encode("utf-8", "replace")),
        (H_FAILED_TS_NS, str(failed_ts_ns).encode()),
    ]


@dataclass(frozen=True)
class AnnotatedFrame:
    """A record of `camera-analytics-stream`, parsed for display."""

    camera_id: str
    seq: int
    capture_ts_ns: int
    analyzed_ts_ns: int
    width: int
    height: int
    faces: int
    boxes_xyxy: list[list[int]]
    jpeg: bytes
    skipped: str | None = None  # why detection was skipped (`latest` policy), if it was

    @classmethod
    def from_record(
        cls, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
    ) -> AnnotatedFrame:
        meta = FrameMeta.from_headers(headers)
        values = headers_to_dict(headers)
        for name in (H_FACES, H_BOXES_XYXY, H_ANALYZED_TS_NS):
            if name not in values:
                raise FrameError(f"missing header: {name}")
        try:
            boxes = json.loads(values[H_BOXES_XYXY])
        except json.JSONDecodeError as exc:
            raise FrameError(f"header boxes_xyxy is not JSON: {exc}") from None
        if not isinstance(boxes, list) or not all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(v, int) for v in b)
            for b in boxes
        ):
            raise FrameError("header boxes_xyxy must be a JSON list of [x1, y1, x2, y2] integers")
        return cls(
            camera_id=meta.camera_id,
            seq=meta.seq,
            capture_ts_ns=meta.capture_ts_ns,
            analyzed_ts_ns=_parse_int(values, H_ANALYZED_TS_NS, minimum=0),
            width=meta.width,
            height=meta.height,
            faces=_parse_int(values, H_FACES, minimum=0),
            boxes_xyxy=boxes,
            jpeg=bytes(value or b""),
            skipped=values.get(H_SKIPPED),
        )

    def delay_ms(self, now_ns: int | None = None) -> float:
        """End-to-end delay: now minus the capture time."""
        return ((now_ns if now_ns is not None else time.time_ns()) - self.capture_ts_ns) / 1e6
