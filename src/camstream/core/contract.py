"""The frame contract: what a frame looks like on `camera-stream` and `camera-analytics-stream`.

A Kafka record's key is the camera id (UTF-8), its value the JPEG bytes, and its metadata
travels in headers with UTF-8 values. Nothing here (or anywhere in camstream) unpickles
data read from Kafka: the only parsers applied to untrusted bytes are JPEG decoding,
UTF-8, integers and JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from camstream.errors import FrameError

__all__ = ["FrameError"]  # raised here, defined with the other errors

# The contract's single source: header names in order, the rule each input header obeys, the
# headers the job adds and the limits. The Java function is generated from it at build time
# (camstream.spark.jars) and a test checks the Databricks notebook's copy against it.
CONTRACT: dict[str, Any] = json.loads(
    resources.files("camstream.core").joinpath("contract.json").read_text(encoding="utf-8")
)

SCHEMA_VERSION: str = CONTRACT["schema_version"]
LIMITS: dict[str, int] = {name: limit["value"] for name, limit in CONTRACT["limits"].items()}


@dataclass(frozen=True)
class HeaderRule:
    """The rule an input header obeys (`contract.json`): `text` of min..max characters,
    an `integer` in [min, max], or `equals_version` (equals SCHEMA_VERSION)."""

    name: str
    rule: str
    minimum: int = 0
    maximum: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HeaderRule:
        def bound(value: int | str) -> int:  # a number, or the name of a limit
            return LIMITS[value] if isinstance(value, str) else value

        if spec["rule"] == "text":
            return cls(spec["name"], "text", spec["min_chars"], spec["max_chars"])
        if spec["rule"] == "integer":
            return cls(spec["name"], "integer", bound(spec["min"]), bound(spec["max"]))
        if spec["rule"] == "equals_version":
            return cls(spec["name"], "equals_version")
        raise ValueError(f"contract.json: header {spec['name']!r} has no known rule")


INPUT_RULES = tuple(HeaderRule.from_spec(spec) for spec in CONTRACT["input_headers"])
# Input headers, in the order they are written. Unpacked: a header added to or taken from
# the source fails here, at import, until the code that names it follows.
INPUT_HEADERS = tuple(rule.name for rule in INPUT_RULES)
H_CAMERA_ID, H_SEQ, H_CAPTURE_TS_NS, H_WIDTH, H_HEIGHT, H_SCHEMA_VERSION = INPUT_HEADERS

# Added by the analytics job (see contract.json for what each says).
RESULT_HEADERS = tuple(spec["name"] for spec in CONTRACT["result_headers"])
(
    H_FACES,
    H_BOXES_XYXY,
    H_ANALYZED_TS_NS,
    # Instead of detection results when the `latest` policy skipped a stale frame.
    H_SKIPPED,
    # When the annotated frame had to be re-encoded smaller to fit its topic: JSON with the
    # JPEG quality used and the frame's size as it came (`width`/`height` give the new size).
    H_FITTED,
    # When the motion gate carried the boxes of the camera's last analysed frame (whose seq
    # this is) instead of running the detector on this one.
    H_CARRIED_FROM_SEQ,
    # When a record's original headers had to be cut to fit its topic: how many went.
    H_HEADERS_DROPPED,
) = RESULT_HEADERS
OUTPUT_HEADERS = (*INPUT_HEADERS, H_FACES, H_BOXES_XYXY, H_ANALYZED_TS_NS)

# Added to dead-letter records: the reason and time; where the record came from (its Kafka
# coordinates and timestamp) and the size of its value, so that it can be found and replayed
# even when the dead letter could not carry the value itself.
DEAD_LETTER_HEADERS = tuple(spec["name"] for spec in CONTRACT["dead_letter_headers"])
(
    H_ERROR,
    H_FAILED_TS_NS,
    H_SOURCE_TOPIC,
    H_SOURCE_PARTITION,
    H_SOURCE_OFFSET,
    H_SOURCE_TIMESTAMP_MS,
    H_VALUE_BYTES,
    # When the value had to be left out to fit the dead-letter topic.
    H_VALUE_DROPPED,
    # When the key was replaced by its SHA-256 (see MAX_KEY_BYTES).
    H_KEY_HASHED,
) = DEAD_LETTER_HEADERS
SOURCE_HEADERS = tuple(s["name"] for s in CONTRACT["dead_letter_headers"] if s.get("source"))

# Headers of the job's own: an input record's headers of these names are not passed on.
RESULT_NAMES = frozenset((*RESULT_HEADERS, *DEAD_LETTER_HEADERS))

# Integers travel as ASCII decimal digits and fit a Java long, so that consumers in any
# language parse them the same way (Python's int() would also take '١٢٣', ' 7', '1_000').
MAX_HEADER_INT = LIMITS["max_header_int"]
# JPEG stores each dimension in 16 bits.
MAX_JPEG_SIDE = LIMITS["max_jpeg_side"]

# Kafka headers as the clients give them: a header's value may be null.
Headers = list[tuple[str, bytes | None]]

# An upper bound on a frame's pixels: decoding a "JPEG" that claims to be larger would let
# one bad record exhaust a worker's memory (a 16384x16384 BGR frame is already 768 MiB).
MAX_FRAME_PIXELS = LIMITS["max_frame_pixels"]
# A frame's long side is at most this many times its short one. The widest cameras
# (panoramic, 32:9) stay far below it; a strip such as 80x65,000 is no camera's frame, and
# buffers sized by one side (a grey copy 80 px wide, a detection scale) would grow with it.
MAX_ASPECT_RATIO = LIMITS["max_aspect_ratio"]


def check_aspect_ratio(width: int, height: int, what: str) -> None:
    """Raise FrameError for a `what` ("frame", "JPEG") of a shape no camera gives."""
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise FrameError(
            f"{what} of {width}x{height} exceeds the aspect-ratio limit (its long side at most"
            f" {MAX_ASPECT_RATIO} times its short one)"
        )


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
        values = headers_to_dict(headers, unique=INPUT_HEADERS)
        missing = [name for name in INPUT_HEADERS if name not in values]
        if missing:
            raise FrameError(f"missing header(s): {', '.join(missing)}")
        parsed = {rule.name: _apply(rule, values) for rule in _RULES_VERSION_FIRST}
        meta = cls(**parsed)  # type: ignore[arg-type]  # the fields are the headers' names
        if meta.width * meta.height > MAX_FRAME_PIXELS:
            raise FrameError(
                f"frame of {meta.width}x{meta.height} exceeds {MAX_FRAME_PIXELS} pixels"
            )
        check_aspect_ratio(meta.width, meta.height, "frame")
        return meta


# The version is judged first: a frame of another version may follow other rules.
_RULES_VERSION_FIRST = sorted(INPUT_RULES, key=lambda rule: rule.rule != "equals_version")


def _apply(rule: HeaderRule, values: dict[str, str]) -> str | int:
    """The header's value as its rule reads it; raises FrameError naming what is wrong."""
    raw = values[rule.name]
    if rule.rule == "equals_version":
        if raw != SCHEMA_VERSION:
            raise FrameError(f"unsupported {rule.name} {raw!r} (this job reads {SCHEMA_VERSION!r})")
        return raw
    if rule.rule == "text":
        if not rule.minimum <= len(raw) <= rule.maximum:
            raise FrameError(f"{rule.name} header must be {rule.minimum}-{rule.maximum} characters")
        return raw
    return _parse_int(values, rule.name, rule.minimum, rule.maximum)


def headers_to_dict(
    headers: Iterable[tuple[str, bytes | None]] | None, unique: Iterable[str] = ()
) -> dict[str, str]:
    """Decode header values as UTF-8; the last value wins for a repeated header name.

    A name in `unique` that appears more than once is an error: for the contract's own
    headers two values would leave it to each consumer which one counts.
    """
    result: dict[str, str] = {}
    must_be_unique = frozenset(unique)
    seen: set[str] = set()
    for name, raw in headers or ():
        if name in must_be_unique:
            if name in seen:
                count = sum(1 for other, _ in headers or () if other == name)
                raise FrameError(f"header {name!r} appears {count} times (once expected)")
            seen.add(name)
        if raw is None:
            continue
        try:
            result[name] = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(f"header {name!r} is not valid UTF-8") from None
    return result


_DECIMAL = re.compile(r"-?[0-9]+")


def _parse_int(
    values: dict[str, str], name: str, minimum: int, maximum: int = MAX_HEADER_INT
) -> int:
    raw = values[name]
    if not _DECIMAL.fullmatch(raw):
        shown = raw if len(raw) <= 40 else f"{raw[:40]}... ({len(raw)} characters)"
        raise FrameError(f"header {name!r} is not an ASCII decimal integer: {shown!r}")
    if len(raw.lstrip("-0")) > 19:  # out of a long's range: no need to convert it to know
        sign = "<" if raw.startswith("-") else ">"
        bound = minimum if sign == "<" else maximum
        raise FrameError(
            f"header {name!r} must be {'>=' if sign == '<' else '<='} {bound}"
            f" (got a number of {len(raw.lstrip('-'))} digits)"
        )
    value = int(raw)
    if value < minimum:
        raise FrameError(f"header {name!r} must be >= {minimum} (got {value})")
    if value > maximum:
        raise FrameError(f"header {name!r} must be <= {maximum} (got {raw[:40]})")
    return value


def analytics_headers(
    input_headers: Sequence[tuple[str, bytes | None]],
    boxes_xyxy: Sequence[Sequence[int]],
    analyzed_ts_ns: int,
    *,
    size: tuple[int, int] | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> Headers:
    """All input headers plus the detection results, as the output contract requires.

    Headers with null values are left out. `size` replaces the width and height headers
    when the job stored the frame at another size; `extra` headers go last.
    """
    boxes = [[int(v) for v in box] for box in boxes_xyxy]
    replaced = {} if size is None else {H_WIDTH: str(size[0]), H_HEIGHT: str(size[1])}
    kept = [
        (name, replaced[name].encode() if name in replaced else bytes(value))
        for name, value in input_headers
        if value is not None and name not in RESULT_NAMES
    ]
    return [
        *kept,
        (H_FACES, str(len(boxes)).encode()),
        (H_BOXES_XYXY, json.dumps(boxes, separators=(",", ":")).encode()),
        (H_ANALYZED_TS_NS, str(analyzed_ts_ns).encode()),
        *((name, bytes(value)) for name, value in extra),
    ]


# The reason on a dead letter is cut to this many bytes, so that a dead letter is never more
# than a known amount larger than the record it carries (see DEAD_LETTER_HEADROOM_BYTES).
MAX_ERROR_BYTES = LIMITS["max_error_bytes"]


@dataclass(frozen=True)
class RecordSource:
    """Where a record was read: its Kafka coordinates and timestamp (ms since the epoch)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [
            (H_SOURCE_TOPIC, self.topic.encode("utf-8", "replace")),
            (H_SOURCE_PARTITION, str(self.partition).encode()),
            (H_SOURCE_OFFSET, str(self.offset).encode()),
            (H_SOURCE_TIMESTAMP_MS, str(self.timestamp_ms).encode()),
        ]


def dead_letter_headers(
    input_headers: Sequence[tuple[str, bytes | None]],
    error: str,
    failed_ts_ns: int,
    source: RecordSource | None = None,
    value_bytes: int | None = None,
) -> list[tuple[str, bytes | None]]:
    """The original headers untouched (null values stay null) plus the reason and time, and,
    when known, where the record came from and how large its value was."""
    reason = error.encode("utf-8", "replace")
    if len(reason) > MAX_ERROR_BYTES:
        reason = reason[: MAX_ERROR_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
    return [
        *((name, None if value is None else bytes(value)) for name, value in input_headers),
        (H_ERROR, reason),
        (H_FAILED_TS_NS, str(failed_ts_ns).encode()),
        *(source.to_headers() if source is not None else ()),
        *(() if value_bytes is None else ((H_VALUE_BYTES, str(value_bytes).encode()),)),
    ]


# Kafka's record format v2: a batch header, then per record varint lengths (at most 5 bytes
# for an int, 10 for a long), attributes, key, value and headers.
RECORD_BATCH_HEADER_BYTES = LIMITS["record_batch_header_bytes"]
# A dead letter is the record it carries plus its own headers: the reason (at most
# MAX_ERROR_BYTES), the time, the source's coordinates (a topic name is at most 249 bytes)
# and the value's size. A dead-letter topic that accepts this much more than the input topic
# takes every record the input accepts whole; on a smaller one, the largest dead letters
# leave their value out (`value_dropped`).
DEAD_LETTER_HEADROOM_BYTES = LIMITS["dead_letter_headroom_bytes"]


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> int:
    """An upper bound on what a broker counts against `max.message.bytes` for this record
    in a batch of its own (how a producer sends any record larger than its batch size).

    Uncompressed: a broker checks the size of a compressed batch, so an input record may be
    far larger than its topic's limit (2 MB of zeros gzip to 2 KB), but the job's sink
    compresses nothing, and what it writes counts whole.
    """
    size = RECORD_BATCH_HEADER_BYTES + 5 + 1 + 10 + 5  # length, attributes, ts and offset deltas
    size += 5 + len(key or b"") + 5 + len(value or b"") + 5
    return size + sum(header_bytes(name, raw) for name, raw in headers)


def header_bytes(name: str, value: bytes | None) -> int:
    """What one header adds to `record_bytes`: its name and value and their lengths."""
    return 5 + len(name.encode("utf-8", "surrogatepass")) + 5 + len(value or b"")


# A record key longer than this cannot be a camera id (at most 255 characters of UTF-8): a
# dead letter carries its SHA-256 instead, so that no key makes a dead letter too large.
MAX_KEY_BYTES = LIMITS["max_key_bytes"]
# The contract's input headers are kept first when a record's headers must be cut: the
# first of each name, with a value no longer than this (none of theirs is longer valid).
MAX_CONTRACT_HEADER_BYTES = LIMITS["max_contract_header_bytes"]


def bounded_key(key: bytes | None) -> tuple[bytes | None, Headers]:
    """The key a dead letter carries, and the header that says it was hashed, if it was."""
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key, []
    note = (
        f"{len(key)} bytes replaced by their SHA-256 (hex): a dead letter keeps keys of at"
        f" most {MAX_KEY_BYTES} bytes"
    )
    return hashlib.sha256(key).hexdigest().encode(), [(H_KEY_HASHED, note.encode())]


def contract_first_ranks(headers: Sequence[tuple[str, bytes | None]]) -> list[int]:
    """For `cut_headers`: 1 (goes last) for the first header of each contract name whose
    value is of a valid length, 0 for any other (repeats, giants and headers of its own)."""
    seen: set[str] = set()
    ranks = []
    for name, value in headers:
        first = name in INPUT_HEADERS and name not in seen
        seen.add(name)
        ranks.append(1 if first and len(value or b"") <= MAX_CONTRACT_HEADER_BYTES else 0)
    return ranks


def cut_headers(
    headers: Sequence[tuple[str, bytes | None]], ranks: Sequence[int | None], room: int
) -> tuple[Headers, int, int]:
    """`headers` without those that must go so that the ones that may go take at most `room`
    bytes (as `record_bytes` counts them).

    A header of rank None stays whatever; of the others the lower rank goes first, and in a
    rank the largest first (of two alike, the later). A sort, then one pass: a record of
    100,000 headers costs no more than its size. Returns the headers kept, in their
    order, how many went and their bytes.
    """
    sizes = [
        0 if rank is None else header_bytes(*h) for h, rank in zip(headers, ranks, strict=True)
    ]
    total = sum(sizes)
    candidates = [i for i, rank in enumerate(ranks) if rank is not None]
    candidates.sort(key=lambda i: (ranks[i], -sizes[i], -i))
    gone: set[int] = set()
    for index in candidates:
        if total <= room:
            break
        gone.add(index)
        total -= sizes[index]
    kept = [(name, value) for i, (name, value) in enumerate(headers) if i not in gone]
    return kept, len(gone), sum(sizes[i] for i in gone)


def headers_dropped_note(count: int, size: int) -> tuple[str, bytes]:
    """The header that says how many of a record's own headers were cut, and their bytes."""
    note = (
        f"{count} original headers left out ({size} bytes, the largest first): they exceed"
        " the topic's limit"
    )
    return H_HEADERS_DROPPED, note.encode()


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
    carried_from_seq: int | None = None  # the motion gate carried that frame's boxes

    @classmethod
    def from_record(
        cls, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
    ) -> AnnotatedFrame:
        meta = FrameMeta.from_headers(headers)
        values = headers_to_dict(headers, unique=(*OUTPUT_HEADERS, H_CARRIED_FROM_SEQ))
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
            carried_from_seq=(
                _parse_int(values, H_CARRIED_FROM_SEQ, minimum=0)
                if H_CARRIED_FROM_SEQ in values
                else None
            ),
        )

    def delay_ms(self, now_ns: int | None = None) -> float:
        """End-to-end delay: now minus the capture time."""
        return ((now_ns if now_ns is not None else time.time_ns()) - self.capture_ts_ns) / 1e6


# ---- detection events (`camera-detections`) ---------------------------------------------
EVENT_SCHEMA_VERSION = "1"


def detection_event(
    output_headers: Sequence[tuple[str, bytes | None]], output_topic: str, max_bytes: int
) -> bytes:
    """The JSON event of an output frame with faces, from the output record's own headers.

    Built from what was written, so that the event and the annotated frame agree (boxes in
    the stored frame's pixels, even when it was shrunk to fit). The key is the camera id;
    an event larger than `max_bytes` leaves its boxes out (`boxes_xyxy` null,
    `boxes_left_out` true); the face count stays.
    """
    values = headers_to_dict(output_headers)
    carried = values.get(H_CARRIED_FROM_SEQ)
    fields = {
        "schema_version": EVENT_SCHEMA_VERSION,
        "camera_id": values[H_CAMERA_ID],
        "seq": int(values[H_SEQ]),
        "capture_ts_ns": int(values[H_CAPTURE_TS_NS]),
        "analyzed_ts_ns": int(values[H_ANALYZED_TS_NS]),
        "faces": int(values[H_FACES]),
        "boxes_xyxy": json.loads(values[H_BOXES_XYXY]),
        "width": int(values[H_WIDTH]),
        "height": int(values[H_HEIGHT]),
        "carried": carried is not None,
        "carried_from_seq": None if carried is None else int(carried),
        "topic": output_topic,
    }
    event = json.dumps(fields, separators=(",", ":")).encode()
    key = values[H_CAMERA_ID].encode()
    if record_bytes(key, event, []) > max_bytes:
        fields["boxes_xyxy"] = None
        fields["boxes_left_out"] = True
        event = json.dumps(fields, separators=(",", ":")).encode()
    return event


@dataclass(frozen=True)
class DetectionEvent:
    """A record of `camera-detections`, parsed: faces seen on a camera's frame."""

    camera_id: str
    seq: int
    capture_ts_ns: int
    analyzed_ts_ns: int
    faces: int
    boxes_xyxy: list[list[int]] | None
    width: int
    height: int
    carried: bool
    carried_from_seq: int | None
    topic: str

    @classmethod
    def from_json(cls, value: bytes | None) -> DetectionEvent:
        """Parse and check an event: every field of its type and range; raises FrameError on
        anything else (never another error: the events' consumers skip what raises it)."""
        try:
            data = json.loads(value or b"")
        except RecursionError:  # nested past the parser's recursion limit
            raise FrameError(_TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise FrameError(f"detection event is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema_version") != EVENT_SCHEMA_VERSION:
            raise FrameError(f"not a detection event of schema_version {EVENT_SCHEMA_VERSION}")
        if _nesting(data) > MAX_EVENT_NESTING:
            raise FrameError(_TOO_DEEP)
        missing = [name for name in cls.__dataclass_fields__ if name not in data]
        if missing:
            raise FrameError(f"detection event lacks {', '.join(map(repr, missing))}")
        camera_id, topic = data["camera_id"], data["topic"]
        if not isinstance(camera_id, str) or not 1 <= len(camera_id) <= 255:
            raise FrameError(
                "detection event field 'camera_id' must be a string of 1-255 characters"
            )
        if not isinstance(topic, str) or not 1 <= len(topic) <= 249:  # Kafka's longest name
            raise FrameError("detection event field 'topic' must be a string of 1-249 characters")
        for name, low, high in _EVENT_INTS:
            _check_event_int(name, data[name], low, high)
        boxes = data["boxes_xyxy"]
        if boxes is not None:
            if not isinstance(boxes, list) or not all(
                type(box) is list and len(box) == 4
                and all(type(v) is int and abs(v) <= MAX_HEADER_INT for v in box)
                for box in boxes
            ):  # fmt: skip
                raise FrameError("detection event field 'boxes_xyxy' must be null or a list"
                                 " of [x1, y1, x2, y2] integers")  # fmt: skip
            if len(boxes) != data["faces"]:
                raise FrameError(f"detection event has {data['faces']} faces but"
                                 f" {len(boxes)} boxes")  # fmt: skip
        if type(data.get("boxes_left_out", False)) is not bool:
            raise FrameError("detection event field 'boxes_left_out' must be true or false")
        if type(data["carried"]) is not bool:
            raise FrameError("detection event field 'carried' must be true or false")
        carried_from = data["carried_from_seq"]
        if carried_from is not None:
            _check_event_int("carried_from_seq", carried_from, 0, MAX_HEADER_INT)
        if data["carried"] != (carried_from is not None):
            raise FrameError("detection event is carried if and only if it has carried_from_seq")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


# The event's own JSON nests 3 deep (the event, its boxes, a box); a few levels more leave
# room for fields a later producer may add. Past the parser's recursion limit, json.loads
# raises RecursionError: caught, as any deeper nesting.
MAX_EVENT_NESTING = 8
_TOO_DEEP = f"detection event nests deeper than {MAX_EVENT_NESTING} levels"
_EVENT_INTS = (
    ("seq", 0, MAX_HEADER_INT),
    ("capture_ts_ns", 0, MAX_HEADER_INT),
    ("analyzed_ts_ns", 0, MAX_HEADER_INT),
    ("faces", 0, MAX_HEADER_INT),
    ("width", 1, MAX_JPEG_SIDE),
    ("height", 1, MAX_JPEG_SIDE),
)


def _check_event_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int in Python, not in JSON: `true` is no count.
    if type(value) is not int or not low <= value <= high:
        shown = type(value).__name__ if type(value) is not int else str(value)[:40]
        raise FrameError(f"detection event field {name!r} must be an integer in [{low}, {high}]"
                         f" (got {shown})")  # fmt: skip


def _nesting(value: object) -> int:
    """How deep JSON containers nest in `value` (a scalar: 0), level by level, without
    recursion."""
    depth, level = 0, [value]
    while containers := [v for v in level if isinstance(v, (dict, list))]:
        depth += 1
        level = [child for v in containers
                 for child in (v.values() if isinstance(v, dict) else v)]  # fmt: skip
    return depth
