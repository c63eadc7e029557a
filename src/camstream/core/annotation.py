"""Drawing detections onto frames: pure functions, `annotate(scene, boxes) -> scene`."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# The reference demo's boxes: green, 2 px.
BOX_COLOUR_BGR = (0, 255, 0)
BOX_THICKNESS = 2


def annotate(
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray | Sequence[Sequence[int]],
    label: str | None = None,
    colour_bgr: tuple[int, int, int] = BOX_COLOUR_BGR,
    thickness: int | None = BOX_THICKNESS,
) -> np.ndarray:
    """A copy of the image with a rectangle per box and an optional caption.

    `thickness=None` grows with the frame: 2 px up to 480 lines, then a pixel per 240."""
    scene = image_bgr.copy()
    height, width = scene.shape[:2]
    if thickness is None:
        thickness = max(2, round(min(width, height) / 240))
    for x1, y1, x2, y2 in np.asarray(boxes_xyxy, dtype=np.int64).reshape(-1, 4):
        cv2.rectangle(scene, (int(x1), int(y1)), (int(x2), int(y2)), colour_bgr, thickness)
    if label:
        font_scale = max(0.4, min(width, height) / 800)
        origin = (8, 8 + round(22 * font_scale))
        # Dark outline first so the caption stays readable on bright frames.
        cv2.putText(scene, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 3)
        cv2.putText(scene, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1)
    return scene
