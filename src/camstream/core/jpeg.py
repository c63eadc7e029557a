"""The JPEG codec: structure checks without decoding, decoding as stored, encoding to fit.

Shared by the cameras (encode, fit the frame limit), the per-record function (check,
decode, re-encode to fit a topic) and the viewers (thumbnails).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from camstream.core.contract import MAX_FRAME_PIXELS, check_aspect_ratio
from camstream.errors import FrameError

JPEG_MAGIC = b"\xff\xd8\xff"


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
    check_aspect_ratio(info.width, info.height, "JPEG")
    return info


# Pixels as stored: an EXIF Orientation tag would make OpenCV rotate the image, and then
# the frame would no longer have the size its headers give, nor the boxes their place.
AS_STORED = cv2.IMREAD_IGNORE_ORIENTATION


def decode_jpeg(jpeg: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode a JPEG (BGR by default) as stored; raises FrameError with the reason."""
    return decode_checked(jpeg, check_jpeg(jpeg), flags)


def decode_checked(jpeg: bytes, info: JpegInfo, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """`decode_jpeg` for a JPEG that `check_jpeg` passed (`info` is what it said): a frame is
    decoded up to three times (thumbnail, detection, drawing), and checked once."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), flags | AS_STORED)
    if image is None or image.size == 0:
        raise FrameError("JPEG could not be decoded (corrupt or truncated)")
    return image


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameError("JPEG encoding failed")
    return buffer.tobytes()


# JPEG decodes at 1/8, 1/4 or 1/2 size directly (DCT scaling): far cheaper than a full
# decode followed by a resize.
_REDUCED_GREY = (
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)


def decode_grey_at_least(jpeg: bytes, info: JpegInfo, width: int, height: int = 1) -> np.ndarray:
    """A checked JPEG decoded to grey at the smallest of 1/8, 1/4, 1/2 and full size that is
    still at least `width` x `height`."""
    flags = cv2.IMREAD_GRAYSCALE
    for factor, reduced in _REDUCED_GREY:
        if info.width // factor >= width and info.height // factor >= height:
            flags = reduced
            break
    return decode_checked(jpeg, info, flags)


def resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at (width, height), averaged over source pixels (no aliasing when shrinking)."""
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def resize_to_width(image: np.ndarray, width: int | None) -> np.ndarray:
    """`image` shrunk to `width` pixels wide, its aspect ratio kept; as it is when it is no
    wider (or `width` is None)."""
    if not width or image.shape[1] <= width:
        return image
    return resize_area(image, (width, max(1, round(image.shape[0] * width / image.shape[1]))))


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


def thumbnail_jpeg(jpeg: bytes, width: int, quality: int = 75) -> bytes | None:
    """A JPEG at most `width` pixels wide, or None when the input cannot be decoded."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR | AS_STORED)
    if image is None:
        return None
    image = resize_to_width(image, width)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buffer.tobytes() if ok else None
