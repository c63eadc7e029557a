"""Helpers for station tests: a served station on a free port, and annotated frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import Config
from camstream.core.annotation import annotate
from camstream.core.contract import H_SKIPPED, FrameMeta, analytics_headers, detection_event
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_producer
from camstream.local.ports import free_port
from camstream.viewers.station.app import create_app
from camstream.viewers.station.server import StationConsumer, uvicorn_config
from camstream.viewers.station.store import FrameStore


@contextmanager
def served_station(
    cfg: Config,
    token: str = "",
    allowed_hosts: tuple[str, ...] = (),
    allowed_origins: tuple[str, ...] = (),
    max_clients: int | None = None,
) -> Iterator[tuple[str, FrameStore]]:
    """The station app on a real HTTP port, consuming cfg.output_topic."""
    store = FrameStore(
        stale_after_s=cfg.station_stale_s,
        max_cameras=cfg.station_max_cameras,
        max_frame_memory=cfg.station_max_frame_memory,
        clip_before_s=cfg.clip_before_s,
        clip_after_s=cfg.clip_after_s,
    )
    # From the beginning: a test's topic is new, and no frame is missed while it connects.
    consumer = StationConsumer(cfg, store, from_beginning=True)
    consumer.start()
    detections = StationConsumer(cfg, store, from_beginning=True, events=True)
    detections.start()
    port = free_port()
    app = create_app(
        store,
        token=token,
        consumer=consumer,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        max_clients=cfg.station_max_clients if max_clients is None else max_clients,
        cfg=cfg,
    )
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("station did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for thread in (consumer, detections):
            thread.stop_event.set()
        for thread in (consumer, detections):
            thread.join(timeout=10)


def annotated_sample_frames() -> list[tuple[bytes, list[list[int]]]]:
    """(annotated JPEG, true face boxes) for each frame of the sample video."""
    labels = sample_labels()["frames"]
    frames = []
    for image, label in zip(load_sample_frames(), labels, strict=True):
        boxes = label["faces"]
        frames.append((encode_jpeg(annotate(image, boxes), 80), boxes))
    return frames


WRITE_DELAY_MS = 300  # a recorded frame's Kafka timestamp: its capture time plus this


class AnnotatedFramePublisher:
    """Writes records as the Spark job would, to exercise the station without Spark."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.producer = make_producer(cfg)
        self.frames = annotated_sample_frames()
        self.sent: dict[str, int] = {}
        self.captured_ns: dict[str, list[int]] = {}

    def send(
        self,
        camera_id: str,
        frame_index: int,
        skipped: str | None = None,
        capture_ns: int | None = None,
    ) -> None:
        """One frame; `skipped` (a reason): passed on without detection, as the job sheds.

        `capture_ns` (default: now) is its capture time; the records' Kafka timestamps are
        then WRITE_DELAY_MS later, as if the job had written them (a recorded past).
        """
        jpeg, boxes = self.frames[frame_index % len(self.frames)]
        seq = self.sent.get(camera_id, 0)
        meta = FrameMeta(camera_id, seq, capture_ns or time.time_ns(), 640, 480)
        written_ms = None if capture_ns is None else capture_ns // 1_000_000 + WRITE_DELAY_MS
        self.captured_ns.setdefault(camera_id, []).append(meta.capture_ts_ns)
        extra = [] if skipped is None else [(H_SKIPPED, skipped.encode())]
        if skipped is not None:
            boxes = []  # not analysed: no boxes, no detection event
        analyzed_ns = time.time_ns() if written_ms is None else written_ms * 1_000_000
        headers = analytics_headers(meta.to_headers(), boxes, analyzed_ns, extra=extra)
        self.producer.send(
            self.cfg.output_topic,
            key=camera_id.encode(),
            value=jpeg,
            headers=headers,
            timestamp_ms=written_ms,
        )
        if boxes:  # and its detection event, as the job writes it
            event = detection_event(headers, self.cfg.output_topic, 1 << 20)
            self.producer.send(
                self.cfg.events_topic, key=camera_id.encode(), value=event, timestamp_ms=written_ms
            )
        self.sent[camera_id] = seq + 1

    def rate(self, camera_id: str, window_s: float = 5.0) -> float:
        """Frames/s this camera sent over its last `window_s`, from its capture times."""
        captured = self.captured_ns[camera_id]
        recent = [t for t in captured if captured[-1] - t <= window_s * 1e9]
        return (len(recent) - 1) / ((recent[-1] - recent[0]) / 1e9)

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def record_past(
    cfg: Config, camera_id: str, frame_index: int, count: int, start_ns: int, interval_ns: int
) -> list[int]:
    """`count` frames of one camera (sample frame `frame_index`) captured from `start_ns`,
    `interval_ns` apart, written as the job would have written them; their capture times."""
    publisher = AnnotatedFramePublisher(cfg)
    try:
        for index in range(count):
            publisher.send(camera_id, frame_index, capture_ns=start_ns + index * interval_ns)
        publisher.flush()
    finally:
        publisher.close()
    return publisher.captured_ns[camera_id]
