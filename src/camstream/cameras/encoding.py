"""A camera frame as JPEG within the frame size limit: lower quality, then smaller, if needed."""

from __future__ import annotations

import numpy as np

from camstream.config import Config
from camstream.core.jpeg import FittedJpeg, fit_jpeg
from camstream.errors import FrameTooLargeError


def encode_frame(image_bgr: np.ndarray, cfg: Config) -> FittedJpeg:
    """Encode within `cfg.max_frame_bytes`: lower the quality, then the resolution, if needed.

    Quality goes down in steps to `cfg.min_jpeg_quality`, then the frame shrinks by a
    quarter at a time while it stays at least `cfg.min_frame_width` wide. A frame is never
    dropped silently: when nothing within those bounds fits, the error names the limit
    and the settings to change.
    """
    fitted, last = fit_jpeg(
        image_bgr,
        lambda candidate: len(candidate.jpeg) <= cfg.max_frame_bytes,
        cfg.jpeg_quality,
        cfg.min_jpeg_quality,
        cfg.min_frame_width,
    )
    if fitted is None:
        original_height, original_width = image_bgr.shape[:2]
        raise FrameTooLargeError(
            f"a {original_width}x{original_height} frame is still {len(last.jpeg)} bytes as JPEG"
            f" at quality {last.quality} and {last.width}x{last.height}, over the"
            f" {cfg.max_frame_bytes}-byte limit (CAMSTREAM_MAX_FRAME_BYTES / --max-frame-bytes):"
            " raise the limit together with the topic's max.message.bytes, or lower"
            " CAMSTREAM_MIN_JPEG_QUALITY or CAMSTREAM_MIN_FRAME_WIDTH"
        )
    return fitted
