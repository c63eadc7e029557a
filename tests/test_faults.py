"""Faults injected into a running pipeline, with nothing lost.

A frame is lost if the broker acknowledged it on the input topic and it never appears on
the output topic or the dead-letter topic. Each test counts by (camera_id, seq): frames
acknowledged, frames seen, frames lost (must be zero) and duplicates (allowed: delivery
is at-least-once, and the station shows each frame once).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from camstream.cameras.simulate import load_sample_frames
from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_consumer, make_producer
from camstream.local.broker import LocalBroker, LocalCluster
from camstream.local.ports import free_port
from camstream.spark.job import build_query
from helpers import (
    RunningCommand,
    camstream_running,
    config_with_topics,
    group_alive,
    process_rss_mb,
    pyspark_python_workers,
    tree_rss_mb,
    wait_until,
)
from station_helpers import AnnotatedFramePublisher

pytestmark = pytest.mark.spark

Frame = tuple[str, int]

# Each fault in both kinds of query: micro-batches (the default) and Real-time Mode, whose
# long-running tasks read, analyse and write frames as they come (checkpoints every 5 s).
MODES = pytest.mark.parametrize(
    "trigger", ["0 seconds", "realtime:5 seconds"], ids=["micro-batch", "realtime"]
)


class FrameFeed(threading.Thread):
    """Cameras publishing sample frames at a steady rate; remembers what Kafka acknowledged."""

    def __init__(self, cfg: Config, cameras: int = 3, fps: float = 4.0) -> None:
        super().__init__(daemon=True)
        self.cfg = cfg
        self.cameras = [f"cam-{i}" for i in range(1, cameras + 1)]
        self.period = 1.0 / fps
        self.jpegs = [encode_jpeg(f, 80) for f in load_sample_frames()[:20]]
        # Retries long enough to ride out a broker restart or a leader election.
        self.producer = make_producer(cfg, delivery_timeout_ms=120_000, max_block_ms=60_000)
        self.acked: set[Frame] = set()
        self.failed: list[tuple[Frame, str]] = []
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        seq = 0
        while not self.stop_event.is_set():
            for camera_id in self.cameras:
                meta = FrameMeta(camera_id, seq, time.time_ns(), 640, 480)
                future = self.producer.send(
                    self.cfg.input_topic,
                    key=camera_id.encode(),
                    value=self.jpegs[seq % len(self.jpegs)],
                    headers=meta.to_headers(),
                )
                future.add_callback(self._acked, (camera_id, seq))
                future.add_errback(self._failed, (camera_id, seq))
            seq += 1
            self.stop_event.wait(self.period)

    def _acked(self, frame: Frame, _metadata: Any) -> None:
        with self._lock:
            self.acked.add(frame)

    def _failed(self, frame: Frame, exc: BaseException) -> None:
        with self._lock:
            self.failed.append((frame, repr(exc)))

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def finish(self) -> set[Frame]:
        self.stop_event.set()
        self.join(timeout=30)
        self.producer.flush(timeout=120)
        self.producer.close()
        assert not self.failed, f"the producer gave up on frames: {self.failed[:3]}"
        return set(self.acked)


class OutputTally:
    """Counts (camera_id, seq) on the output and dead-letter topics, from their start."""

    def __init__(self, cfg: Config) -> None:
        self.consumer = make_consumer(
            cfg, cfg.output_topic, cfg.dead_letter_topic, from_beginning=True
        )
        self.seen: Counter[Frame] = Counter()

    def poll(self) -> int:
        for records in self.consumer.poll(timeout_ms=500).values():
            for record in records:
                values = headers_to_dict(record.headers)
                self.seen[(values["camera_id"], int(values["seq"]))] += 1
        return len(self.seen)

    def wait_for(self, frames: set[Frame], timeout_s: float) -> set[Frame]:
        """Poll until every frame in `frames` was seen or time is up; returns the missing."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            missing = frames - set(self.seen)
            if not missing:
                return set()
        return frames - set(self.seen)

    def close(self) -> None:
        self.consumer.close()


def assert_nothing_lost(acked: set[Frame], tally: OutputTally, what: str) -> None:
    lost = tally.wait_for(acked, timeout_s=180)
    duplicates = sum(n - 1 for frame, n in tally.seen.items() if frame in acked)
    # The figures go to the test log for the closing note.
    print(f"{what}: {len(acked)} acknowledged, {len(lost)} lost, {duplicates} duplicates")
    assert not lost, f"{what}: {len(lost)} acknowledged frames never processed: {sorted(lost)[:5]}"


def wait_for_progress(
    feed: FrameFeed, tally: OutputTally, more: int, what: str, timeout_s: float = 150
) -> None:
    """Wait until both the producer and the job moved `more` frames past where they are."""
    acked, seen = feed.acked_count(), tally.poll()
    wait_until(
        lambda: feed.acked_count() >= acked + more and tally.poll() >= seen + more,
        timeout_s=timeout_s,
        what=what,
    )


@contextmanager
def pipeline_in(spark: Any, cfg: Config) -> Iterator[tuple[FrameFeed, OutputTally]]:
    """Cameras -> the Spark job (in this session) -> tally, running before the fault."""
    feed, tally, query = FrameFeed(cfg), OutputTally(cfg), build_query(spark, cfg)
    try:
        feed.start()
        wait_for_progress(feed, tally, 12, "the pipeline to run before the fault")
        yield feed, tally
        assert query.isActive and query.exception() is None, "the job stopped"
    finally:
        feed.stop_event.set()
        query.stop()
        tally.close()


@pytest.fixture(scope="module")
def restartable_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of the broker-restart tests' own (they stop and start it), for both modes:
    each test has topics of its own on it."""
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-restarted"), port=free_port(), controller_port=free_port()
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@MODES
@pytest.mark.own_brokers
def test_broker_restart_mid_stream_loses_nothing(
    spark: Any, restartable_broker: LocalBroker, tmp_path: Path, trigger: str
) -> None:
    broker = restartable_broker
    if not broker.is_running():  # left stopped by a failed test before
        broker.start()
    cfg = config_with_topics(
        broker.bootstrap,
        tmp_path,
        partitions=2,
        freshness=Config().freshness,  # the default policy, as the job runs it
        detection_preset="fast",
        checkpoint_location=str(tmp_path / "checkpoint"),
        trigger_interval=trigger,
    )
    with pipeline_in(spark, cfg) as (feed, tally):
        broker.stop()  # SIGTERM: the broker shuts down while frames keep coming
        # The outage: from the broker's exit until the restarted one answers (its JVM
        # starts and loads its logs, seconds), with no fixed sleep on top.
        broker.start()
        wait_for_progress(feed, tally, 24, "the pipeline to resume after the restart")
        assert_nothing_lost(feed.finish(), tally, "broker restart")


def test_a_python_worker_that_dies_costs_its_task_a_retry_not_the_job(
    spark: Any, cfg: Config
) -> None:
    """A Python worker killed mid-stream (as the kernel's OOM killer would) fails its task;
    Spark retries it, on a local master too (camstream runs it as local[N,4]): the job goes
    on and every frame comes out (again, for the frames of the failed attempt)."""
    import signal

    cfg = cfg.replace(starting_offsets="earliest", detection_preset="fast")
    with pipeline_in(spark, cfg) as (feed, tally):
        workers = pyspark_python_workers()
        assert workers, "no PySpark Python worker is running"
        workers[0].send_signal(signal.SIGKILL)
        wait_for_progress(feed, tally, 24, "the pipeline to go on after the worker died")
        assert_nothing_lost(feed.finish(), tally, "a Python worker killed")


def _analyze(
    cfg: Config, checkpoint: Path, trigger: str, log_path: Path
) -> AbstractContextManager[RunningCommand]:
    return camstream_running(
        "analyze",
        "--kafka-bootstrap", cfg.kafka_bootstrap,
        "--input-topic", cfg.input_topic, "--output-topic", cfg.output_topic,
        "--dead-letter-topic", cfg.dead_letter_topic,
        "--events-topic", cfg.events_topic, "--checkpoint-location", str(checkpoint),
        "--starting-offsets", "earliest", "--spark-master", "local[2]",
        "--detection-preset", "fast", "--trigger-interval", trigger,
        log_path=log_path, env={**os.environ, "CAMSTREAM_HOME": cfg.home},
        stop_timeout_s=60,
    )  # fmt: skip


def test_job_killed_with_sigkill_and_restarted_from_its_checkpoint_loses_nothing(
    cfg: Config, tmp_path: Path
) -> None:
    """Real-time Mode, whose long-running tasks checkpoint every 5 s. Its micro-batch case
    (the same `camstream analyze` SIGKILLed mid-stream and restarted from its checkpoint,
    frames published while it is down, on a stock-configured broker) is
    tests/test_poison_records.py::test_poison_records_never_stop_the_job_even_across_a_crash,
    which also replays poison records: a second micro-batch run here would prove no more."""
    trigger = "realtime:5 seconds"
    checkpoint = tmp_path / "checkpoint"
    feed, tally = FrameFeed(cfg), OutputTally(cfg)
    try:
        with _analyze(cfg, checkpoint, trigger, tmp_path / "first-run.log") as job:
            feed.start()
            wait_for_progress(feed, tally, 12, "the job to process frames before the kill")
            job.kill()  # no shutdown hook, no final commit
            wait_until(
                lambda: not group_alive(job.pid), 30, what="the killed job's processes to go"
            )
        with _analyze(cfg, checkpoint, trigger, tmp_path / "second-run.log") as job:
            wait_for_progress(feed, tally, 24, "the restarted job to catch up")
            acked = feed.finish()
            assert_nothing_lost(acked, tally, "job SIGKILL + restart")
            assert job.returncode is None, "the restarted job exited"
    finally:
        feed.stop_event.set()
        tally.close()


@MODES
@pytest.mark.cluster
@pytest.mark.own_brokers
def test_one_broker_of_three_killed_and_restarted_loses_nothing(
    spark: Any, kafka_cluster: LocalCluster, cluster_cfg: Config, tmp_path: Path, trigger: str
) -> None:
    if trigger.startswith("realtime"):  # a long-running task per partition: 2 for 2 cores
        cluster_cfg = config_with_topics(
            kafka_cluster.bootstrap, tmp_path, partitions=2, replication_factor=3
        )
    cfg = cluster_cfg.replace(
        detection_preset="fast",
        checkpoint_location=str(tmp_path / "checkpoint"),
        trigger_interval=trigger,
    )
    victim = kafka_cluster.node(2)
    try:
        with pipeline_in(spark, cfg) as (feed, tally):
            victim.stop(kill=True)  # SIGKILL: no controlled shutdown, leaders move elsewhere
            # Live within a bound: the job's offset lookup used to wait out the admin
            # client's 60 s timeout, every camera frozen (now 10 s, then a new client).
            wait_for_progress(feed, tally, 24, "the pipeline to continue on two brokers", 45)
            victim.start()
            wait_for_progress(feed, tally, 12, "the pipeline to run after the broker returned")
            assert_nothing_lost(feed.finish(), tally, "one broker of three killed")
    finally:
        if not victim.is_running():
            victim.start()


def test_station_restart_resumes_live_frames(cfg: Config, tmp_path: Path) -> None:
    port = free_port()

    def station_running(run: str) -> AbstractContextManager[RunningCommand]:
        return camstream_running(
            "station", "--station-port", str(port),
            "--output-topic", cfg.output_topic, "--kafka-bootstrap", cfg.kafka_bootstrap,
            log_path=tmp_path / f"station-{run}.log",
            env={**os.environ, "CAMSTREAM_HOME": cfg.home}, stop_timeout_s=30,
        )  # fmt: skip

    def latest_seq() -> int:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=2).json()
        except httpx.HTTPError:
            return -1
        return max((c["seq"] for c in body["cameras"]), default=-1)

    publisher = AnnotatedFramePublisher(cfg)

    def publish_until_shown(station: RunningCommand) -> int:
        """Publish live frames until the station shows one; returns the seq shown."""
        first = publisher.sent.get("cam-live", 0)

        def shown() -> int | None:
            assert station.returncode is None, "the station exited"
            publisher.send("cam-live", 0)
            publisher.flush()
            seq = latest_seq()
            return seq if seq >= first else None

        return wait_until(shown, timeout_s=60, interval_s=0.5, what="a live frame on the station")

    try:
        with station_running("first") as station:
            before = publish_until_shown(station)
            assert station.stop(timeout_s=30) == 0
        publisher.send("cam-live", 0)  # sent while no station runs
        with station_running("restarted") as station:
            after = publish_until_shown(station)
            assert after > before + 1, "the restarted station shows live frames again"
    finally:
        publisher.close()


def _rss_mb(root_pid: int) -> tuple[float, float]:
    """Resident memory of a process, and of all its descendants (the JVM, its Python workers)."""
    total = tree_rss_mb(root_pid)
    own = process_rss_mb(root_pid)
    return own, total - own


def test_overload_keeps_memory_bounded_and_the_live_policy_keeps_every_camera_fresh(
    spark: Any, cfg: Config
) -> None:
    """About twice what the faithful preset analyses on this machine, for 30 s, under the
    default `live` policy: frames stay fresh, and no camera goes without analysed frames."""
    from camstream.cameras.simulate import CameraSimulator

    cfg = cfg.replace(detection_preset="faithful", freshness="live")
    analysed: dict[str, list[int]] = {}  # camera id -> capture times of its analysed frames
    query = build_query(spark, cfg)
    jvm_pid = spark.sparkContext._gateway.proc.pid
    delays: list[tuple[float, float, bool]] = []  # (seconds since start, delay ms, skipped)
    memory: list[tuple[float, float]] = []  # (Spark JVM MB, its Python workers MB)
    stop = threading.Event()
    started = time.monotonic()

    def watch() -> None:
        consumer = make_consumer(cfg, cfg.output_topic, from_beginning=True)
        last_sample = 0.0
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                now_ns = time.time_ns()
                for record in records:
                    values = headers_to_dict(record.headers)
                    delay_ms = (now_ns - int(values["capture_ts_ns"])) / 1e6
                    delays.append((time.monotonic() - started, delay_ms, "skipped" in values))
                    if "skipped" not in values:
                        analysed.setdefault(values["camera_id"], []).append(
                            int(values["capture_ts_ns"])
                        )
            if time.monotonic() - last_sample >= 2.0:
                last_sample = time.monotonic()
                memory.append(_rss_mb(jvm_pid))
        consumer.close()

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        wait_until(lambda: query.lastProgress is not None, 60, what="the first micro-batch")
        watcher.start()
        simulator = CameraSimulator(cfg, cameras=10, fps=5.0)  # 50 frames/s in all
        stats = simulator.run(duration_s=30, progress=lambda *_: None)
        wait_until(lambda: len(delays) >= stats.acked, 90, what="every frame on the output")
        assert query.isActive and query.exception() is None
    finally:
        stop.set()
        watcher.join(timeout=10)
        query.stop()

    skipped = sum(1 for _, _, was_skipped in delays if was_skipped)
    assert len(delays) == stats.acked, "every frame is on the output, analysed or skipped"
    assert 0 < skipped < len(delays), "the policy skipped some frames and analysed others"
    tail = sorted(d for t, d, _ in delays if t >= 20)
    assert tail and tail[len(tail) // 2] < 3000, f"frames went stale: p50 {tail[len(tail) // 2]} ms"
    # No camera starves: after the first 10 s, each camera's analysed frames are at most the
    # policy's interval (1.5 s) plus a micro-batch (its newest frame waits for the next one,
    # up to 2.5 s here past capacity) apart, in its capture time.
    assert len(analysed) == 10, sorted(analysed)
    for camera_id, captures in analysed.items():
        later = sorted(c for c in captures if c >= captures[0] + 10 * 10**9)
        gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(later)]
        assert later and max(gaps, default=0.0) <= 4.0, (camera_id, max(gaps, default=0.0))
    half = len(memory) // 2
    assert half >= 3, memory
    workers = [w for _, w in memory]
    jvm = [j for j, _ in memory]
    print(
        f"overload: {len(delays)} frames, {skipped} skipped, last-10-s p50"
        f" {tail[len(tail) // 2]:.0f} ms, Python workers peak {max(workers[:half]):.0f} ->"
        f" {max(workers[half:]):.0f} MB, Spark JVM peak {max(jvm):.0f} MB"
    )
    # The Python workers hold the frames: flat from the first half to the second.
    assert max(workers[half:]) <= max(workers[:half]) * 1.2 + 64, f"workers grew: {workers}"
    # The JVM's heap is capped (spark.driver.memory, 1 GB here): its resident size may
    # grow towards that as the collector sizes the heap, but not past it.
    assert max(jvm) <= 1024 + 1024, f"the Spark JVM grew past its heap limit: {jvm}"
