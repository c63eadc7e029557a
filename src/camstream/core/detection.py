"""Face detection with OpenCV's Haar cascades: pure functions over numpy images."""

from __future__ import annotations

import os
import threading

import cv2
import cv2.data  # the bundled cascades' folder (not in OpenCV's type stubs)
import numpy as np

from camstream.core.settings import DetectionSettings
from camstream.errors import DetectorUnavailableError


def cascade_path(name: str) -> str:
    """Resolve a cascade name against OpenCV's bundled cascades; paths are used as given."""
    if os.sep in name or os.path.exists(name):
        return name
    return os.path.join(cv2.data.haarcascades, name)


_per_thread = threading.local()


def load_cascade(name: str) -> cv2.CascadeClassifier:
    """The cascade, loaded once per thread of a process.

    Spark reuses Python workers, so a worker loads it once per thread that analyses frames
    (`camstream.core.runtime.frame_pool`), not per frame. One per thread because
    `CascadeClassifier.detectMultiScale` is not safe to call on one classifier from several
    threads at once: shared, it missed faces (seen in the end-to-end test).
    """
    cache: dict[str, cv2.CascadeClassifier] = _per_thread.__dict__.setdefault("cascades", {})
    if name not in cache:
        cache[name] = _load(name)
    return cache[name]


def _load(name: str) -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorUnavailableError(
            f"OpenCV {cv2.__version__} has no CascadeClassifier: install opencv-python-headless 4.x"
        )
    path = cascade_path(name)
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise DetectorUnavailableError(f"cannot load Haar cascade {path!r}")
    return classifier


def detect_faces_grey(
    grey: np.ndarray, settings: DetectionSettings, full_size: tuple[int, int]
) -> np.ndarray:
    """Detect on a grey image that may be a reduced copy of a `full_size` (w, h) frame (the
    caller reduces it to `settings.detect_width`); boxes come back in full-size pixels."""
    full_width, full_height = full_size
    scale = full_width / grey.shape[1]
    if settings.equalize_histogram:
        grey = cv2.equalizeHist(grey)
    # 0 stays 0: OpenCV's "no minimum" (the cascade's own window).
    min_side = round(settings.min_size / scale) if settings.min_size else 0
    found = load_cascade(settings.cascade).detectMultiScale(
        grey,
        scaleFactor=settings.scale_factor,
        minNeighbors=settings.min_neighbors,
        minSize=(min_side, min_side),
    )
    if len(found) == 0:
        return np.zeros((0, 4), dtype=np.int32)
    xywh = np.asarray(found, dtype=np.float64) * scale
    boxes = np.empty_like(xywh)
    boxes[:, 0:2] = xywh[:, 0:2]
    boxes[:, 2:4] = xywh[:, 0:2] + xywh[:, 2:4]
    boxes = np.rint(boxes).astype(np.int32)
    # Clip so that boxes never leave the frame after rounding.
    np.clip(boxes[:, 0::2], 0, full_width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, full_height, out=boxes[:, 1::2])
    return boxes
