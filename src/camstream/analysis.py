"""The per-frame function: JPEG bytes in, annotated JPEG bytes and face boxes out.

Plain Python over bytes and numpy; it knows nothing of Kafka or Spark, which only wrap it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from camstream.annotation import annotate
from camstream.config import DetectionSettings
from camstream.detection import detect_faces_grey
from camstream.frames import (
    H_SKIPPED,
    MAX_FRAME_PIXELS,
    FrameError,
    FrameMeta,
    analytics_headers,
    dead_letter_headers,
)

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class FrameAnalysis:
    annotated_jpeg: bytes
    boxes_xyxy: np.ndarray  # (N, 4) int32, full-frame pixels
    width: int
    height: int


# Start-of-frame markers carry the image size; C4, C8 and CC are other segments.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's start-of-frame segment, without decoding pixels."""
    if not jpeg:
        raise FrameError("empty frame value")
    if not jpeg.startswith(JPEG_MAGIC):
        raise FrameError("value is not a JPEG (missing FF D8 FF start marker)")
    pos = 2
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise FrameError(f"JPEG is corrupt: expected a marker at byte {pos}")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            if pos + 9 > len(jpeg):
                break
            height = int.from_bytes(jpeg[pos + 5 : pos + 7], "big")
            width = int.from_bytes(jpeg[pos + 7 : pos + 9], "big")
            if width == 0 or height == 0:
                raise FrameError(f"JPEG declares a zero-size image ({width}x{height})")
            return width, height
        if length < 2:
            raise FrameError(f"JPEG is corrupt: bad segment length at byte {pos}")
        pos += 2 + length
    raise FrameError("JPEG is truncated or corrupt: no start-of-frame segment")


def check_jpeg(jpeg: bytes) -> tuple[int, int]:
    """Validate what can be checked without decoding; returns (width, height)."""
    width, height = jpeg_size(jpeg)
    # Checked before decoding so that a forged header cannot make the decoder allocate gigabytes.
    if width * height > MAX_FRAME_PIXELS:
        raise FrameError(f"JPEG of {width}x{height} exceeds the {MAX_FRAME_PIXELS}-pixel limit")
    # libjpeg "decodes" a truncated file by padding it with grey, so check the end marker.
    if not jpeg.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameError("JPEG is truncated (no end-of-image marker)")
    return width, height


def decode_jpeg(jpeg: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode a JPEG (BGR by default); raises FrameError with the reason on bad input."""
    check_jpeg(jpeg)
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), flags)
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


def analyze_jpeg(jpeg: bytes, settings: DetectionSettings, jpeg_quality: int = 80) -> FrameAnalysis:
    """Detect faces and draw them: JPEG in, annotated JPEG and boxes out.

    Detection decodes straight to grey (at reduced size when the preset detects on a
    smaller copy). Only a frame with faces is decoded in colour, drawn on and re-encoded;
    a frame without faces is passed on as it came, since there is nothing to draw.
    """
    width, height = check_jpeg(jpeg)
    grey = _grey_for_detection(jpeg, width, settings)
    boxes = detect_faces_grey(grey, settings, (width, height))
    if len(boxes) == 0:
        return FrameAnalysis(jpeg, boxes, width, height)
    annotated = annotate(decode_jpeg(jpeg), boxes)
    return FrameAnalysis(encode_jpeg(annotated, jpeg_quality), boxes, width, height)


def thumbnail_jpeg(jpeg: bytes, width: int, quality: int = 75) -> bytes | None:
    """A JPEG at most `width` pixels wide, or None when the input cannot be decoded."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buffer.tobytes() if ok else None


@dataclass(frozen=True)
class ProcessedRecord:
    """What the job writes for one input record: to the output or to the dead-letter topic."""

    ok: bool
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    error: str | None = None
    faces: int = 0
    skipped: bool = False


def process_record(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    settings: DetectionSettings,
    jpeg_quality: int = 80,
    max_age_ms: int | None = None,
    max_frame_bytes: int | None = None,
) -> ProcessedRecord:
    """Apply the contract and the per-frame function to one Kafka record.

    Never raises for bad input: a record that cannot be processed comes back with
    ok=False, its original key, value and headers, and the reason, so that the caller can
    dead-letter it and go on with the frames around it.

    With `max_age_ms` (the `latest` freshness policy) a valid frame captured longer ago
    than that is passed through unanalysed, marked with a `skipped` header and counted, so
    that a job that fell behind catches up with the present instead of lagging ever more.
    With `max_frame_bytes`, a larger value is dead-lettered before anything decodes it.
    """
    headers = [(name, raw) for name, raw in headers or ()]
    try:
        if max_frame_bytes is not None and value is not None and len(value) > max_frame_bytes:
            raise FrameError(
                f"frame value is {len(value)} bytes, over the {max_frame_bytes}-byte limit"
                " (CAMSTREAM_MAX_FRAME_BYTES)"
            )
        meta = FrameMeta.from_headers(headers)
        if key is not None and key.decode("utf-8", "replace") != meta.camera_id:
            raise FrameError(f"record key {key[:40]!r} differs from camera_id {meta.camera_id!r}")
        now_ns = time.time_ns()
        age_ms = (now_ns - meta.capture_ts_ns) / 1e6
        if max_age_ms is not None and age_ms > max_age_ms:
            jpeg_size(value or b"")  # still a JPEG, or it is dead-lettered like any other
            reason = f"stale: {age_ms:.0f} ms old > {max_age_ms} ms"
            skipped_headers = [
                *analytics_headers([(n, v) for n, v in headers if v is not None], [], now_ns),
                (H_SKIPPED, reason.encode()),
            ]
            return ProcessedRecord(
                True, meta.camera_id.encode(), value, skipped_headers, skipped=True
            )
        result = analyze_jpeg(value or b"", settings, jpeg_quality)
        if (result.width, result.height) != (meta.width, meta.height):
            raise FrameError(
                f"width/height headers say {meta.width}x{meta.height}"
                f" but the JPEG is {result.width}x{result.height}"
            )
    except FrameError as exc:
        return _dead_letter(key, value, headers, str(exc))
    except cv2.error as exc:
        return _dead_letter(key, value, headers, f"OpenCV error: {exc.msg or exc}")
    out_headers = analytics_headers(
        [(n, v) for n, v in headers if v is not None], result.boxes_xyxy.tolist(), time.time_ns()
    )
    return ProcessedRecord(
        True,
        meta.camera_id.encode(),
        result.annotated_jpeg,
        out_headers,
        faces=len(result.boxes_xyxy),
    )


def _dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]], error: str
) -> ProcessedRecord:
    return ProcessedRecord(
        False, key, value, dead_letter_headers(headers, error, time.time_ns()), error=error
    )
