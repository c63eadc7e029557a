"""The per-frame function: JPEG bytes in, annotated JPEG bytes and face boxes out.

Plain Python over bytes and numpy; it knows nothing of Kafka or Spark, which only wrap it.
`process_record` applies it to one record and never raises: whatever goes wrong with a
record becomes a dead letter that carries the record as it came and the reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from camstream.annotation import annotate
from camstream.config import DetectionSettings, RecordSettings
from camstream.detection import detect_faces_grey
from camstream.frames import (
    H_FITTED,
    H_SKIPPED,
    H_VALUE_DROPPED,
    MAX_FRAME_PIXELS,
    FrameError,
    FrameMeta,
    analytics_headers,
    dead_letter_headers,
    record_bytes,
)

JPEG_MAGIC = b"\xff\xd8\xff"

Headers = list[tuple[str, bytes | None]]
Clock = Callable[[], int]


@dataclass(frozen=True)
class FrameAnalysis:
    annotated_jpeg: bytes
    boxes_xyxy: np.ndarray  # (N, 4) int32, full-frame pixels
    width: int
    height: int


# ---- JPEG structure -----------------------------------------------------------------------
# Start-of-frame markers carry the image size; C4, C8 and CC are other segments.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_EOI, _SOS = 0xD9, 0xDA
# Markers without a length: TEM and the restart markers RST0-7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Inside entropy-coded data FF is followed by 00 (a stuffed byte), a restart marker or
# another FF (fill); any other byte after FF is the marker that ends the scan.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True)
class JpegInfo:
    width: int
    height: int
    end: int  # offset just past the end-of-image marker; what follows is a trailer


def scan_jpeg(jpeg: bytes) -> JpegInfo:
    """Walk the JPEG's segments to its end-of-image marker, without decoding pixels.

    Gives the size from the start-of-frame segment and where the image ends: bytes after
    the end-of-image marker (trailers that cameras and phones append) are not part of it.
    A JPEG cut short has no end-of-image marker and is refused: libjpeg would "decode" it
    by padding it with grey.
    """
    if not jpeg:
        raise FrameError("empty frame value")
    if not jpeg.startswith(JPEG_MAGIC):
        raise FrameError("value is not a JPEG (missing FF D8 FF start marker)")
    size: tuple[int, int] | None = None
    pos, length_of_data = 2, len(jpeg)
    while pos + 2 <= length_of_data:
        if jpeg[pos] != 0xFF:
            raise FrameError(f"JPEG is corrupt: expected a marker at byte {pos}")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI:
            if size is None:
                raise FrameError("JPEG is corrupt: no start-of-frame segment before its end")
            return JpegInfo(size[0], size[1], pos + 2)
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > length_of_data:
            break
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if length < 2:
            raise FrameError(f"JPEG is corrupt: bad segment length at byte {pos}")
        if marker in _SOF_MARKERS and size is None:
            if pos + 9 > length_of_data:
                break
            height = int.from_bytes(jpeg[pos + 5 : pos + 7], "big")
            width = int.from_bytes(jpeg[pos + 7 : pos + 9], "big")
            if width == 0 or height == 0:
                raise FrameError(f"JPEG declares a zero-size image ({width}x{height})")
            size = (width, height)
        pos += 2 + length
        if marker == _SOS:
            if size is None:
                raise FrameError("JPEG is corrupt: image data before the start-of-frame segment")
            found = _SCAN_END.search(jpeg, pos)
            if found is None:
                break
            pos = found.start()
    if size is None:
        raise FrameError("JPEG is truncated or corrupt: no start-of-frame segment")
    raise FrameError("JPEG is truncated (no end-of-image marker)")


def check_jpeg(jpeg: bytes) -> JpegInfo:
    """Validate what can be checked without decoding."""
    info = scan_jpeg(jpeg)
    # Checked before decoding so that a forged header cannot make the decoder allocate gigabytes.
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise FrameError(
            f"JPEG of {info.width}x{info.height} exceeds the {MAX_FRAME_PIXELS}-pixel limit"
        )
    return info


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG from its start-of-frame segment."""
    info = scan_jpeg(jpeg)
    return info.width, info.height


# Pixels as stored: an EXIF Orientation tag would make OpenCV rotate the image, and then
# the frame would no longer have the size its headers give, nor the boxes their place.
_AS_STORED = cv2.IMREAD_IGNORE_ORIENTATION


def decode_jpeg(jpeg: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode a JPEG (BGR by default) as stored; raises FrameError with the reason."""
    check_jpeg(jpeg)
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), flags | _AS_STORED)
    if image is None or image.size == 0:
        raise FrameError("JPEG could not be decoded (corrupt or truncated)")
    return image


# JPEG can decode at 1/2, 1/4 or 1/8 size directly (DCT scaling), far cheaper than a full
# decode followed by a resize.
_REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                 (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))  # fmt: skip


def _grey_for_detection(jpeg: bytes, width: int, settings: DetectionSettings) -> np.ndarray:
    flags = cv2.IMREAD_GRAYSCALE
    if settings.detect_width is not None:
        for factor, reduced in _REDUCED_GREY:
            if width // factor >= settings.detect_width:
                flags = reduced
                break
    return decode_jpeg(jpeg, flags)


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameError("JPEG encoding failed")
    return buffer.tobytes()


def resize_to_width(image_bgr: np.ndarray, width: int | None) -> np.ndarray:
    if not width or image_bgr.shape[1] <= width:
        return image_bgr
    height = max(1, round(image_bgr.shape[0] * width / image_bgr.shape[1]))
    return cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class FittedJpeg:
    jpeg: bytes
    quality: int
    width: int
    height: int


def fit_jpeg(
    image_bgr: np.ndarray,
    fits: Callable[[FittedJpeg], bool],
    quality: int,
    min_quality: int,
    min_width: int,
) -> tuple[FittedJpeg | None, FittedJpeg]:
    """Encode so that `fits` accepts it: lower the quality, then the resolution, if needed.

    Quality goes down in steps of 10 to `min_quality`, then the image shrinks by a quarter
    at a time while it stays at least `min_width` wide. Returns (the first encoding that
    fits or None, the last one tried), so that a caller can say how close it came.
    """
    image = image_bgr
    while True:
        height, width = image.shape[:2]
        candidate = FittedJpeg(encode_jpeg(image, quality), quality, width, height)
        if fits(candidate):
            return candidate, candidate
        if quality > min_quality:
            quality = max(min_quality, quality - 10)
            continue
        smaller = (width * 3) // 4
        if smaller < min_width:
            return None, candidate
        image = resize_to_width(image, smaller)


def analyze_jpeg(jpeg: bytes, settings: DetectionSettings, jpeg_quality: int = 80) -> FrameAnalysis:
    """Detect faces and draw them: JPEG in, annotated JPEG and boxes out.

    Detection decodes straight to grey (at reduced size when the preset detects on a
    smaller copy). Only a frame with faces is decoded in colour, drawn on and re-encoded;
    a frame without faces is passed on as it came, since there is nothing to draw.
    """
    info = check_jpeg(jpeg)
    grey = _grey_for_detection(jpeg, info.width, settings)
    boxes = detect_faces_grey(grey, settings, (info.width, info.height))
    if len(boxes) == 0:
        return FrameAnalysis(jpeg, boxes, info.width, info.height)
    annotated = annotate(decode_jpeg(jpeg), boxes)
    return FrameAnalysis(encode_jpeg(annotated, jpeg_quality), boxes, info.width, info.height)


def thumbnail_jpeg(jpeg: bytes, width: int, quality: int = 75) -> bytes | None:
    """A JPEG at most `width` pixels wide, or None when the input cannot be decoded."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR | _AS_STORED)
    if image is None:
        return None
    image = resize_to_width(image, width)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buffer.tobytes() if ok else None


# ---- one Kafka record -----------------------------------------------------------------------
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


def process_record(
    key: Any,
    value: Any,
    headers: Any,
    settings: RecordSettings,
    clock: Clock = time.time_ns,
) -> ProcessedRecord:
    """Apply the contract and the per-frame function to one Kafka record. Never raises.

    A record that cannot be processed, for any reason, comes back with ok=False, its
    original key, value and headers, and the reason (the exception's type and message),
    so that the caller dead-letters it and goes on with the frames around it. Every record
    returned fits its topic's size limit (`settings.output_max_bytes` or
    `settings.dead_letter_max_bytes`).

    Under the `latest` freshness policy (`settings.max_age_ms`), a valid frame captured
    longer ago than that is validated like any other but not run through detection: it is
    passed on marked with a `skipped` header, so that a job that fell behind catches up
    with the present instead of lagging ever more.
    """
    key, value, headers, problem = _normalise(key, value, headers)
    try:
        if problem:
            raise FrameError(problem)
        return _process(key, value, headers, settings, clock)
    except Exception as exc:  # the per-record guarantee: one bad record never stops the job
        return dead_letter(key, value, headers, _reason(exc), settings, clock)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _process(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    settings: RecordSettings,
    clock: Clock,
) -> ProcessedRecord:
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
    age_ms = (clock() - meta.capture_ts_ns) / 1e6
    if settings.max_age_ms is not None and age_ms > settings.max_age_ms:
        # Validated like every frame (the cheapest full decode: 1/8 size, grey), not analysed.
        decode_jpeg(jpeg, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        skipped = (H_SKIPPED, f"stale: {age_ms:.0f} ms old > {settings.max_age_ms} ms".encode())
        return _output(meta, jpeg, None, _NO_BOXES, headers, settings, clock, [skipped])
    grey = _grey_for_detection(jpeg, info.width, settings.detection)
    boxes = detect_faces_grey(grey, settings.detection, (info.width, info.height))
    if len(boxes) == 0:
        return _output(meta, jpeg, None, boxes, headers, settings, clock)
    annotated = annotate(decode_jpeg(jpeg), boxes)
    drawn = encode_jpeg(annotated, settings.jpeg_quality)
    return _output(meta, drawn, annotated, boxes, headers, settings, clock)


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
    """The output record, re-encoded smaller when it would not fit the output topic."""
    key = meta.camera_id.encode()
    skipped = bool(extra)
    out_headers = analytics_headers(headers, boxes.tolist(), clock(), extra=extra)
    if record_bytes(key, jpeg, out_headers) <= settings.output_max_bytes:
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
        size = record_bytes(key, candidate.jpeg, candidate_headers(candidate))
        return size <= settings.output_max_bytes

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
            f" {settings.output_max_bytes} (raise it, or lower CAMSTREAM_MIN_JPEG_QUALITY or"
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


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    error: str,
    settings: RecordSettings,
    clock: Clock = time.time_ns,
) -> ProcessedRecord:
    """The record as it came, plus the reason and the time; it fits the dead-letter topic.

    Only if it cannot (the topics' limits changed while the job ran) is the value left
    out, with a header that says so: the record's key, headers and reason still arrive.
    """
    failed_ts_ns = _safe_clock(clock)
    out_headers = dead_letter_headers(headers, error, failed_ts_ns)
    if record_bytes(key, value, out_headers) > settings.dead_letter_max_bytes:
        note = (
            f"{len(value or b'')} bytes left out: the dead letter would exceed the dead-letter"
            f" topic's max.message.bytes of {settings.dead_letter_max_bytes}"
        )
        out_headers = [*out_headers, (H_VALUE_DROPPED, note.encode())]
        value = None
        if record_bytes(key, value, out_headers) > settings.dead_letter_max_bytes:
            # Even the headers are too large: keep the key, the reason and the note.
            out_headers = [(n, v) for n, v in out_headers if n in _DEAD_LETTER_NAMES]
    return ProcessedRecord(False, key, value, out_headers, error=error)


_DEAD_LETTER_NAMES = frozenset(("error", "failed_ts_ns", H_VALUE_DROPPED))


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


def _normalise(
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
