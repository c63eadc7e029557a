"""What the per-frame function needs to know: detection settings and per-record limits.

Plain frozen values, so that Spark can ship them to its Python workers as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from camstream.errors import ConfigError


@dataclass(frozen=True)
class DetectionSettings:
    """How faces are detected. `detect_width` downsizes the grey frame before detection."""

    cascade: str = "haarcascade_frontalface_alt.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30
    # None = detect at full resolution; boxes are always reported in full-frame pixels.
    detect_width: int | None = None
    equalize_histogram: bool = True

    def validate(self) -> DetectionSettings:
        if self.scale_factor <= 1.0:
            raise ConfigError(f"scale_factor must be > 1.0 (got {self.scale_factor})")
        if self.min_neighbors < 0:
            raise ConfigError(f"min_neighbors must be >= 0 (got {self.min_neighbors})")
        if self.min_size < 1:
            raise ConfigError(f"min_size must be >= 1 pixel (got {self.min_size})")
        if self.detect_width is not None and self.detect_width < 32:
            raise ConfigError(
                f"detect_width must be >= 32 pixels or unset (got {self.detect_width})"
            )
        return self


# `faithful` keeps the reference demo's settings; `fast` trades a little recall for speed.
DETECTION_PRESETS: dict[str, DetectionSettings] = {
    "faithful": DetectionSettings(),
    "fast": DetectionSettings(
        cascade="haarcascade_frontalface_default.xml",
        scale_factor=1.2,
        min_neighbors=5,
        min_size=24,
        detect_width=320,
    ),
}

# The broker's default message.max.bytes: what a topic accepts unless told otherwise.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


@dataclass(frozen=True)
class RecordSettings:
    """Everything the per-record function needs, in one object (`Config.record_settings`)."""

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    jpeg_quality: int = 80
    # An annotated frame too large for the output topic is re-encoded down to this quality,
    # then shrunk by quarters down to this width, before it is dead-lettered instead.
    min_jpeg_quality: int = 40
    min_frame_width: int = 320
    # Larger values are dead-lettered before anything decodes them.
    max_frame_bytes: int | None = None
    # The `latest` freshness policy: frames older than this skip detection.
    max_age_ms: int | None = None
    # The topics' max.message.bytes as the job read them at start.
    output_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    dead_letter_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
