"""The benchmark's stack and loads: a broker and Spark, prefilled topics, cameras at a rate,
delays as a station sees them, and where each core's time and memory go (by role).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil
from kafka import TopicPartition
from probes import free_port_block, observed_totals
from registry import say

from camstream.cameras.simulate import CameraSimulator, load_sample_frames
from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_consumer
from camstream.kafka.publish import FramePublisher
from camstream.kafka.topics import ensure_topics
from camstream.local.broker import LocalBroker
from camstream.local.ports import free_port
from camstream.local.supervisor import Supervisor
from camstream.spark.job import stop_gracefully


def sample_jpegs() -> list[bytes]:
    return [encode_jpeg(frame, 80) for frame in load_sample_frames()]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def steady_rate(timestamps_ns: list[int]) -> float:
    """Frames/s between the 10th and 90th percentile of completion times (no warm-up/tail)."""
    ts = sorted(timestamps_ns)
    if len(ts) < 10:
        return float("nan")
    lo, hi = len(ts) // 10, (len(ts) * 9) // 10
    return (hi - lo) / max(1e-9, (ts[hi] - ts[lo]) / 1e9)


# ---- the stack ----------------------------------------------------------------------------
@dataclass
class Stack:
    """A Kafka broker (ours, unless KAFKA_BOOTSTRAP names one) and a Spark session."""

    base: Config
    spark: Any
    broker: LocalBroker | None
    workdir: Path
    cores: int = 1  # Spark's local[cores], and the consumer group's processes
    jpegs: list[bytes] = field(default_factory=sample_jpegs)

    @classmethod
    def start(cls, cores: int, **settings: Any) -> Stack:
        from camstream.spark.session import spark_session

        workdir = Path(tempfile.mkdtemp(prefix="camstream-bench-"))
        broker = None
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        if not bootstrap:
            say("starting a Kafka broker for the benchmark")
            broker = LocalBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
            bootstrap = broker.start()
        base = Config(
            kafka_bootstrap=bootstrap,
            partitions=2 * cores,
            home=str(workdir),
            spark_master=f"local[{cores}]",
            # Drains of pre-filled topics measure the analysis of every frame; the scenarios
            # of the `live` policy say so.
            **{"freshness": "all", **settings},
        )
        say("starting Spark")
        # The reference design moves 1.2 MB pickled frames through the JVM: give it room.
        spark = spark_session(
            base,
            app_name="camstream-bench",
            extra_conf={"spark.driver.memory": "4g"},
            realtime=True,  # the latency scenario runs Real-time Mode too
        )
        return cls(base, spark, broker, workdir, cores)

    def close(self) -> None:
        try:
            self.spark.stop()
        finally:  # the broker goes even when Spark died first
            if self.broker is not None:
                self.broker.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)  # gigabytes of frames per run

    def config(self, **overrides: Any) -> Config:
        suffix = uuid.uuid4().hex[:8]
        cfg = self.base.replace(
            input_topic=f"bench-in-{suffix}",
            output_topic=f"bench-out-{suffix}",
            dead_letter_topic=f"bench-dlq-{suffix}",
            events_topic=f"bench-events-{suffix}",
            checkpoint_location=str(self.workdir / f"ckpt-{suffix}"),
            **overrides,
        )
        ensure_topics(cfg, cfg.pipeline_topics)
        return cfg

    def prefill(self, cfg: Config, count: int, cameras: int = 40) -> None:
        publisher = FramePublisher(cfg)
        for i in range(count):
            camera = f"cam-{i % cameras:03d}"
            meta = FrameMeta(camera, i // cameras, time.time_ns(), 640, 480)
            publisher.publish(meta, self.jpegs[i % len(self.jpegs)])
        publisher.close()
        publisher.check_delivered()


class OutputSample(NamedTuple):
    """An output frame as a station-like consumer received it."""

    received: float  # time.monotonic() when it arrived
    delay_ms: float  # from its capture
    camera_id: str
    seq: int
    skipped: bool  # went out without detection


class DelayRecorder(threading.Thread):
    """A station-like consumer of the output topic: an OutputSample per frame."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(daemon=True)
        self.consumer = make_consumer(cfg, cfg.output_topic)
        self.consumer.poll(timeout_ms=500)  # join the topic before the load starts
        self.samples: list[OutputSample] = []
        self.frames: set[tuple[str, int]] = set()  # (camera id, seq) of every frame seen
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now_ns = time.time_ns()
                for record in records:
                    values = headers_to_dict(record.headers)
                    sample = OutputSample(
                        time.monotonic(),
                        (now_ns - int(values["capture_ts_ns"])) / 1e6,
                        values["camera_id"],
                        int(values["seq"]),
                        "skipped" in values,
                    )
                    self.samples.append(sample)
                    self.frames.add((sample.camera_id, sample.seq))
        self.consumer.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def _processes_by_role() -> list[tuple[str, psutil.Process]]:
    """(role, process) of the processes of this benchmark's stack."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "kafka.Kafka" in cmdline:
            role = "kafka broker"
        elif "org.apache.spark" in cmdline or "pyspark-shell" in cmdline:
            role = "spark jvm"
        elif any(w in cmdline for w in ("pyspark.daemon", "pyspark/daemon", "pyspark.worker")):
            role = "python workers"
        elif process.pid == me:
            role = "bench driver (producer, consumer)"
        else:
            continue
        found.append((role, process))
    return found


def cpu_seconds_by_role() -> dict[str, float]:
    """CPU time (user + system) so far of the processes on this box, by role."""
    roles: dict[str, float] = {}
    for role, process in _processes_by_role():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            roles[role] = roles.get(role, 0.0) + times.user + times.system
    return roles


def rss_mb_by_role() -> dict[str, float]:
    """Resident memory now of the stack's processes, by role (MB)."""
    roles: dict[str, float] = {}
    for role, process in _processes_by_role():
        with contextlib.suppress(psutil.Error):
            roles[role] = roles.get(role, 0.0) + process.memory_info().rss / 2**20
    return roles


class MemorySampler(threading.Thread):
    """Samples every role's resident memory every 2 s while a load runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(2.0):
            self.samples.append((time.monotonic(), rss_mb_by_role()))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per role: the peak in the first and in the second half (bounded: no growth)."""
        self.stop_event.set()
        self.join(timeout=5)
        if len(self.samples) < 4:
            return {}
        middle = len(self.samples) // 2
        halves = self.samples[:middle], self.samples[middle:]
        roles = {role for _, sample in self.samples for role in sample}
        return {
            role: {
                "first_half_peak_mb": round(max(s.get(role, 0.0) for _, s in halves[0]), 1),
                "second_half_peak_mb": round(max(s.get(role, 0.0) for _, s in halves[1]), 1),
            }
            for role in sorted(roles)
        }


def reference_drain(stack: Stack, count: int) -> dict[str, float]:
    """The reference design's query, running and warmed up as ours is measured, draining a
    burst of `count` frames: frames/s from the first send to the last output written."""
    import reference_design

    cfg = stack.config(detection_preset="faithful", starting_offsets="latest")
    frames = list(load_sample_frames())
    for topic in (cfg.input_topic, cfg.output_topic):
        _set_topic_max_bytes(cfg, topic, 4 * 1024 * 1024)
    query = reference_design.build_reference_query(
        stack.spark, cfg, cfg.input_topic, cfg.output_topic, cfg.checkpoint_path
    )
    wait_for_query(query)
    consumer = make_consumer(
        cfg, cfg.output_topic, from_beginning=True, max_partition_fetch_bytes=8 * 1024 * 1024
    )

    def drained(frames_count: int) -> list[Any]:
        records: list[Any] = []
        last_progress = time.monotonic()
        while len(records) < frames_count and time.monotonic() - last_progress < 180:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
                last_progress = time.monotonic()
        return records

    reference_design.publish_frames(cfg, cfg.input_topic, frames, 4)  # the same warm-up
    drained(4)
    first_sent_ns = time.time_ns()
    producer_fps = reference_design.publish_frames(cfg, cfg.input_topic, frames, count)
    records = drained(count)
    consumer.close()
    stop_gracefully(stack.spark, query)
    last_ms = max((r.timestamp for r in records), default=first_sent_ns // 10**6)
    return {
        "job_fps": round(len(records) / max(1e-3, last_ms / 1000 - first_sent_ns / 1e9), 2),
        "producer_fps": producer_fps,
    }


def _set_topic_max_bytes(cfg: Config, topic: str, size: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    from camstream.kafka.clients import make_admin

    admin = make_admin(cfg)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(size)}
                )
            ]
        )
    finally:
        admin.close()


def our_producer_rate(stack: Stack, count: int) -> float:
    cfg = stack.config()
    started = time.perf_counter()
    stack.prefill(cfg, count)
    return count / (time.perf_counter() - started)


def _partitions_for(stack: Stack, trigger: str) -> int:
    """One endless task per partition in Real-time Mode: as many partitions
    as cores; micro-batches get the stack's default."""
    if trigger.startswith("realtime"):
        return int(stack.spark.sparkContext.defaultParallelism)
    return stack.base.partitions


def run_load(
    stack: Stack,
    *,
    preset: str,
    total_fps: float,
    cameras: int,
    seconds: float,
    trigger: str = "0 seconds",
    freshness: str = "all",
    warmup_s: float = 8.0,
    async_progress: bool = False,
    scene: str = "sample",
) -> dict[str, Any]:
    """Cameras at a total rate through the running job; delays as a station sees them.

    `scene="still"`: the cameras play the labelled still scenes (the motion gate's load)."""
    from camstream.spark.job import build_query

    cfg = stack.config(
        detection_preset=preset,
        trigger_interval=trigger,
        freshness=freshness,
        starting_offsets="latest",
        async_progress=async_progress,
        partitions=_partitions_for(stack, trigger),
    )
    query = build_query(stack.spark, cfg)
    # Let the query start (and Python workers spawn) before the cameras do.
    wait_for_query(query)
    recorder = DelayRecorder(cfg)
    recorder.start()
    memory = MemorySampler()
    memory.start()
    simulator = CameraSimulator(cfg, cameras=cameras, fps=total_fps / cameras, scene=scene)
    cpu_before = cpu_seconds_by_role()
    started = time.monotonic()
    stats = simulator.run(duration_s=seconds, progress=lambda *_: None)
    time.sleep(2.0)  # the last frames in flight
    recorder.stop()
    elapsed = time.monotonic() - started
    cpu_after = cpu_seconds_by_role()
    memory_mb = memory.summary()
    anatomy = batch_anatomy(query)
    totals = observed_totals(query)
    stop_gracefully(stack.spark, query, wait=not trigger.startswith("realtime"))
    window = [s for s in recorder.samples if s.received - started >= warmup_s]
    delays = [s.delay_ms for s in window]
    tail = [s.delay_ms for s in window if s.received - started >= seconds - 10]
    head = [s.delay_ms for s in window if s.received - started < warmup_s + 10]
    received = len(recorder.samples)
    return {
        "preset": preset,
        "motion_gate": cfg.motion_gate,
        "trigger": trigger,
        "freshness": freshness,
        "cameras": cameras,
        "offered_fps": round(total_fps, 1),
        "sent": stats.sent,
        "received": received,
        "delivered_fps": round(len(window) / max(1e-9, seconds - warmup_s), 1),
        "skipped": sum(1 for s in recorder.samples if s.skipped),
        "delay_ms_p50": round(percentile(delays, 50), 1),
        "delay_ms_p95": round(percentile(delays, 95), 1),
        "delay_ms_p99": round(percentile(delays, 99), 1),
        "delay_ms_p50_first_10s": round(percentile(head, 50), 1),
        "delay_ms_p50_last_10s": round(percentile(tail, 50), 1),
        "simulator_max_lag_ms": round(simulator.max_lag_s * 1000, 1),
        "batch_anatomy_ms": anatomy,
        "memory_mb": memory_mb,
        "cores_busy_by_role": {
            role: round((cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / elapsed, 3)
            for role in cpu_after
        },
        "frames_analysed": totals.get("frames_analysed", 0),
        "frames_gated": totals.get("frames_gated", 0),
    }


def batch_anatomy(query: Any) -> dict[str, float]:
    """Median time of each part of a micro-batch (Spark's durationMs), where it applies."""
    try:
        reports = [p for p in query.recentProgress if p.get("numInputRows")]
    except Exception:  # real-time queries report no micro-batches
        return {}
    parts: dict[str, list[float]] = {}
    for report in reports:
        for name, value in (report.get("durationMs") or {}).items():
            parts.setdefault(name, []).append(float(value))
    rows = [float(r["numInputRows"]) for r in reports]
    anatomy = {name: statistics.median(values) for name, values in parts.items()}
    if rows:
        anatomy["frames_per_batch"] = statistics.median(rows)
    return anatomy


def wait_for_query(query: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = query.status
        if status.get("isDataAvailable") is not None and not status.get("message", "").startswith(
            "Initializing"
        ):
            return
        time.sleep(0.2)


def keeps_up(result: dict[str, Any]) -> bool:
    """No growing lag: the last 10 s are not much later than the first, and all arrived."""
    return (
        result["delay_ms_p50_last_10s"] <= 2 * result["delay_ms_p50_first_10s"] + 250
        and result["received"] >= 0.97 * result["sent"]
    )


# ---- uneven cameras -----------------------------------------------------------------------
@dataclass(frozen=True)
class LoadShape:
    """Cameras of given scenes, placed on given partitions of a topic."""

    name: str
    partitions: int
    cameras_per_partition: list[int]
    scenes: list[str]  # one per camera, cycled

    def cameras(self) -> list[tuple[str, str]]:
        """(camera id, scene) per camera."""
        from scenes import cameras_on

        ids = cameras_on(self.cameras_per_partition, self.partitions)
        return [(cid, self.scenes[i % len(self.scenes)]) for i, cid in enumerate(ids)]

    def frames(self, per_camera: int) -> list[tuple[str, int, bytes]]:
        """(camera id, seq, JPEG), the cameras interleaved as they would arrive."""
        from scenes import scene_jpegs

        cameras = self.cameras()
        return [
            (cid, seq, scene_jpegs(scene)[seq % len(scene_jpegs(scene))])
            for seq in range(per_camera)
            for cid, scene in cameras
        ]


def drain_frames(
    stack: Stack,
    preset: str,
    frames: list[tuple[str, int, bytes]] | list[tuple[str, int, bytes, int]],
    partitions: int,
    **settings: Any,
) -> dict[str, Any]:
    """The job (default settings but the preset) draining pre-filled frames: its steady rate,
    whether each camera's order held, and where the cores' time went. A frame may come
    with its capture time (ns; the motion gate's keyframes count in capture time), else
    it is captured as it is sent."""
    from camstream.spark.job import build_query

    cfg = stack.config(
        detection_preset=preset, partitions=partitions, starting_offsets="earliest", **settings
    )
    publisher = FramePublisher(cfg)
    for camera_id, seq, jpeg, *captured in frames:
        capture_ts_ns = captured[0] if captured else time.time_ns()
        publisher.publish(FrameMeta(camera_id, seq, capture_ts_ns, 640, 480), jpeg)
    publisher.close()
    publisher.check_delivered()
    cpu_before, wall_before = cpu_seconds_by_role(), time.monotonic()
    started_ms = time.time_ns() // 10**6  # the topic is full: the job's first input is now
    query = build_query(stack.spark, cfg)
    # While the job drains, only the output's end offsets are watched (one small request a
    # second): the frames are read after it, so that reading them takes no core from the job.
    consumer = make_consumer(cfg)
    output = [
        TopicPartition(cfg.output_topic, p)
        for p in consumer.partitions_for_topic(cfg.output_topic) or ()
    ]
    written, last_progress = 0, time.monotonic()
    while written < len(frames) and time.monotonic() - last_progress < 180:
        time.sleep(1.0)
        now_written = sum(consumer.end_offsets(output).values())
        if now_written > written:
            written, last_progress = now_written, time.monotonic()
    wall = time.monotonic() - wall_before
    cpu_after = cpu_seconds_by_role()
    anatomy = batch_anatomy(query)
    stop_gracefully(stack.spark, query)
    consumer.assign(output)
    consumer.seek_to_beginning()
    done: list[int] = []
    order: dict[str, list[int]] = {}
    last_output_ms = started_ms
    while len(done) < written:
        batch = consumer.poll(timeout_ms=2000)
        if not batch:
            break
        for records in batch.values():
            for record in records:
                values = headers_to_dict(record.headers)
                done.append(int(values["analyzed_ts_ns"]))
                order.setdefault(values["camera_id"], []).append(int(values["seq"]))
                last_output_ms = max(last_output_ms, record.timestamp)
    consumer.close()
    wall_s = (last_output_ms - started_ms) / 1000
    return {
        "frames": len(frames),
        "received": len(done),
        "steady_fps": round(steady_rate(done), 2),
        # From the query's start to the last output record's time (all of it: no trimming).
        "wall_s": round(wall_s, 3),
        "wall_fps": round(len(done) / wall_s, 2) if wall_s > 0 else float("nan"),
        "in_order": all(seqs == sorted(seqs) for seqs in order.values()),
        "cores_busy_by_role": {
            role: round((cpu_after.get(role, 0) - cpu_before.get(role, 0)) / wall, 2)
            for role in cpu_after
        },
        "batch_anatomy_ms": anatomy,
    }


# ---- the demo, as a user runs it ----------------------------------------------------------
@dataclass(frozen=True)
class RunningDemo:
    """A `camstream demo` being run: its station's address and its own broker's."""

    port: int
    kafka_bootstrap: str
    workdir: Path

    @property
    def station(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def demo_running(
    env_overrides: dict[str, str], cameras: int | None = None
) -> Iterator[RunningDemo]:
    """`camstream demo` with its defaults (and `env_overrides`), its own broker, until the
    block ends (then Ctrl-C, as a user stops it)."""
    import httpx

    workdir = Path(tempfile.mkdtemp(prefix="camstream-bench-demo-"))
    # The demo's broker listens on its port and the next (its controller), the station on a
    # third: a block of free ports, below the range of outgoing connections (`probes`).
    base = free_port_block(3)
    port = base + 2
    bootstrap = f"127.0.0.1:{base}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAMSTREAM_")},
        "KAFKA_BOOTSTRAP": bootstrap,  # its own broker, started by the demo
        "CAMSTREAM_HOME": str(workdir),
        "CAMSTREAM_STATION_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    more = [] if cameras is None else ["--cameras", str(cameras)]
    demo = Supervisor("camstream demo", workdir / "demo.log")
    demo.spawn([sys.executable, "-m", "camstream", "demo", *more], env=env)

    def station_up() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    try:
        demo.wait_ready(station_up, 120, "serving its station")
        yield RunningDemo(port, bootstrap, workdir)
    finally:
        demo.stop(120, signum=signal.SIGINT)  # Ctrl-C: the demo stops its components itself
        shutil.rmtree(workdir, ignore_errors=True)


def run_demo_and_sample(
    env_overrides: dict[str, str],
    warmup_s: float = 120.0,
    sample_s: float = 40.0,
    every_s: float = 5.0,
    browser: bool = True,
    cameras: int | None = None,
) -> dict[str, Any]:
    """`camstream demo` with its defaults (and `env_overrides`), a browser on the wall; after
    `warmup_s`, the delay of the latest frame per camera and each camera's frames/s from
    /api/stats every `every_s` for `sample_s`, as a user would read them off the wall."""
    import httpx

    samples: list[dict[str, Any]] = []
    shedding: list[float] = []
    shown: dict[str, list[float]] = {}
    viewer = None
    with demo_running(env_overrides, cameras) as demo:
        try:
            if browser:
                viewer = open_wall(f"{demo.station}/")
            started = time.monotonic()
            time.sleep(max(0.0, warmup_s - (time.monotonic() - started)))
            end = time.monotonic() + sample_s
            while time.monotonic() < end:
                stats = httpx.get(f"{demo.station}/api/stats", timeout=5).json()
                samples.append({c["camera_id"]: c for c in stats["cameras"]})
                shedding.append(stats.get("shedding", {}).get("share", 0.0))
                time.sleep(every_s)
            if viewer is not None:
                shown = shown_delays(viewer)
        finally:
            if viewer is not None:
                viewer.quit()
    delays = [c["delay_ms_last"] for s in samples for c in s.values()]
    fps = [c["fps"] for s in samples for c in s.values()]
    return {
        "settings": env_overrides,
        "samples": len(samples),
        "cameras_seen": len({cid for s in samples for cid in s}),
        "latest_delay_ms_p50": round(percentile(delays, 50), 1),
        "latest_delay_ms_p95": round(percentile(delays, 95), 1),
        "latest_delay_ms_max": round(max(delays), 1) if delays else float("nan"),
        "tile_fps_min": round(min(fps), 2) if fps else float("nan"),
        "tile_fps_max": round(max(fps), 2) if fps else float("nan"),
        "browser": viewer is not None,
        **_shown_figures(shown),
        **_wall_figures(samples, shedding),
    }


def shown_delays(viewer: Any) -> dict[str, list[float]]:
    """Per tile of the wall, the delays of its last frames as the page showed them (capture
    to the decoded image, by the page's clock: `data-shown-delays-ms`)."""
    pairs = viewer.execute_script(
        "return [...document.querySelectorAll('.tile')]"
        ".map(t => [t.dataset.camera, t.dataset.shownDelaysMs || ''])"
    )
    return {camera: [float(v) for v in text.split(",") if v] for camera, text in pairs}


def _shown_figures(shown: dict[str, list[float]]) -> dict[str, Any]:
    """The browser's delays by the station's rule for its own: each camera's p50 and p95
    over its window; the median camera's p50, the largest camera's p95."""
    cameras = [delays for delays in shown.values() if delays]
    if not cameras:
        return {}
    return {
        "shown_delay_ms_p50": round(statistics.median(percentile(d, 50) for d in cameras), 1),
        "shown_delay_ms_p95": round(max(percentile(d, 95) for d in cameras), 1),
        "shown_frames": sum(len(d) for d in cameras),
    }


def _wall_figures(samples: list[dict[str, Any]], shedding: list[float]) -> dict[str, Any]:
    """What the wall showed, from the station's rolling windows: its delays (the last sample's
    p50/p95 over each camera's last 256 frames), analysed frames/s, the longest gap between
    analysed frames (last 30 s), stale tiles and the share of frames shed."""
    if not samples:
        return {}
    last = list(samples[-1].values())
    analysed = [c.get("analysed_fps", float("nan")) for s in samples for c in s.values()]
    gaps = [c.get("analysed_gap_max_s") for c in last]
    return {
        "cameras": len(last),
        "delay_ms_p50": round(statistics.median(c["delay_ms_p50"] for c in last), 1),
        "delay_ms_p95": round(max(c["delay_ms_p95"] for c in last), 1),
        "analysed_fps_min": round(min(analysed), 2),
        "analysed_fps_median": round(statistics.median(analysed), 2),
        "analysed_gap_max_s": max((g for g in gaps if g is not None), default=None),
        "cameras_never_analysed": sum(1 for g in gaps if g is None),
        "stale_tiles": sum(1 for s in samples for c in s.values() if c["stale"]),
        "shed_share_median": round(statistics.median(shedding), 3) if shedding else None,
        "frames_skipped": sum(c.get("frames_skipped", 0) for c in last),
        "frames": sum(c["frames"] for c in last),
    }


def open_wall(url: str) -> Any:
    """Debian's headless Chromium showing the wall (None where it is not installed)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-dev-shm-usage",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='camstream-bench-chromium-')}",
                 "--window-size=1400,900"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.get(url)
    return browser
