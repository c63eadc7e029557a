"""Camera producer: OpenCV capture -> JPEG -> Kafka `camera-stream`, keyed by camera id."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from camstream.analysis import FittedJpeg, resize_to_width
from camstream.analysis import fit_jpeg as fit_jpeg_within
from camstream.config import Config
from camstream.frames import FrameMeta
from camstream.kafka_io import ensure_topics, make_producer


class FrameTooLargeError(ValueError):
    """A frame does not fit the size limit even at the lowest allowed JPEG quality."""


class CaptureError(RuntimeError):
    """The camera, file or stream cannot be opened or stopped delivering frames."""


class DeliveryError(RuntimeError):
    """The broker did not acknowledge some frames."""


def fit_jpeg(image_bgr: np.ndarray, cfg: Config) -> FittedJpeg:
    """Encode within `cfg.max_frame_bytes`: lower the quality, then the resolution, if needed.

    Quality goes down in steps to `cfg.min_jpeg_quality`, then the frame shrinks by a
    quarter at a time while it stays at least `cfg.min_frame_width` wide. A frame is never
    dropped silently: when nothing within those bounds fits, the error names the limit
    and the settings to change.
    """
    fitted, last = fit_jpeg_within(
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


@dataclass
class DeliveryStats:
    """Counts of frames handed to Kafka and what the broker said about them (thread-safe)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    bytes_sent: int = 0
    # Bytes handed to Kafka and not yet acknowledged or failed.
    bytes_in_flight: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    _done: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def on_send(self, size: int) -> None:
        with self._done:
            self.sent += 1
            self.bytes_sent += size
            self.bytes_in_flight += size

    def on_ack(self, _metadata: object, size: int = 0) -> None:
        with self._done:
            self.acked += 1
            self.bytes_in_flight -= size
            self._done.notify_all()

    def on_error(self, exc: BaseException, size: int = 0) -> None:
        with self._done:
            self.failed += 1
            self.bytes_in_flight -= size
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._done.notify_all()

    def wait_in_flight_below(self, limit_bytes: int, timeout_s: float) -> bool:
        """Block while more than `limit_bytes` await the broker; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self.bytes_in_flight <= limit_bytes, timeout_s)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


# kafka-python's producer buffers without bound: the publisher caps what awaits the broker.
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
# As long as Kafka itself may take to deliver (delivery_timeout_ms) before frames fail.
IN_FLIGHT_WAIT_S = 60.0


class FramePublisher:
    """Publishes JPEG frames with their contract headers; one producer for many cameras.

    Memory stays bounded: once `max_in_flight_bytes` of frames await the broker, `publish`
    waits for acknowledgements (the caller falls behind its schedule, which it reports)
    instead of queueing more.
    """

    def __init__(
        self,
        cfg: Config,
        topic: str | None = None,
        producer: KafkaProducer | None = None,
        max_in_flight_bytes: int = MAX_IN_FLIGHT_BYTES,
    ):
        self.cfg = cfg
        self.topic = topic or cfg.input_topic
        self.producer = producer or make_producer(cfg)
        self.max_in_flight_bytes = max_in_flight_bytes
        self.stats = DeliveryStats()

    def publish(self, meta: FrameMeta, jpeg: bytes) -> None:
        size = len(jpeg)
        if size > self.cfg.max_frame_bytes:
            raise FrameTooLargeError(
                f"frame {meta.camera_id}/{meta.seq} is {size} bytes, over the"
                f" {self.cfg.max_frame_bytes}-byte limit (CAMSTREAM_MAX_FRAME_BYTES)"
            )
        if not self.stats.wait_in_flight_below(self.max_in_flight_bytes, IN_FLIGHT_WAIT_S):
            raise DeliveryError(
                f"Kafka at {self.cfg.bootstrap_servers} acknowledged nothing of"
                f" {self.stats.bytes_in_flight >> 20} MiB of frames for {IN_FLIGHT_WAIT_S:.0f} s:"
                " the brokers are down or far slower than the cameras"
            )
        self.stats.on_send(size)
        future = self.producer.send(
            self.topic, key=meta.camera_id.encode(), value=jpeg, headers=meta.to_headers()
        )
        future.add_callback(self.stats.on_ack, size=size)
        future.add_errback(self.stats.on_error, size=size)

    def close(self, timeout_s: float = 30.0) -> DeliveryStats:
        """Flush what is buffered (once, at the end, not per frame) and close."""
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            pending = self.stats.sent - self.stats.acked - self.stats.failed
            raise DeliveryError(
                f"{pending} of {self.stats.sent} frames were still unacknowledged by Kafka at"
                f" {self.cfg.bootstrap_servers} after {timeout_s:.0f} s: the brokers are down"
                " or overloaded"
            ) from None
        finally:
            self.producer.close(timeout=timeout_s)
        return self.stats

    def check_delivered(self) -> None:
        if self.stats.failed:
            raise DeliveryError(
                f"{self.stats.failed} of {self.stats.sent} frames were not acknowledged by Kafka"
                f" at {self.cfg.bootstrap_servers}: {self.stats.last_error}"
            )


class ProgressPrinter:
    """Prints frames sent and frames/s every `interval_s` seconds to stderr."""

    def __init__(self, label: str, interval_s: float = 2.0, stream=sys.stderr) -> None:
        self.label = label
        self.interval_s = interval_s
        self.stream = stream
        self._last = time.monotonic()
        self._last_sent = 0

    def __call__(self, stats: DeliveryStats, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        window_rate = (stats.sent - self._last_sent) / max(1e-9, now - self._last)
        self._last, self._last_sent = now, stats.sent
        print(
            f"{self.label}: {stats.sent} frames sent, {window_rate:.1f} frames/s now,"
            f" {stats.rate():.1f} average, {stats.acked} acknowledged, {stats.failed} failed",
            file=self.stream,
            flush=True,
        )


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
            fitted = fit_jpeg(frame, cfg)
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
