"""The per-frame work the bench times and the tests check, made of camstream's own pieces.

`detect_faces`: faces in a decoded BGR image, the preset's detection as the job runs it
(grey, reduced to `detect_width`). `analyse_jpeg`: one JPEG through the job's per-record path
(`process_record`: the contract's checks, detection, drawing, the output record), with the
headers a producer would give it.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from camstream.core.batch import process_record
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.detection import detect_faces_grey
from camstream.core.jpeg import resize_to_width, scan_jpeg
from camstream.core.records import ProcessedRecord
from camstream.core.settings import DetectionSettings, RecordSettings


def detect_faces(image_bgr: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    """(N, 4) int32 xyxy faces in a BGR (or grey) image's pixels."""
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    height, width = grey.shape[:2]
    return detect_faces_grey(
        resize_to_width(grey, settings.detect_width), settings, (width, height)
    )


def analyse_jpeg(
    jpeg: bytes, settings: DetectionSettings, jpeg_quality: int = 80
) -> ProcessedRecord:
    """One JPEG through the job's per-record path, as camera "bench" frame 0."""
    info = scan_jpeg(jpeg)
    headers = FrameMeta("bench", 0, 0, info.width, info.height).to_headers()
    return process_record(b"bench", jpeg, headers, RecordSettings(settings, jpeg_quality))


def boxes_of(result: ProcessedRecord) -> list[list[int]]:
    """The boxes an output record carries (none for a dead letter)."""
    return json.loads(headers_to_dict(result.headers).get("boxes_xyxy", "[]"))


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    info = scan_jpeg(jpeg)
    return info.width, info.height
