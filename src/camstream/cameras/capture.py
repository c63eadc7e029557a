"""Camera producer: OpenCV capture -> JPEG -> Kafka `camera-stream`, keyed by camera id."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from camstream.cameras.encoding import encode_frame
from camstream.config import Config
from camstream.core.contract import FrameMeta
from camstream.core.jpeg import resize_to_width
from camstream.errors import CaptureError
from camstream.kafka.publish import DeliveryStats, FramePublisher, ProgressPrinter
from camstream.kafka.topics import ensure_topics


def parse_source(source: str) -> int | str:
    """A webcam index ('0'), a file path or an RTSP/HTTP URL."""
    return int(source) if source.strip().isdigit() else source


def open_capture(source: int | str) -> cv2.VideoCapture:
    if isinstance(source, str) and "://" not in source and not Path(source).exists():
        raise CaptureError(f"video file {source!r} does not exist")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        kind = "camera index" if isinstance(source, int) else "source"
        raise CaptureError(f"cannot open {kind} {source!r} with OpenCV")
    return capture


def produce(
    cfg: Config,
    source: str,
    camera_id: str,
    *,
    topic: str | None = None,
    fps: float | None = None,
    resize_width: int | None = None,
    loop: bool = False,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[FrameMeta, bytes], None] | None = None,
    progress: Callable[[DeliveryStats, bool], None] | None = None,
) -> DeliveryStats:
    """Capture frames from `source` and publish them until the source ends or `stop` is set.

    `fps` caps the rate; for a video file it defaults to the file's own frame rate so that
    a file plays like a camera. Every `read()` is checked: a file ends (or loops), a live
    source that fails is retried a few times before a CaptureError.
    """
    parsed = parse_source(source)
    is_file = isinstance(parsed, str) and "://" not in parsed
    capture = open_capture(parsed)
    if fps is None and is_file:
        native = capture.get(cv2.CAP_PROP_FPS)
        fps = native if native and 0 < native <= 240 else None
    topic = topic or cfg.input_topic
    ensure_topics(cfg, [topic])
    publisher = FramePublisher(cfg, topic)
    progress = progress or ProgressPrinter(f"camera {camera_id}")
    stop = stop or threading.Event()
    seq = 0
    failures_in_a_row = 0
    next_due = time.monotonic()
    try:
        while not stop.is_set() and (max_frames is None or seq < max_frames):
            ok, frame = capture.read()
            capture_ts_ns = time.time_ns()
            if not ok or frame is None:
                if is_file:
                    if loop and seq > 0:
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    break
                failures_in_a_row += 1
                if failures_in_a_row > 5:
                    raise CaptureError(f"{source!r} returned no frame 5 times in a row")
                stop.wait(min(2.0, 0.1 * 2**failures_in_a_row))
                continue
            failures_in_a_row = 0
            frame = resize_to_width(frame, resize_width)
            fitted = encode_frame(frame, cfg)
            meta = FrameMeta(camera_id, seq, capture_ts_ns, fitted.width, fitted.height)
            publisher.publish(meta, fitted.jpeg)
            if on_frame is not None:
                on_frame(meta, fitted.jpeg)
            seq += 1
            progress(publisher.stats, False)
            if fps:
                next_due += 1.0 / fps
                delay = next_due - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                else:
                    next_due = time.monotonic()  # behind: do not burst to catch up
    finally:
        capture.release()
        stats = publisher.close()
        progress(stats, True)
    publisher.check_delivered()
    return stats
