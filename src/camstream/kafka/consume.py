"""The one consumer of the job's outputs: each frame (or event) once, in order, whatever
Kafka repeats.

The console monitor reads the output topic through `iter_annotated_frames` (the consumer
notebook shows a plain `KafkaConsumer` loop, the pipeline itself), `camstream events` the
events topic through `iter_detection_events`; the station feeds each record of either to
the same `RecordReader` from its own poll loop. Whatever the ids senders make up, a reader
keeps state for a bounded number of cameras (`RecentCameras`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, DetectionEvent, FrameError
from camstream.kafka.clients import make_consumer
from camstream.kafka.topics import ensure_topics

log = logging.getLogger(__name__)


# Cameras a viewer keeps state for, unless told otherwise (the setting's default): a camera
# id is the sender's choice, so memory must follow this, not every id ever seen.
DEFAULT_MAX_CAMERAS: int = Config.station_max_cameras


class RecentCameras:
    """The camera ids a viewer holds state for, least recently seen first, at most `limit`.

    Each per-camera table of a viewer (its frames, its deduplicators, its counts) registers
    a `forget` here; a new id past the limit forgets the least recently seen camera from
    all of them at once. `lock` guards this order and those tables alike: a table changes
    only under it, so that a camera is never forgotten halfway.
    """

    def __init__(self, limit: int = DEFAULT_MAX_CAMERAS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        self.limit = limit
        self.lock = threading.RLock()  # re-entrant: a forget runs under the lock of its caller
        self.forgotten = 0
        self._order: OrderedDict[str, None] = OrderedDict()
        self._forgets: list[Callable[[str], object]] = []

    def on_forget(self, forget: Callable[[str], object]) -> None:
        with self.lock:
            self._forgets.append(forget)

    def seen(self, camera_id: str) -> None:
        """`camera_id` is the most recently seen; past the limit, forget the least recent."""
        with self.lock:
            if camera_id in self._order:
                self._order.move_to_end(camera_id)
                return
            self._order[camera_id] = None
            while len(self._order) > self.limit:  # never camera_id itself: it is the newest
                self.forget(next(iter(self._order)))

    def forget(self, camera_id: str) -> None:
        """Drop `camera_id` from every table registered."""
        with self.lock:
            if camera_id in self._order:
                del self._order[camera_id]
                self.forgotten += 1
            for forget in self._forgets:
                forget(camera_id)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._order


@dataclass
class MonitorStats:
    frames: int = 0
    duplicates: int = 0
    bad_records: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)
    # Frames per camera are kept for the cameras held here (shared with the deduplicator).
    cameras: RecentCameras = field(default_factory=RecentCameras, repr=False)

    def __post_init__(self) -> None:
        self.cameras.on_forget(lambda camera_id: self.per_camera.pop(camera_id, None))

    def count(self, camera_id: str) -> None:
        with self.cameras.lock:
            self.cameras.seen(camera_id)
            self.per_camera[camera_id] = self.per_camera.get(camera_id, 0) + 1


class Positioned(Protocol):
    """A frame or event: where it stands in its camera's order (read-only is enough)."""

    @property
    def camera_id(self) -> str: ...

    @property
    def seq(self) -> int: ...

    @property
    def capture_ts_ns(self) -> int: ...


P = TypeVar("P", bound=Positioned)


class Deduplicator:
    """Shows each frame once: Kafka delivery is at-least-once, so a retried write can repeat
    a frame. Per camera, only a frame captured after the last one shown passes; ordering by
    (capture time, seq) rather than seq alone lets a restarted camera (seq back at 0) through.

    It remembers the cameras of `cameras` only (by default its own 1,024): a camera it
    forgot starts afresh.
    """

    def __init__(self, cameras: RecentCameras | None = None) -> None:
        self.cameras = cameras if cameras is not None else RecentCameras()
        self.last_shown: dict[str, tuple[int, int]] = {}
        self.cameras.on_forget(self.forget)

    def forget(self, camera_id: str) -> None:
        self.last_shown.pop(camera_id, None)

    def is_new(self, frame: Positioned) -> bool:
        position = (frame.capture_ts_ns, frame.seq)
        with self.cameras.lock:
            self.cameras.seen(frame.camera_id)
            last = self.last_shown.get(frame.camera_id)
            if last is not None and position <= last:
                return False
            self.last_shown[frame.camera_id] = position
            return True


class RecordReader(Generic[P]):
    """What a reader of the job's outputs does with each record, whatever loop feeds it:
    parse it (a record that breaks the contract is counted, logged once and skipped), keep
    the wanted camera's, pass each frame (or event) once, and count it."""

    def __init__(
        self,
        topic: str,
        parse: Callable[[Any], P],
        camera_id: str | None = None,
        stats: MonitorStats | None = None,
    ) -> None:
        self.topic = topic
        self.parse = parse
        self.camera_id = camera_id
        self.stats = stats if stats is not None else MonitorStats()
        self.dedup = Deduplicator(self.stats.cameras)

    def read(self, record: Any) -> P | None:
        """The record's frame (or event), or None if it is bad, another camera's or a repeat."""
        try:
            item = self.parse(record)
        except FrameError as exc:
            self.stats.bad_records += 1
            log.warning(
                "skipping record %s-%s@%s: %s", self.topic, record.partition, record.offset, exc
            )
            return None
        if self.camera_id is not None and item.camera_id != self.camera_id:
            return None
        with self.stats.cameras.lock:
            if not self.dedup.is_new(item):
                self.stats.duplicates += 1
                return None
            self.stats.frames += 1
            self.stats.count(item.camera_id)
        return item


def parse_annotated_frame(record: Any) -> AnnotatedFrame:
    return AnnotatedFrame.from_record(record.value, record.headers)


def parse_detection_event(record: Any) -> DetectionEvent:
    return DetectionEvent.from_json(record.value)


@dataclass(frozen=True)
class ReadOptions:
    """What a reader of a topic takes, and when it ends: one camera's records (None: all),
    at most `max_items`, from the topic's beginning or only what comes next, until
    `idle_timeout_s` passes without one (None: no end)."""

    topic: str | None = None  # None: the configured topic of what is read
    camera_id: str | None = None
    max_items: int | None = None
    from_beginning: bool = False
    idle_timeout_s: float | None = None


# Every camera's records from what comes next on, with no end.
LIVE_READ = ReadOptions()


def iter_annotated_frames(
    cfg: Config,
    options: ReadOptions = LIVE_READ,
    stop: threading.Event | None = None,
    stats: MonitorStats | None = None,
) -> Iterator[AnnotatedFrame]:
    """Annotated frames from the output topic, newest first by default, each frame once.

    Ends as `options` say, or when `stop` is set. Records that break the contract are
    counted in `stats.bad_records` and skipped.
    """
    topic = options.topic or cfg.output_topic
    reader = RecordReader(topic, parse_annotated_frame, options.camera_id, stats)
    return read_topic(cfg, reader, options, stop)


def iter_detection_events(
    cfg: Config,
    options: ReadOptions = LIVE_READ,
    stop: threading.Event | None = None,
    stats: MonitorStats | None = None,
) -> Iterator[DetectionEvent]:
    """Detection events from the events topic, each once, in each camera's order."""
    topic = options.topic or cfg.events_topic
    reader = RecordReader(topic, parse_detection_event, options.camera_id, stats)
    return read_topic(cfg, reader, options, stop)


def poll_records(
    cfg: Config, topic: str, from_beginning: bool = False, stop: threading.Event | None = None
) -> Iterator[list[Any]]:
    """The records of `topic`, a poll at a time (an empty list: a poll brought none), until
    `stop` is set."""
    ensure_topics(cfg, [topic])
    consumer = make_consumer(cfg, topic, from_beginning=from_beginning)
    try:
        while stop is None or not stop.is_set():
            batches = consumer.poll(timeout_ms=200)
            yield [record for records in batches.values() for record in records]
    finally:
        consumer.close()


def read_topic(
    cfg: Config,
    reader: RecordReader[P],
    options: ReadOptions = LIVE_READ,
    stop: threading.Event | None = None,
) -> Iterator[P]:
    """What `reader` passes of its topic's records; ends as `options` say (after
    `max_items`, or `idle_timeout_s` without one), or when `stop` is set."""
    max_items, idle_timeout_s = options.max_items, options.idle_timeout_s
    last_item_at = time.monotonic()
    for records in poll_records(cfg, reader.topic, options.from_beginning, stop):
        if not records:
            if idle_timeout_s is not None and time.monotonic() - last_item_at > idle_timeout_s:
                return
            continue
        for record in records:
            item = reader.read(record)
            if item is None:
                continue
            last_item_at = time.monotonic()
            yield item
            if max_items is not None and reader.stats.frames >= max_items:
                return
