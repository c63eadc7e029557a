"""The per-frame function: faces found in a checked JPEG, on the whole frame or in regions.

Plain Python over bytes and numpy, like supervision's `annotate(scene, detections)`: it
knows nothing of Kafka or Spark, which only wrap it. Drawing the boxes is
`camstream.core.annotation`; making the output record, `camstream.core.output`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from camstream.core.boxes import Box
from camstream.core.detection import detect_faces_grey
from camstream.core.jpeg import JpegInfo, decode_grey_at_least, resize_to_width
from camstream.core.settings import DetectionSettings


def detection_grey(jpeg: bytes, info: JpegInfo, settings: DetectionSettings) -> np.ndarray:
    """The grey image the detector sees: decoded straight to grey, at reduced size and
    then resized to `detect_width` when the preset detects on a smaller copy."""
    grey = decode_grey_at_least(jpeg, info, settings.detect_width or info.width)
    return resize_to_width(grey, settings.detect_width)


def detect_in_jpeg(jpeg: bytes, info: JpegInfo, settings: DetectionSettings) -> np.ndarray:
    """Faces in a checked JPEG, as (N, 4) int32 [x1, y1, x2, y2] in its full-size pixels."""
    grey = detection_grey(jpeg, info, settings)
    return detect_faces_grey(grey, settings, (info.width, info.height))


def detect_in_regions(
    jpeg: bytes, info: JpegInfo, settings: DetectionSettings, regions: tuple[Box, ...]
) -> np.ndarray:
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
