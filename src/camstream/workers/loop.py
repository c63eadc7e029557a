"""One consumer-group worker: poll a batch, run the per-record path, write it, commit it.

The per-record path is the Spark job's (`camstream.core.runtime.process_record_parts`, the
same frame pool, OpenCV threads, motion gate and freshness guard, kept between batches), and
so are the routing rules (`camstream.core.routing`). A batch's records go out in order per
partition (each camera's frames share one), each frame followed by its detection event;
the batch's offsets are committed only once the producer has delivered all of it.
At-least-once, as Spark's Kafka sink: a worker killed before its commit leaves its batch to
whoever gets its partitions next, which processes those records again (duplicates, never a
loss). A record never stops the worker (it becomes a dead letter); an environment failure
(`camstream.errors.ENVIRONMENT_FAILURES`) or a delivery Kafka refuses does, with nothing of
its batch committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from camstream.config import Config
from camstream.core.contract import RecordSource
from camstream.core.freshness import FreshnessGuard
from camstream.core.motion import MotionGate
from camstream.core.routing import Routes, outgoing_records
from camstream.core.runtime import (
    camera_ids,
    configure_opencv_threads,
    frame_pool,
    gate_and_guard,
    process_record_parts,
)
from camstream.core.settings import RecordSettings
from camstream.errors import ConfigError, DeliveryError
from camstream.kafka.clients import (
    make_consumer,
    make_producer,
    sink_batch_bytes,
    sink_request_bytes,
)
from camstream.workers.progress import WorkerProgress

log = logging.getLogger(__name__)

# How long a poll waits for records: also how soon a stop is noticed when idle.
POLL_TIMEOUT_MS = 200
# A worker that died is noticed by the group coordinator after this long, and its partitions
# go to the others (6 s is the broker's smallest allowed session by default).
SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_INTERVAL_MS = 2_000
# Partitions added to the input topic are seen this soon.
METADATA_MAX_AGE_MS = 30_000
# A batch's delivery may take as long as Kafka itself takes to deliver (delivery_timeout_ms).
FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process is given: the configuration, the per-record settings read
    from the topics at the group's start, its index in the group and how often it reports."""

    cfg: Config
    settings: RecordSettings
    index: int = 0
    progress_interval_s: float = 5.0


@dataclass(frozen=True)
class BatchCounts:
    frames: int
    dead_letters: int
    events: int


def group_consumer(cfg: Config) -> KafkaConsumer:
    """The worker's consumer: in the group, on the input topic, committing by hand."""
    if cfg.starting_offsets not in ("latest", "earliest"):
        raise ConfigError(
            "the consumer-group workers start a new group at latest or earliest"
            f" (CAMSTREAM_STARTING_OFFSETS / --starting-offsets), not {cfg.starting_offsets!r}"
        )
    consumer = make_consumer(
        cfg,
        group_id=cfg.worker_group,
        from_beginning=cfg.starting_offsets == "earliest",
        enable_auto_commit=False,
        max_poll_records=cfg.worker_max_records,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        client_id=f"camstream-worker-{os.getpid()}",
    )
    try:
        # Subscribed before its metadata knows the topic's partitions, a group leader
        # assigned nothing, and at times never assigned again (kafka-python 3.0: a worker
        # idle for a minute beside a full topic).
        deadline = time.monotonic() + cfg.kafka_connect_timeout_s
        while not consumer.partitions_for_topic(cfg.input_topic):
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the input topic {cfg.input_topic} has no partitions that Kafka at"
                    f" {cfg.kafka_bootstrap} tells of: create it (`camstream topics create`)"
                )
            time.sleep(0.2)
        consumer.subscribe([cfg.input_topic])
    except BaseException:
        consumer.close(autocommit=False)
        raise
    return consumer


def sink_producer(cfg: Config, settings: RecordSettings) -> KafkaProducer:
    """The worker's producer: sized as Spark's Kafka sink (every record fits its topic)."""
    return make_producer(
        cfg,
        max_request_size=sink_request_bytes(cfg, settings),
        batch_size=sink_batch_bytes(settings),
    )


def batch_records(polled: dict[TopicPartition, list[Any]]) -> list[tuple[Any, ...]]:
    """A poll's records as the per-record path takes them, each with where it was read (for
    its dead letter); partition by partition, each in its order."""
    return [
        (r.key, r.value, r.headers, RecordSource(r.topic, r.partition, r.offset, r.timestamp))
        for partition in sorted(polled)
        for r in polled[partition]
    ]


class Worker:
    """One worker's consumer, producer and per-process state, batch after batch."""

    def __init__(self, job: WorkerJob, progress: WorkerProgress) -> None:
        cfg = self.cfg = job.cfg
        self.settings = job.settings
        self.progress = progress
        events = cfg.events_topic if job.settings.events_max_bytes is not None else None
        self.routes = Routes(cfg.output_topic, cfg.dead_letter_topic, events)
        configure_opencv_threads(cfg.opencv_threads)
        self.pool: ThreadPoolExecutor = frame_pool(cfg.frame_threads)
        gate_guard: tuple[MotionGate | None, FreshnessGuard | None]
        gate_guard = gate_and_guard(job.settings, cfg.output_topic)
        self.gate, self.guard = gate_guard
        self.consumer = group_consumer(cfg)
        try:
            self.producer = sink_producer(cfg, job.settings)
        except BaseException:
            self.consumer.close(autocommit=False)
            raise

    def run(self, stop: threading.Event | Any) -> None:
        """Batches until `stop` is set; then leaves the group (its partitions go to the
        others at once)."""
        try:
            while not stop.is_set():
                polled = self.consumer.poll(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=self.cfg.worker_max_records
                )
                if polled:
                    counts = self.write(batch_records(polled))
                    self.commit(polled)
                    self.progress.add(counts.frames, counts.dead_letters, counts.events)
                if self.progress.due():
                    self.progress.set_position(*self.position())
                    print(self.progress.line(os.getpid()), flush=True)
        finally:
            self.close()

    def write(self, records: list[tuple[Any, ...]]) -> BatchCounts:
        """The batch through the per-record path, written in order and delivered: each part
        is sent as soon as it is known (past capacity, the frames that skip detection go out
        before the others are analysed, as in the Spark job)."""
        if self.guard is not None:
            self.guard.learn(camera_ids(record[0] for record in records))
        futures: list[Any] = []
        frames = dead_letters = events = 0
        parts = process_record_parts(records, self.settings, self.gate, self.pool.map, self.guard)
        for part, _more in parts:
            for result in part:
                frames += 1
                dead_letters += not result.ok
                for outgoing in outgoing_records(result, self.routes):
                    events += outgoing.is_event
                    futures.append(
                        self.producer.send(
                            outgoing.topic,
                            key=outgoing.key,
                            value=outgoing.value,
                            headers=outgoing.headers,
                        )
                    )
        if self.guard is not None:
            self.guard.share()
        self.delivered(futures)
        return BatchCounts(frames, dead_letters, events)

    def delivered(self, futures: Iterable[Any]) -> None:
        """Wait until Kafka has every record of the batch, or raise: nothing of it is
        committed then, and whoever reads its partitions next processes it again."""
        try:
            self.producer.flush(timeout=FLUSH_TIMEOUT_S)
        except KafkaError as exc:
            raise DeliveryError(
                f"Kafka at {self.cfg.kafka_bootstrap} did not acknowledge a batch within"
                f" {FLUSH_TIMEOUT_S:.0f} s ({type(exc).__name__}): the brokers are down or"
                " overloaded; its offsets are not committed"
            ) from None
        failed = [future.exception for future in futures if future.failed()]
        if failed:
            raise DeliveryError(
                f"Kafka at {self.cfg.kafka_bootstrap} refused {len(failed)} record(s) of a"
                f" batch ({type(failed[0]).__name__}: {failed[0]}); its offsets are not committed"
            )

    def commit(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """The batch's offsets, now that its records are delivered."""
        offsets = {
            partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)
            for partition, records in polled.items()
        }
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group moved the partitions on while the batch ran (a rebalance): their new
            # owner processes those records again (at-least-once), nothing is lost.
            log.warning(
                "worker %d: offsets not committed, the group rebalanced meanwhile: the"
                " batch's records are processed again by their partitions' new owner (%s)",
                self.progress.index,
                exc,
            )

    def position(self) -> tuple[int, int]:
        """Records of its partitions not read yet (as far as the last fetch told), and how
        many partitions it has."""
        assigned = self.consumer.assignment()
        lag = 0
        for partition in assigned:
            end = self.consumer.highwater(partition)
            try:
                position = self.consumer.position(partition, timeout_ms=0)
            except KafkaError:
                continue
            if end is not None and position is not None:
                lag += max(0, end - position)
        return lag, len(assigned)

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        finally:
            self.producer.close(timeout=10)
