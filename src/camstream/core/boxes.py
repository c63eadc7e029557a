"""Boxes in full-frame pixels, [x1, y1, x2, y2] (x2, y2 exclusive)."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[int, int, int, int]


def boxes_overlap(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two boxes share any pixel (touching edges do not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def widen(box: Sequence[int], margin: int, width: int, height: int) -> Box:
    """`box` widened by `margin` pixels each side, within a `width` x `height` frame."""
    return (
        max(0, int(box[0]) - margin),
        max(0, int(box[1]) - margin),
        min(width, int(box[2]) + margin),
        min(height, int(box[3]) + margin),
    )


def box_contains(outer: Sequence[int], inner: Sequence[int]) -> bool:
    """Whether box `inner` lies wholly within box `outer`."""
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 for empty ones."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    ix = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    iy = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = ix * iy
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0
