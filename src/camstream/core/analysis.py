"""The per-frame function: JPEG bytes in, annotated JPEG bytes and face boxes out.

Plain Python over bytes and numpy, like supervision's `annotate(scene, detections)`: it
knows nothing of Kafka or Spark, which only wrap it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from camstream.core.annotation import annotate
from camstream.core.detection import detect_faces_grey
from camstream.core.jpeg import JpegInfo, check_jpeg, decode_checked, decode_jpeg, encode_jpeg
from camstream.core.settings import DetectionSettings


@dataclass(frozen=True)
class FrameAnalysis:
    annotated_jpeg: bytes
    boxes_xyxy: np.ndarray  # (N, 4) int32, full-frame pixels
    width: int
    height: int


# JPEG can decode at 1/2, 1/4 or 1/8 size directly (DCT scaling), far cheaper than a full
# decode followed by a resize.
_REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                 (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))  # fmt: skip


def detection_grey(jpeg: bytes, info: JpegInfo, settings: DetectionSettings) -> np.ndarray:
    """The grey image the detector sees: decoded straight to grey, at reduced size and
    then resized to `detect_width` when the preset detects on a smaller copy."""
    flags = cv2.IMREAD_GRAYSCALE
    if settings.detect_width is not None:
        for factor, reduced in _REDUCED_GREY:
            if info.width // factor >= settings.detect_width:
                flags = reduced
                break
    grey = decode_checked(jpeg, info, flags)
    if settings.detect_width is not None and grey.shape[1] > settings.detect_width:
        size = (settings.detect_width, max(1, round(grey.shape[0] * settings.detect_width
                                                    / grey.shape[1])))  # fmt: skip
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def detect_in_jpeg(jpeg: bytes, info: JpegInfo, settings: DetectionSettings) -> np.ndarray:
    """Faces in a checked JPEG, as (N, 4) int32 [x1, y1, x2, y2] in its full-size pixels."""
    return detect_faces_grey(detection_grey(jpeg, info, settings), settings,
                             (info.width, info.height))  # fmt: skip


def detect_in_regions(
    jpeg: bytes, info: JpegInfo, settings: DetectionSettings,
    regions: tuple[tuple[int, int, int, int], ...],
) -> np.ndarray:  # fmt: skip
    """Faces within `regions` (full-frame xyxy) of a checked JPEG, found at the same scale
    as `detect_in_jpeg` would find them on the whole frame; full-frame pixels."""
    grey = detection_grey(jpeg, info, settings)
    scale = info.width / grey.shape[1]  # full-frame pixels per detection pixel
    same_scale = dataclasses.replace(settings, detect_width=None)
    found = []
    for x1, y1, x2, y2 in regions:
        left, top = int(x1 / scale), int(y1 / scale)
        crop = grey[top : int(y2 / scale), left : int(x2 / scale)]
        if min(crop.shape[:2]) < 8:
            continue
        full = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
        boxes = detect_faces_grey(crop, same_scale, full)
        if len(boxes):
            offset = np.rint(np.array([left, top, left, top]) * scale).astype(np.int32)
            found.append(boxes + offset)
    if not found:
        return np.zeros((0, 4), dtype=np.int32)
    boxes = np.concatenate(found)
    np.clip(boxes[:, 0::2], 0, info.width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, info.height, out=boxes[:, 1::2])
    return boxes


def analyze_jpeg(jpeg: bytes, settings: DetectionSettings, jpeg_quality: int = 80) -> FrameAnalysis:
    """Detect faces and draw them: JPEG in, annotated JPEG and boxes out.

    Detection decodes straight to grey (at reduced size when the preset detects on a
    smaller copy). Only a frame with faces is decoded in colour, drawn on and re-encoded;
    a frame without faces is passed on as it came, since there is nothing to draw.
    """
    info = check_jpeg(jpeg)
    boxes = detect_in_jpeg(jpeg, info, settings)
    if len(boxes) == 0:
        return FrameAnalysis(jpeg, boxes, info.width, info.height)
    annotated = annotate(
        decode_jpeg(jpeg),
        boxes,
        colour_bgr=settings.box_colour_bgr,
        thickness=settings.box_thickness,
    )
    return FrameAnalysis(encode_jpeg(annotated, jpeg_quality), boxes, info.width, info.height)
