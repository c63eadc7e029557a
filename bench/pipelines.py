"""The pipelines a user would choose between, side by side and measured alike.

- Spark micro-batches (the default), and with asynchronous progress tracking;
- Spark's Real-time Mode (the Java twin of the per-record function);
- a Kafka consumer group of plain Python processes running the same per-record path
  (`camstream workers`).

Every mode runs with the settings its latency runs use, on the same cores, OpenCV on one
thread per worker in Python and in Java, and the same rules:

- **warm-up**: a running pipeline first drains a warm-up burst whole (classifiers loaded,
  Python workers spawned, the JIT warm) before anything is measured;
- **capacity**: then a burst of frames is published at once; frames / (the last output's
  Kafka timestamp - the first input's send), wall clock, nothing trimmed;
- **delay**: cameras at a share of that mode's own capacity; each frame carries its
  *scheduled* capture time (`CameraSimulator`), so the producer's own lag counts; delay =
  output received - capture, the first seconds left out for every mode alike;
- **a worker killed**: under the same load, one worker process gets SIGKILL; what is lost,
  what comes twice, and how long outputs stop.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
from kafka import TopicPartition
from probes import pyspark_python_workers
from registry import say
from stack import DelayRecorder, OutputSample, Stack, percentile, wait_for_query

from camstream.cameras.simulate import CameraSimulator
from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.kafka.clients import make_consumer
from camstream.kafka.publish import FramePublisher


@dataclass(frozen=True)
class Mode:
    """A pipeline and the settings it runs with (those of its latency runs too)."""

    name: str
    engine: str  # "spark" or "workers"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def realtime(self) -> bool:
        return str(self.settings.get("trigger_interval", "")).startswith("realtime")

    def partitions(self, cores: int) -> int:
        """A long-running real-time task holds its partition: as many partitions as cores.
        Micro-batches and the consumer group get two per core (the job's default)."""
        return cores if self.realtime else 2 * cores


MODES = {
    mode.name: mode
    for mode in (
        Mode("micro-batch", "spark", {"trigger_interval": "0 seconds"}),
        Mode("micro-batch (async progress)", "spark",
             {"trigger_interval": "0 seconds", "async_progress": True}),
        Mode("Real-time Mode", "spark", {"trigger_interval": "realtime"}),
        Mode("consumer group", "workers"),
    )
}  # fmt: skip


@dataclass
class Running:
    """A pipeline at work on `cfg`'s topics: how to stop it, and to kill one of its workers
    (None where the mode has no worker process of its own to kill)."""

    cfg: Config
    mode: Mode
    stop: Callable[[], None]
    kill_worker: Callable[[], str] | None


def _kill_spark_python_worker() -> str:
    workers = pyspark_python_workers()
    if not workers:
        return "no Python worker found"
    victim = workers[0]
    with contextlib.suppress(psutil.Error):
        victim.send_signal(signal.SIGKILL)
    return f"Python worker {victim.pid} (of {len(workers)})"


@contextlib.contextmanager
def running(stack: Stack, mode: Mode, preset: str, **overrides: Any) -> Iterator[Running]:
    """The mode's pipeline running on fresh topics of its own, until the block ends."""
    settings = {"partitions": mode.partitions(stack.cores), **mode.settings, **overrides}
    # Fresh topics, read from their start: nothing sent while the pipeline was still joining
    # or resolving its offsets is skipped (the warm-up burst is the first thing sent).
    cfg = stack.config(detection_preset=preset, starting_offsets="earliest", **settings)
    if mode.engine == "spark":
        from camstream.spark.job import build_query, stop_gracefully

        query = build_query(stack.spark, cfg)
        wait_for_query(query)
        handle = Running(
            cfg,
            mode,
            lambda: stop_gracefully(stack.spark, query, wait=not mode.realtime),
            # Real-time Mode's tasks run in the (local) JVM: no worker process of their own.
            None if mode.realtime else _kill_spark_python_worker,
        )
    else:
        from camstream.workers.group import start_workers

        group = start_workers(cfg, processes=stack.cores)
        deadline = time.monotonic() + 60
        while sum(group.assigned()) < cfg.partitions and time.monotonic() < deadline:
            time.sleep(0.2)

        def kill() -> str:
            pid = group.pids[0]
            group.kill(0)
            return f"worker process {pid} (of {stack.cores})"

        handle = Running(cfg, mode, group.stop, kill)
    try:
        yield handle
    finally:
        handle.stop()


# ---- bursts: capacity, and the warm-up every mode gets --------------------------------------
class Feeder:
    """Publishes frames of given cameras, each camera's seq counting on across bursts."""

    def __init__(self, cfg: Config, cameras: list[str], jpegs: list[bytes]) -> None:
        self.cfg, self.cameras, self.jpegs = cfg, cameras, jpegs
        self.next_seq = dict.fromkeys(cameras, 0)
        self.sent = 0

    def burst(self, count: int) -> int:
        """Publish `count` frames (the cameras in turn) at once; the first send's time (ns)."""
        publisher = FramePublisher(self.cfg)
        first_ns = time.time_ns()
        for i in range(count):
            camera = self.cameras[(self.sent + i) % len(self.cameras)]
            seq = self.next_seq[camera]
            self.next_seq[camera] = seq + 1
            jpeg = self.jpegs[(self.sent + i) % len(self.jpegs)]
            publisher.publish(FrameMeta(camera, seq, time.time_ns(), 640, 480), jpeg)
        publisher.close()
        publisher.check_delivered()
        self.sent += count
        return first_ns


class OutputWatch:
    """The output topic's end offsets, and the records written after a mark."""

    def __init__(self, cfg: Config) -> None:
        self.consumer = make_consumer(cfg)
        partitions = self.consumer.partitions_for_topic(cfg.output_topic) or set()
        self.partitions = [TopicPartition(cfg.output_topic, p) for p in sorted(partitions)]

    def ends(self) -> dict[TopicPartition, int]:
        return dict(self.consumer.end_offsets(self.partitions))

    def wait_for(self, since: dict[TopicPartition, int], count: int, idle_s: float) -> int:
        """Wait (one small request every 0.5 s) until `count` records were written after
        `since`, or none for `idle_s`; how many were."""
        written, last_change = 0, time.monotonic()
        while written < count and time.monotonic() - last_change < idle_s:
            time.sleep(0.5)
            now = sum(self.ends().values()) - sum(since.values())
            if now > written:
                written, last_change = now, time.monotonic()
        return written

    def records_since(self, since: dict[TopicPartition, int]) -> list[Any]:
        self.consumer.assign(self.partitions)
        for partition, offset in since.items():
            self.consumer.seek(partition, offset)
        ends, records = self.ends(), []
        while any(self.consumer.position(p) < ends[p] for p in self.partitions):
            for batch in self.consumer.poll(timeout_ms=2000).values():
                records.extend(batch)
        return records

    def close(self) -> None:
        self.consumer.close()


def drained_burst(
    pipeline: Running, feeder: Feeder, count: int, idle_s: float = 120.0
) -> dict[str, Any]:
    """Publish `count` frames at once into the running pipeline and wait for them all:
    frames/s from the first send to the last output written, and whether each camera's
    frames came out in order."""
    watch = OutputWatch(pipeline.cfg)
    try:
        since = watch.ends()
        first_sent_ns = feeder.burst(count)
        written = watch.wait_for(since, count, idle_s)
        records = watch.records_since(since)
    finally:
        watch.close()
    last_ms = max((r.timestamp for r in records), default=first_sent_ns // 10**6)
    seqs: dict[str, list[int]] = {}
    for record in records:
        values = headers_to_dict(record.headers)
        seqs.setdefault(values["camera_id"], []).append(int(values["seq"]))
    seconds = max(1e-3, last_ms / 1000 - first_sent_ns / 1e9)
    return {
        "frames": count,
        "written": written,
        "seconds": round(seconds, 3),
        "fps": round(written / seconds, 2),
        "in_order": all(s == sorted(s) for s in seqs.values()),
    }


def warm_up(pipeline: Running, feeder: Feeder, count: int) -> None:
    """The same for every mode: a burst drained whole before anything is measured."""
    result = drained_burst(pipeline, feeder, count)
    if result["written"] < count:
        say(f"  warm-up: only {result['written']} of {count} frames came out")


# ---- delay under load, and a worker killed --------------------------------------------------
TAIL_QUIET_S, TAIL_MAX_S = 15.0, 60.0


def after_kill(samples: list[OutputSample], at: float, started: float) -> dict[str, Any]:
    """What the outputs did after a worker was killed at `at` (monotonic): the delay before
    and after, and per camera the longest time without an output of it (from the kill to
    its first output, or between two: how long its wall tile froze; to the end for a camera
    that never resumed)."""
    after = [s for s in samples if s.received >= at]
    end = max((s.received for s in samples), default=at)
    cameras = {s.camera_id for s in samples}
    resumed = {s.camera_id for s in after}

    def pause(camera: str) -> float:
        times = [s.received for s in after if s.camera_id == camera]
        return max(b - a for a, b in itertools.pairwise([at, *times])) if times else end - at

    pauses = [pause(camera) for camera in cameras]
    before = [s.delay_ms for s in samples if at - 10 <= s.received < at]
    return {
        "at_s": round(at - started, 1),
        "delay_ms_p50_before": round(percentile(before, 50), 1),
        "delay_ms_max_after": round(max((s.delay_ms for s in after), default=float("nan")), 1),
        "longest_pause_s": round(max(pauses), 2) if pauses else None,
        "every_camera_resumed": resumed >= cameras,
    }


def under_load(
    pipeline: Running,
    total_fps: float,
    cameras: int,
    seconds: float,
    warmup_s: float,
    kill_at_s: float | None = None,
) -> dict[str, Any]:
    """Cameras at `total_fps` for `seconds` through the running pipeline; the delays of the
    frames received after the first `warmup_s` (the same for every mode). With `kill_at_s`,
    one worker is killed then, and what follows is measured: frames lost, frames twice, the
    longest pause in outputs, the delay after."""
    recorder = DelayRecorder(pipeline.cfg)
    recorder.start()
    simulator = CameraSimulator(
        pipeline.cfg, cameras=cameras, fps=total_fps / cameras, prefix="load"
    )
    started = time.monotonic()
    killed: dict[str, Any] = {}
    if kill_at_s is not None and pipeline.kill_worker is not None:
        kill = pipeline.kill_worker

        def kill_later() -> None:
            time.sleep(kill_at_s)
            killed["at"] = time.monotonic()
            killed["what"] = kill()

        threading.Thread(target=kill_later, daemon=True).start()
    stats = simulator.run(duration_s=seconds, progress=lambda *_: None)
    # The frames still in flight: until every frame sent came out, or none came for
    # TAIL_QUIET_S (longer than a consumer group's session timeout and rebalance: a killed
    # worker's partitions resume only then), at most TAIL_MAX_S.
    ended, last_count, quiet_since = time.monotonic(), -1, time.monotonic()
    while (
        len(recorder.frames) < stats.sent
        and time.monotonic() - quiet_since < TAIL_QUIET_S
        and time.monotonic() - ended < TAIL_MAX_S
    ):
        time.sleep(0.25)
        if len(recorder.samples) != last_count:
            last_count, quiet_since = len(recorder.samples), time.monotonic()
    recorder.stop()
    samples = recorder.samples
    window = [s for s in samples if s.received - started >= warmup_s]
    delays = [s.delay_ms for s in window]
    result: dict[str, Any] = {
        "offered_fps": round(total_fps, 1),
        "cameras": cameras,
        "seconds": seconds,
        "sent": stats.sent,
        "received": len(samples),
        "lost": stats.sent - len(recorder.frames),
        "duplicates": len(samples) - len(recorder.frames),
        "delivered_fps": round(len(window) / max(1e-9, seconds - warmup_s), 1),
        "skipped_share": round(sum(1 for s in window if s.skipped) / max(1, len(window)), 3),
        "delay_ms_p50": round(percentile(delays, 50), 1),
        "delay_ms_p99": round(percentile(delays, 99), 1),
        "simulator_max_lag_ms": round(simulator.max_lag_s * 1000, 1),
    }
    if killed:
        result["killed"] = {"what": killed["what"], **after_kill(samples, killed["at"], started)}
    return result
