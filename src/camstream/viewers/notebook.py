"""What the notebooks call: one function per notebook, with inline display in Jupyter.

The notebooks stay thin (parameters, an import, one call); everything they do lives here,
on top of the same producer, monitor and Spark job as the command line.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2

from camstream.cameras.capture import produce
from camstream.cameras.simulate import sample_video_path
from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, FrameMeta
from camstream.core.jpeg import thumbnail_jpeg
from camstream.kafka.consume import MonitorStats, iter_annotated_frames
from camstream.kafka.publish import DeliveryStats


def _display() -> tuple[Callable[..., Any], Any, Any]:
    from IPython.display import HTML, Image, display

    return display, Image, HTML


def default_source() -> str:
    """The first webcam when one is present, else the bundled sample video."""
    capture = cv2.VideoCapture(0)
    try:
        if capture.isOpened() and capture.read()[0]:
            return "0"
    finally:
        capture.release()
    return str(sample_video_path())


def _config(kafkabrokers: str | None, **overrides: Any) -> Config:
    return Config.from_env(kafka_bootstrap=kafkabrokers or None, **overrides)


def publish_camera(
    kafkabrokers: str | None = None,
    topic: str | None = None,
    source: str | int | None = None,
    camera_id: str = "notebook-cam",
    fps: float | None = None,
    max_frames: int | None = None,
    preview_every: int = 5,
    resize_width: int | None = None,
) -> DeliveryStats:
    """Publish a camera to Kafka, with progress and a small preview updated in place.

    Interrupting the kernel stops it cleanly: what was sent is flushed and counted.
    """
    display, Image, HTML = _display()
    cfg = _config(kafkabrokers)
    src = default_source() if source is None else str(source)
    label = f"<code>{html.escape(camera_id)}</code>"
    status = display(HTML(f"{label}: opening {html.escape(src)} ..."), display_id=True)
    preview = display(HTML(""), display_id=True)
    stop = threading.Event()

    def on_frame(meta: FrameMeta, jpeg: bytes) -> None:
        if meta.seq % max(1, preview_every) == 0:
            preview.update(Image(data=thumbnail_jpeg(jpeg, 320, 80) or jpeg, format="jpeg"))

    def progress(stats: DeliveryStats, force: bool) -> None:
        status.update(
            HTML(
                f"{label} &rarr; <code>{html.escape(topic or cfg.input_topic)}</code>:"
                f" {stats.sent} frames sent, {stats.rate():.1f} frames/s,"
                f" {stats.acked} acknowledged, {stats.failed} failed"
            )
        )

    try:
        stats = produce(
            cfg,
            src,
            camera_id,
            topic=topic,
            fps=fps,
            resize_width=resize_width,
            max_frames=max_frames,
            loop=max_frames is not None or src == str(sample_video_path()),
            stop=stop,
            on_frame=on_frame,
            progress=progress,
        )
    except KeyboardInterrupt:
        # produce() flushed and closed the producer on its way out.
        print(f"interrupted: {camera_id} stopped cleanly")
        raise
    print(f"{camera_id}: sent {stats.sent} frames, {stats.acked} acknowledged by Kafka")
    return stats


def opencv_window_available() -> bool:
    """True where OpenCV has a GUI backend and a display (not the headless wheels)."""
    import os

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return False
    try:
        cv2.namedWindow("camstream-probe")
        cv2.destroyWindow("camstream-probe")
    except cv2.error:
        return False
    return True


@dataclass
class _CameraTile:
    image: Any
    caption: Any
    frames: int = 0
    delays_ms: list[float] = field(default_factory=list)


def show_annotated_frames(
    kafkabrokers: str | None = None,
    topic: str | None = None,
    camera_id: str | None = None,
    max_frames: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    opencv_window: bool = False,
) -> MonitorStats:
    """Show annotated frames inline: one image per camera, updated in place, with its
    delay and face count under it. With `opencv_window` (and a desktop OpenCV build and a
    display) the frames also go to one OpenCV window per camera, as in the reference demo.
    """
    display, Image, HTML = _display()
    cfg = _config(kafkabrokers)
    use_window = opencv_window and opencv_window_available()
    if opencv_window and not use_window:
        print("no OpenCV window: this OpenCV build has no GUI or there is no display")
    tiles: dict[str, _CameraTile] = {}
    stats = MonitorStats()
    try:
        for frame in iter_annotated_frames(
            cfg, topic, camera_id, max_frames, from_beginning, idle_timeout_s, stats=stats
        ):
            tile = tiles.get(frame.camera_id)
            if tile is None:
                tile = tiles[frame.camera_id] = _CameraTile(
                    image=display(Image(data=frame.jpeg, format="jpeg"), display_id=True),
                    caption=display(HTML(_caption(frame)), display_id=True),
                )
            else:
                tile.image.update(Image(data=frame.jpeg, format="jpeg"))
                tile.caption.update(HTML(_caption(frame)))
            tile.frames += 1
            if use_window:
                _show_in_window(frame)
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        if use_window:
            cv2.destroyAllWindows()
    print(
        f"{stats.frames} frames from {len(stats.per_camera)} cameras,"
        f" {stats.duplicates} duplicates hidden, {stats.bad_records} bad records skipped"
    )
    return stats


def _caption(frame: AnnotatedFrame) -> str:
    """The caption under a camera's image; the camera id is the sender's text, escaped."""
    return (
        f"<b>{html.escape(frame.camera_id)}</b> seq {frame.seq}: delay {frame.delay_ms():.0f} ms,"
        f" faces {frame.faces}"
    )


def _show_in_window(frame: AnnotatedFrame) -> None:
    import numpy as np

    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is not None:
        cv2.imshow(f"camstream {frame.camera_id}", image)
        cv2.waitKey(1)


def show_stream_progress(
    query: Any, display_fn: Callable[[Any], Any] | None = None, seconds: float = 0
) -> None:
    """Show the streaming query's progress as batches complete.

    Runs until the query stops, or for `seconds` when it is > 0.
    """
    from camstream.spark.progress import follow_progress

    follow_progress(query, display_fn or print, seconds=seconds)
