"""The one consumer of the job's outputs: each frame (or event) once, in order, whatever
Kafka repeats.

The console monitor and the station read the output topic through `iter_annotated_frames`
(the consumer notebook shows a plain `KafkaConsumer` loop, the pipeline itself); `camstream
events` and the station's detections list read the events topic through
`iter_detection_events`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, DetectionEvent, FrameError
from camstream.kafka.clients import make_consumer
from camstream.kafka.topics import ensure_topics

log = logging.getLogger(__name__)


@dataclass
class MonitorStats:
    frames: int = 0
    duplicates: int = 0
    bad_records: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)


class Positioned(Protocol):
    camera_id: str
    seq: int
    capture_ts_ns: int


P = TypeVar("P", bound=Positioned)


class Deduplicator:
    """Shows each frame once: Kafka delivery is at-least-once, so a retried write can repeat
    a frame. Per camera, only a frame captured after the last one shown passes; ordering by
    (capture time, seq) rather than seq alone lets a restarted camera (seq back at 0) through.
    """

    def __init__(self) -> None:
        self.last_shown: dict[str, tuple[int, int]] = {}

    def forget(self, camera_id: str) -> None:
        self.last_shown.pop(camera_id, None)

    def is_new(self, frame: Positioned) -> bool:
        position = (frame.capture_ts_ns, frame.seq)
        last = self.last_shown.get(frame.camera_id)
        if last is not None and position <= last:
            return False
        self.last_shown[frame.camera_id] = position
        return True


def iter_annotated_frames(
    cfg: Config,
    topic: str | None = None,
    camera_id: str | None = None,
    max_frames: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    stats: MonitorStats | None = None,
) -> Iterator[AnnotatedFrame]:
    """Annotated frames from the output topic, newest first by default, each frame once.

    Ends after `max_frames`, after `idle_timeout_s` without a frame, or when `stop` is set.
    Records that break the contract are counted in `stats.bad_records` and skipped.
    """
    return _iter_parsed(
        cfg, topic or cfg.output_topic, lambda record: AnnotatedFrame.from_record(
            record.value, record.headers),
        camera_id, max_frames, from_beginning, idle_timeout_s, stop, stats,
    )  # fmt: skip


def iter_detection_events(
    cfg: Config,
    topic: str | None = None,
    camera_id: str | None = None,
    max_events: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    stats: MonitorStats | None = None,
) -> Iterator[DetectionEvent]:
    """Detection events from the events topic, each once, in each camera's order."""
    return _iter_parsed(
        cfg, topic or cfg.events_topic, lambda record: DetectionEvent.from_json(record.value),
        camera_id, max_events, from_beginning, idle_timeout_s, stop, stats,
    )  # fmt: skip


def _iter_parsed(
    cfg: Config,
    topic: str,
    parse: Callable[[Any], P],
    camera_id: str | None,
    max_frames: int | None,
    from_beginning: bool,
    idle_timeout_s: float | None,
    stop: threading.Event | None,
    stats: MonitorStats | None,
) -> Iterator[P]:
    stats = stats if stats is not None else MonitorStats()
    ensure_topics(cfg, [topic])
    consumer = make_consumer(cfg, topic, from_beginning=from_beginning)
    dedup = Deduplicator()
    last_frame_at = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            batches = consumer.poll(timeout_ms=200)
            if not batches:
                if idle_timeout_s is not None and time.monotonic() - last_frame_at > idle_timeout_s:
                    return
                continue
            for records in batches.values():
                for record in records:
                    try:
                        frame = parse(record)
                    except FrameError as exc:
                        stats.bad_records += 1
                        log.warning("skipping record %s@%s: %s", topic, record.offset, exc)
                        continue
                    if camera_id is not None and frame.camera_id != camera_id:
                        continue
                    if not dedup.is_new(frame):
                        stats.duplicates += 1
                        continue
                    last_frame_at = time.monotonic()
                    stats.frames += 1
                    stats.per_camera[frame.camera_id] = stats.per_camera.get(frame.camera_id, 0) + 1
                    yield frame
                    if max_frames is not None and stats.frames >= max_frames:
                        return
    finally:
        consumer.close()
