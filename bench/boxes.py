"""Box overlap, the one definition the bench and the tests score detections with: the
package's own (`camstream.core.boxes.iou`, which the job uses too)."""

from __future__ import annotations

from camstream.core.boxes import iou

__all__ = ["iou"]
