"""Publishing frames: JPEG bytes keyed by camera id, the contract's headers, bounded memory."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from camstream.config import Config
from camstream.core.contract import FrameMeta
from camstream.errors import DeliveryError, FrameTooLargeError
from camstream.kafka.clients import make_producer


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
                f"Kafka at {self.cfg.kafka_bootstrap} acknowledged nothing of"
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
                f" {self.cfg.kafka_bootstrap} after {timeout_s:.0f} s: the brokers are down"
                " or overloaded"
            ) from None
        finally:
            self.producer.close(timeout=timeout_s)
        return self.stats

    def check_delivered(self) -> None:
        if self.stats.failed:
            raise DeliveryError(
                f"{self.stats.failed} of {self.stats.sent} frames were not acknowledged by Kafka"
                f" at {self.cfg.kafka_bootstrap}: {self.stats.last_error}"
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
