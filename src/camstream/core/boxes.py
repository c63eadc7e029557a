"""Boxes in full-frame pixels, [x1, y1, x2, y2] (x2, y2 exclusive)."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[int, int, int, int]


def boxes_overlap(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two boxes share any pixel (touching edges do not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
