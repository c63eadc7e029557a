"""What the per-frame function needs to know: detection, motion gate and per-record limits.

Plain frozen values, so that Spark can ship them to its Python workers as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from camstream.errors import ConfigError


@dataclass(frozen=True)
class DetectionSettings:
    """How faces are detected and drawn. `detect_width` downsizes the grey frame first.

    The defaults are the 2018 reference demo's UDF, call for call: grey,
    `detectMultiScale(scaleFactor=1.1, minNeighbors=5)` with `frontalface_alt` and no
    minimum size, green boxes of thickness 2.
    """

    cascade: str = "haarcascade_frontalface_alt.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    # Smallest face side in full-frame pixels; 0 = none (the cascade's own 20-px window).
    min_size: int = 0
    # None = detect at full resolution; boxes are always reported in full-frame pixels.
    detect_width: int | None = None
    equalize_histogram: bool = False
    box_colour_bgr: tuple[int, int, int] = (0, 255, 0)
    # None = grows with the frame (2 px up to 480 lines, then a pixel per 240).
    box_thickness: int | None = 2

    def validate(self) -> DetectionSettings:
        if self.scale_factor <= 1.0:
            raise ConfigError(f"scale_factor must be > 1.0 (got {self.scale_factor})")
        if self.min_neighbors < 0:
            raise ConfigError(f"min_neighbors must be >= 0 (got {self.min_neighbors})")
        if self.min_size < 0:
            raise ConfigError(f"min_size must be >= 0 pixels (got {self.min_size})")
        if self.detect_width is not None and self.detect_width < 32:
            raise ConfigError(
                f"detect_width must be >= 32 pixels or unset (got {self.detect_width})"
            )
        if len(self.box_colour_bgr) != 3 or not all(0 <= c <= 255 for c in self.box_colour_bgr):
            raise ConfigError(f"box_colour_bgr must be 3 values 0-255 (got {self.box_colour_bgr})")
        if self.box_thickness is not None and not 1 <= self.box_thickness <= 64:
            raise ConfigError(f"box_thickness must be 1-64 or unset (got {self.box_thickness})")
        return self


_RED = (0, 0, 255)

# `faithful` is the reference demo's detector exactly; `equalized` adds histogram
# equalisation and a 30-px minimum face to it (and draws red, scaled boxes); `fast` trades
# some recall for speed: the default cascade on a 320-px copy.
DETECTION_PRESETS: dict[str, DetectionSettings] = {
    "faithful": DetectionSettings(),
    "equalized": DetectionSettings(
        min_size=30, equalize_histogram=True, box_colour_bgr=_RED, box_thickness=None
    ),
    "fast": DetectionSettings(
        cascade="haarcascade_frontalface_default.xml",
        scale_factor=1.2,
        min_neighbors=5,
        min_size=24,
        detect_width=320,
        equalize_histogram=True,
        box_colour_bgr=_RED,
        box_thickness=None,
    ),
}


@dataclass(frozen=True)
class MotionSettings:
    """How the gate decides; `enabled=False` analyses every frame."""

    enabled: bool = False
    # A full detection at least this often per camera, in capture time.
    keyframe_s: float = 60.0
    # A thumbnail pixel "moved" when it differs from the model by more than this (0-255).
    pixel_threshold: int = 25
    # The scene moved when more than this share of the thumbnail's pixels did.
    min_changed: float = 0.001
    # Width of the grey thumbnail of a 4:3 frame (80x60; Frigate compares at about 100
    # pixels high); a frame of another shape gets as many pixels at most, in its own shape.
    thumb_width: int = 80
    # On a frame analysed because something moved, run the detector only on the moving
    # regions (widened by `region_margin` of the frame's width each side) and carry the
    # boxes that lie outside them, as Frigate seeds its detector with motion boxes.
    regions: bool = True
    region_margin: float = 0.08
    # Regions covering more than this share of the frame: the whole frame is analysed.
    max_region_share: float = 0.6
    # Cameras not seen for this long (wall-clock seconds) are forgotten.
    forget_s: float = 300.0
    # At most this many cameras per worker, and models of at most this many bytes (a
    # thumbnail is at most 80x60 pixels, whatever the frame's shape: about 5 KB per camera
    # with its boxes); the least recently seen go first.
    max_cameras: int = 20_000
    max_bytes: int = 128 * 2**20

    def validate(self) -> MotionSettings:
        if self.keyframe_s <= 0:
            raise ConfigError(f"motion keyframe interval must be > 0 s (got {self.keyframe_s})")
        if not 0 <= self.pixel_threshold <= 254:
            raise ConfigError(f"motion pixel threshold must be 0-254 (got {self.pixel_threshold})")
        if not 0 <= self.min_changed < 1:
            raise ConfigError(f"motion min_changed must be in [0, 1) (got {self.min_changed})")
        if not 0 <= self.region_margin <= 1 or not 0 < self.max_region_share <= 1:
            raise ConfigError("motion region_margin must be in [0, 1], max_region_share in (0, 1]")
        if self.thumb_width < 8 or self.max_cameras < 1 or self.max_bytes < 1 or self.forget_s <= 0:
            raise ConfigError(
                "motion thumb_width >= 8, max_cameras >= 1, max_bytes >= 1 and forget_s > 0"
            )
        return self


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
    # The `live` freshness policy (camstream.core.freshness): frames older than this when
    # their turn comes skip detection, unless their camera had nothing analysed for
    # `min_analysis_interval_ms` (None: no such guard). None: every frame is analysed.
    max_age_ms: int | None = None
    min_analysis_interval_ms: int | None = None
    # Under capacity (camstream.core.load) every frame is analysed, but one that waited past
    # this by its turn: it shows the job past capacity after all. None: no such limit.
    max_lag_ms: int | None = None
    # Also under `live`: how long a micro-batch may spend analysing frames, shared by its
    # cameras: a task (a batch of records) gets the part of its cameras among all the live
    # cameras, times the `task_slots` that run at once. None: no limit.
    batch_budget_ms: int | None = None
    task_slots: int = 1
    # The topics' max.message.bytes as the job read them at start.
    output_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    dead_letter_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # The motion gate (off: every frame analysed in full).
    motion: MotionSettings = field(default_factory=MotionSettings)
    # Detection events: None = not written; else the events topic's max.message.bytes.
    events_max_bytes: int | None = None
    # Named in each event, so that a consumer can find the annotated frame.
    output_topic: str = "camera-analytics-stream"
