"""Kafka's retention as the recorder: one camera's frames (or detections) read back by time.

The output topic keeps every annotated frame for its retention, keyed by camera id, so one
camera's frames are in one partition, in order (Kafka's default partitioner: murmur2 of
the key, as the job's Java producer and kafka-python both use). A moment is found with
`offsets_for_times`: a record's Kafka timestamp is when it was written, which is after its
capture, so every frame captured at or after a moment lies at or after the offset of that
moment (less `SEEK_SLACK_MS`, for cameras whose clocks run a little ahead of the job's).
From there the partition is read forward, other cameras' records skipped, until the
camera's first frame captured at or after the moment.

A `CameraRecording` reads with a consumer of its own: no group, nothing committed, one
partition assigned, fetches bounded to about one frame, so that each reader holds a
bounded amount of memory however far back it reads. Its cost is the partition's traffic,
which other cameras share: a replay at 4x reads all of the partition's records at 4x.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic

from kafka import TopicPartition
from kafka.partitioner.default import murmur2

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, DetectionEvent
from camstream.errors import ConfigError
from camstream.kafka.clients import REQUEST_HEADROOM_BYTES, make_consumer
from camstream.kafka.consume import (
    P,
    RecordReader,
    parse_annotated_frame,
    parse_detection_event,
)

# How far a camera's clock may run ahead of the job's (NTP keeps them well within it).
SEEK_SLACK_MS = 1000
POLL_MS = 100
MAX_POLL_RECORDS = 32  # records handed over per poll: a bounded batch, however small


def camera_partition(camera_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by `camera_id`."""
    return (murmur2(camera_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Seek(Generic[P]):
    """Where a seek landed: the camera's first frame (or event) captured at or after the
    moment asked for, if any was kept, and whether the moment was older than retention (then
    `first` is the oldest kept, and `oldest_ns` its capture time)."""

    requested_ns: int
    first: P | None
    before_retention: bool
    oldest_ns: int | None


@dataclass(frozen=True)
class Kept:
    """What the partition of a camera holds, by Kafka timestamp (ms): the oldest and the
    newest record of any camera in it (None: empty)."""

    oldest_ms: int | None
    newest_ms: int | None
    partition: int


class CameraRecording(Generic[P]):
    """One camera's records of `topic`, read back by capture time with a consumer of its own.

    Not thread-safe: one reader thread uses it, and `close`s it (also when the reader of a
    replay goes away).
    """

    def __init__(
        self,
        cfg: Config,
        camera_id: str,
        topic: str,
        parse: Callable[[Any], P],
    ) -> None:
        self.camera_id = camera_id
        self.topic = topic
        self._parse = parse
        fetch_bytes = max(1024 * 1024, cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES)
        self._consumer = make_consumer(
            cfg,
            group_id=None,
            enable_auto_commit=False,
            # A read overtaken by retention goes on from the oldest kept, never to live.
            from_beginning=True,
            # About one frame per fetch, and few records per poll: a reader's memory stays
            # bounded by this, not by how far back it reads.
            fetch_max_bytes=fetch_bytes,
            max_partition_fetch_bytes=fetch_bytes,
            max_poll_records=MAX_POLL_RECORDS,
        )
        try:
            partitions = self._partitions(cfg)
            self.partition = TopicPartition(topic, camera_partition(camera_id, len(partitions)))
            self._consumer.assign([self.partition])
        except BaseException:
            self._consumer.close()
            raise
        self._reader: RecordReader[P] = RecordReader(topic, parse, camera_id)
        self._pending: deque[Any] = deque()  # records polled and not yet read

    def _partitions(self, cfg: Config) -> set[int]:
        deadline = time.monotonic() + cfg.kafka_connect_timeout_s
        while True:
            partitions = self._consumer.partitions_for_topic(self.topic)
            if partitions:
                return set(partitions)
            if time.monotonic() > deadline:
                raise ConfigError(f"topic {self.topic!r} does not exist (nothing to read back)")
            time.sleep(0.1)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> CameraRecording[P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kept(self) -> Kept:
        """The oldest and newest Kafka timestamps in the camera's partition."""
        tp = self.partition
        begin = self._consumer.beginning_offsets([tp])[tp]
        end = self._consumer.end_offsets([tp])[tp]
        if end <= begin:
            return Kept(None, None, tp.partition)
        oldest = self._timestamp_at(begin)
        newest = self._timestamp_at(end - 1)
        return Kept(oldest, newest, tp.partition)

    def _timestamp_at(self, offset: int) -> int | None:
        self._consumer.seek(self.partition, offset)
        self._pending.clear()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            batches = self._consumer.poll(timeout_ms=POLL_MS, max_records=1)
            for records in batches.values():
                for record in records:
                    return int(record.timestamp)
        return None

    def seek(self, at_ns: int, stop: threading.Event | None = None) -> Seek[P]:
        """Go to the camera's first record captured at or after `at_ns`; read no further
        than the partition's end as it is now (`first` None: nothing from then on yet)."""
        tp = self.partition
        consumer = self._consumer
        begin = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        at_ms = at_ns // 1_000_000
        found = consumer.offsets_for_times({tp: max(0, at_ms - SEEK_SLACK_MS)})[tp]
        offset = end if found is None else max(begin, found.offset)
        consumer.seek(tp, offset)
        self._pending.clear()
        self._reader = RecordReader(self.topic, self._parse, self.camera_id)
        first = None
        passed_over = False  # a frame of the camera captured before the moment
        for item in self._read(stop, end_offset=end):
            if item.capture_ts_ns >= at_ns:
                first = item
                break
            passed_over = True
        # Read from the partition's oldest record, and the camera's oldest frame kept is
        # newer than the moment: the moment is older than anything kept of the camera.
        before_retention = (
            offset == begin
            and not passed_over
            and first is not None
            and first.capture_ts_ns > at_ns
        )
        return Seek(
            requested_ns=at_ns,
            first=first,
            before_retention=before_retention,
            oldest_ns=first.capture_ts_ns if before_retention and first is not None else None,
        )

    def follow(
        self,
        stop: threading.Event | None = None,
        until_ns: int | None = None,
        end_offset: int | None = None,
    ) -> Iterator[P]:
        """The camera's records after the last one read, in order: until one captured after
        `until_ns`, or the partition's `end_offset`, or `stop`; with neither, on into live."""
        for item in self._read(stop, end_offset):
            if until_ns is not None and item.capture_ts_ns > until_ns:
                return
            yield item

    def end_offset(self) -> int:
        return int(self._consumer.end_offsets([self.partition])[self.partition])

    def between(
        self, from_ns: int, to_ns: int, stop: threading.Event | None = None
    ) -> tuple[Seek[P], Iterator[P]]:
        """The camera's records captured from `from_ns` to `to_ns`: where the seek landed,
        and the records (its first included). Ends at the partition's end as it is now, or,
        for a `to_ns` still to come, once the clock has passed it by SEEK_SLACK_MS."""
        landed = self.seek(from_ns, stop)

        def records() -> Iterator[P]:
            if landed.first is None or landed.first.capture_ts_ns > to_ns:
                return
            yield landed.first
            future = to_ns + SEEK_SLACK_MS * 1_000_000 > time.time_ns()
            end = None if future else self.end_offset()
            for item in self.follow(stop, until_ns=to_ns, end_offset=end):
                yield item
                if future and time.time_ns() > to_ns + SEEK_SLACK_MS * 1_000_000:
                    return
            # A future end that no record passed: the caller's stop or the deadline ends it.

        return landed, records()

    def _read(self, stop: threading.Event | None, end_offset: int | None) -> Iterator[P]:
        """Parsed records of the camera (others skipped), from the consumer's position, until
        `end_offset` is reached (None: never) or `stop` is set."""
        while stop is None or not stop.is_set():
            while self._pending:
                record = self._pending[0]
                if end_offset is not None and record.offset >= end_offset:
                    return
                self._pending.popleft()
                item = self._reader.read(record)
                if item is not None:
                    yield item
            if end_offset is not None and self._consumer.position(self.partition) >= end_offset:
                return
            batches = self._consumer.poll(timeout_ms=POLL_MS)
            self._pending.extend(r for records in batches.values() for r in records)


def frame_recording(
    cfg: Config, camera_id: str, topic: str | None = None
) -> CameraRecording[AnnotatedFrame]:
    """The camera's annotated frames in the output topic."""
    return CameraRecording(cfg, camera_id, topic or cfg.output_topic, parse_annotated_frame)


def detection_recording(
    cfg: Config, camera_id: str, topic: str | None = None
) -> CameraRecording[DetectionEvent]:
    """The camera's detection events in the events topic."""
    return CameraRecording(cfg, camera_id, topic or cfg.events_topic, parse_detection_event)
