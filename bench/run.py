"""camstream benchmark: every figure measured side by side in one run, on this machine.

    .venv/bin/python bench/run.py            # everything (about 15 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # a smoke run: short and small

Writes bench/results/results.json and PNG plots, prints a table, and shows progress.
Scenarios (see the README's performance section):
  raw        the plain OpenCV loop (decode, grey, detect, draw, encode), one process per core
  costs      one core's ms per frame at 640x480 and 1280x720, per preset (capacity plan)
  producer   how many cameras one `camstream simulate` process sustains at 1 frame/s
  accuracy   recall and precision of each preset on labelled frames
  drain      the Spark job draining a pre-filled topic, per preset
  reference  the reference demo's design (pickled base64 JSON, classifier per frame, flush
             per send) draining the same frames
  latency    capture-to-station delay at a fraction of capacity, micro-batch and continuous
  pipeline   producers + broker + Spark + station consumer near capacity
  overload   twice the capacity: the `latest` freshness policy against `all`
  cameras    many cameras at 1 frame/s with the fast preset
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camstream.analysis import analyze_jpeg, decode_jpeg, encode_jpeg
from camstream.annotation import annotate
from camstream.broker import LocalBroker, free_port
from camstream.config import DETECTION_PRESETS, Config
from camstream.detection import detect_faces
from camstream.frames import FrameMeta, headers_to_dict
from camstream.kafka_io import ensure_topics, make_consumer
from camstream.processes import rss_kb
from camstream.producer import FramePublisher
from camstream.simulate import CameraSimulator, load_sample_frames, sample_labels
from camstream.spark_job import stop_gracefully

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


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


# ---- raw OpenCV loop ----------------------------------------------------------------------
def naive_frame(jpeg: bytes, settings: Any) -> bytes:
    """The plain loop body: decode, grey, detect, draw, encode, for every frame."""
    image = decode_jpeg(jpeg)
    boxes = detect_faces(image, settings)
    return encode_jpeg(annotate(image, boxes), 80)


def _raw_worker(args: tuple[str, float, bool]) -> int:
    preset, seconds, camstream_function = args
    cv2.setNumThreads(1)
    settings = DETECTION_PRESETS[preset]
    jpegs = sample_jpegs()
    step = analyze_jpeg if camstream_function else naive_frame
    step(jpegs[0], settings)  # warm-up: classifier load
    frames, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        step(jpegs[frames % len(jpegs)], settings)
        frames += 1
    return frames


def raw_loop(
    preset: str, seconds: float, processes: int, camstream_function: bool = False
) -> float:
    """Frames/s of one process per core running the loop body over the sample frames."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.map(_raw_worker, [(preset, seconds, camstream_function)] * processes)
    return sum(counts) / seconds


# ---- per-frame costs for the capacity plan -------------------------------------------------
RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720)}


def frame_costs(seconds: float) -> dict[str, Any]:
    """One core's milliseconds per frame of camstream's per-frame function, and JPEG sizes.

    The sample frames are resized (720p is upscaled: the detector sees more pixels, as it
    would with a real 720p camera). The capacity plan (bench/capacity_plan.py) builds on these.
    """
    cv2.setNumThreads(1)
    costs: dict[str, Any] = {}
    for name, size in RESOLUTIONS.items():
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in load_sample_frames()]
        jpegs = [encode_jpeg(f, 80) for f in frames]
        started = time.perf_counter()
        for frame in frames:
            encode_jpeg(frame, 80)
        costs[name] = {
            "jpeg_bytes_median": statistics.median(len(j) for j in jpegs),
            # What a producer that captures raw frames pays per frame to encode them.
            "encode_ms": (time.perf_counter() - started) * 1000 / len(frames),
        }
        for preset, settings in DETECTION_PRESETS.items():
            analyze_jpeg(jpegs[0], settings)  # warm-up: classifier load
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                analyze_jpeg(jpegs[done % len(jpegs)], settings)
                done += 1
            costs[name][f"{preset}_ms_per_frame"] = (time.perf_counter() - started) * 1000 / done
    return costs


# ---- detection accuracy -------------------------------------------------------------------
def accuracy(preset: str) -> dict[str, float]:
    """Recall and precision on the labelled sample frames, plus darker and smaller copies."""
    settings = DETECTION_PRESETS[preset]
    tp = fp = fn = 0
    labels = sample_labels()["frames"]
    for frame, label in zip(load_sample_frames(), labels, strict=True):
        truth = [list(map(float, b)) for b in label["faces"]]
        variants = [(frame, truth, 1.0)]
        variants.append((cv2.convertScaleAbs(frame, alpha=0.6, beta=0), truth, 1.0))
        small = cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA)
        variants.append((small, [[v * 0.75 for v in b] for b in truth], 0.75))
        for image, boxes, _scale in variants:
            found = detect_faces(decode_jpeg(encode_jpeg(image, 80)), settings).tolist()
            matched = set()
            for box in boxes:
                hit = next(
                    (i for i, f in enumerate(found) if i not in matched and _iou(f, box) >= 0.3),
                    None,
                )
                if hit is None:
                    fn += 1
                else:
                    matched.add(hit)
                    tp += 1
            fp += len(found) - len(matched)
    return {
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ---- the stack ----------------------------------------------------------------------------
@dataclass
class Stack:
    base: Config
    spark: Any
    broker: LocalBroker | None
    workdir: Path
    jpegs: list[bytes] = field(default_factory=sample_jpegs)

    def config(self, **overrides: Any) -> Config:
        suffix = uuid.uuid4().hex[:8]
        cfg = self.base.replace(
            input_topic=f"bench-in-{suffix}",
            output_topic=f"bench-out-{suffix}",
            dead_letter_topic=f"bench-dlq-{suffix}",
            checkpoint_location=str(self.workdir / f"ckpt-{suffix}"),
            **overrides,
        )
        ensure_topics(cfg, [cfg.input_topic, cfg.output_topic, cfg.dead_letter_topic])
        return cfg

    def prefill(self, cfg: Config, count: int, cameras: int = 40) -> None:
        publisher = FramePublisher(cfg)
        for i in range(count):
            camera = f"cam-{i % cameras:03d}"
            meta = FrameMeta(camera, i // cameras, time.time_ns(), 640, 480)
            publisher.publish(meta, self.jpegs[i % len(self.jpegs)])
        publisher.close()
        publisher.check_delivered()


class DelayRecorder(threading.Thread):
    """A station-like consumer: records (receive time, delay ms, skipped) per frame."""

    def __init__(self, cfg: Config, from_beginning: bool = False) -> None:
        super().__init__(daemon=True)
        self.consumer = make_consumer(cfg, cfg.output_topic, from_beginning=from_beginning)
        self.consumer.poll(timeout_ms=500)  # join the topic before the load starts
        self.samples: list[tuple[float, float, bool, int]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                now_ns = time.time_ns()
                for record in records:
                    values = headers_to_dict(record.headers)
                    delay = (now_ns - int(values["capture_ts_ns"])) / 1e6
                    self.samples.append(
                        (
                            time.monotonic(),
                            delay,
                            "skipped" in values,
                            int(values["analyzed_ts_ns"]),
                        )
                    )
        self.consumer.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def _processes_by_role() -> list[tuple[str, Path]]:
    """(role, /proc folder) of the processes of this benchmark's stack."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            role = "kafka broker"
        elif b"org.apache.spark" in cmdline or b"pyspark-shell" in cmdline:
            role = "spark jvm"
        elif (
            b"pyspark.daemon" in cmdline
            or b"pyspark/daemon" in cmdline
            or b"pyspark.worker" in cmdline
        ):
            role = "python workers"
        elif int(proc.name) == os.getpid():
            role = "bench driver (producer, consumer)"
        else:
            continue
        found.append((role, proc))
    return found


def cpu_seconds_by_role() -> dict[str, float]:
    """CPU time (user + system) so far of the processes on this box, by role."""
    tick = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {}
    for role, proc in _processes_by_role():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        roles[role] = roles.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return roles


def rss_mb_by_role() -> dict[str, float]:
    """Resident memory now of the stack's processes, by role (MB)."""
    roles: dict[str, float] = {}
    for role, proc in _processes_by_role():
        roles[role] = roles.get(role, 0.0) + rss_kb(int(proc.name)) / 1024
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


def drain(stack: Stack, preset: str, count: int, profile: dict[str, Any] | None = None) -> float:
    cfg = stack.config(
        detection_preset=preset, max_offsets_per_trigger=1_000_000, starting_offsets="earliest"
    )
    stack.prefill(cfg, count)
    from camstream.spark_job import build_query

    query = build_query(stack.spark, cfg)
    consumer = make_consumer(cfg, cfg.output_topic, from_beginning=True)
    cpu_before, wall_before = cpu_seconds_by_role(), time.monotonic()
    done: list[int] = []
    last_progress = time.monotonic()
    while len(done) < count and time.monotonic() - last_progress < 120:
        for records in consumer.poll(timeout_ms=500).values():
            done.extend(int(headers_to_dict(r.headers)["analyzed_ts_ns"]) for r in records)
            last_progress = time.monotonic()
    if len(done) < count:
        say(
            f"drain: only {len(done)} of {count} frames came out (query error: {query.exception()})"
        )
    if profile is not None:
        cpu_after, wall = cpu_seconds_by_role(), time.monotonic() - wall_before
        profile.update(
            {
                role: round((cpu_after.get(role, 0) - cpu_before.get(role, 0)) / wall, 3)
                for role in cpu_after
            }
        )
    consumer.close()
    stop_gracefully(stack.spark, query)
    return steady_rate(done)


def reference_drain(stack: Stack, count: int) -> dict[str, float]:
    import reference_design

    cfg = stack.config(detection_preset="faithful", starting_offsets="earliest")
    frames = list(load_sample_frames())
    for topic in (cfg.input_topic, cfg.output_topic):
        _set_topic_max_bytes(cfg, topic, 4 * 1024 * 1024)
    producer_fps = reference_design.publish_frames(cfg, cfg.input_topic, frames, count)
    query = reference_design.build_reference_query(
        stack.spark, cfg, cfg.input_topic, cfg.output_topic, cfg.checkpoint_path
    )
    consumer = make_consumer(
        cfg, cfg.output_topic, from_beginning=True, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    records: list[Any] = []
    last_progress = time.monotonic()
    while len(records) < count and time.monotonic() - last_progress < 180:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
            last_progress = time.monotonic()
    consumer.close()
    stop_gracefully(stack.spark, query)
    return {
        "job_fps": steady_rate(reference_design.analyzed_times(records)),
        "producer_fps": producer_fps,
    }


def _set_topic_max_bytes(cfg: Config, topic: str, size: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    from camstream.kafka_io import make_admin

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
) -> dict[str, Any]:
    """Cameras at a total rate through the running job; delays as a station sees them."""
    from camstream.spark_job import build_query

    continuous = trigger.startswith("continuous")
    cfg = stack.config(
        detection_preset=preset,
        trigger_interval=trigger,
        freshness_policy=freshness,
        starting_offsets="latest",
        async_progress=async_progress,
        # One endless task per partition in continuous mode: no more partitions than cores.
        partitions=stack.spark.sparkContext.defaultParallelism if continuous else None,
    )
    query = build_query(stack.spark, cfg)
    # Let the query start (and Python workers spawn) before the cameras do.
    _wait_for_query(query)
    recorder = DelayRecorder(cfg)
    recorder.start()
    memory = MemorySampler()
    memory.start()
    simulator = CameraSimulator(cfg, cameras=cameras, fps=total_fps / cameras)
    started = time.monotonic()
    stats = simulator.run(duration_s=seconds, progress=lambda *_: None)
    time.sleep(2.0)  # the last frames in flight
    recorder.stop()
    memory_mb = memory.summary()
    anatomy = batch_anatomy(query)
    stop_gracefully(stack.spark, query)
    window = [s for s in recorder.samples if s[0] - started >= warmup_s]
    delays = [s[1] for s in window]
    tail = [s[1] for s in window if s[0] - started >= seconds - 10]
    head = [s[1] for s in window if s[0] - started < warmup_s + 10]
    received = len(recorder.samples)
    return {
        "preset": preset,
        "trigger": trigger,
        "freshness": freshness,
        "cameras": cameras,
        "offered_fps": round(total_fps, 1),
        "sent": stats.sent,
        "received": received,
        "delivered_fps": round(len(window) / max(1e-9, seconds - warmup_s), 1),
        "skipped": sum(1 for s in recorder.samples if s[2]),
        "delay_ms_p50": round(percentile(delays, 50), 1),
        "delay_ms_p95": round(percentile(delays, 95), 1),
        "delay_ms_p99": round(percentile(delays, 99), 1),
        "delay_ms_p50_first_10s": round(percentile(head, 50), 1),
        "delay_ms_p50_last_10s": round(percentile(tail, 50), 1),
        "simulator_max_lag_ms": round(simulator.max_lag_s * 1000, 1),
        "batch_anatomy_ms": anatomy,
        "memory_mb": memory_mb,
    }


def batch_anatomy(query: Any) -> dict[str, float]:
    """Median time of each part of a micro-batch (Spark's durationMs), where it applies."""
    try:
        reports = [p for p in query.recentProgress if p.get("numInputRows")]
    except Exception:  # continuous queries report no micro-batches
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


def _wait_for_query(query: Any, timeout_s: float = 60) -> None:
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


# ---- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--scenarios", default="all", help="comma-separated, or all")
    parser.add_argument("--repeats", type=int, default=3, help="repeats for medians")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    every = "raw,costs,producer,accuracy,drain,reference,latency,pipeline,overload,cameras"
    scenarios = set((every if args.scenarios == "all" else args.scenarios).split(","))
    quick = args.quick
    repeats = 1 if quick else args.repeats
    cores = os.cpu_count() or 1
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {
            "cpus": cores,
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick,
    }

    if "raw" in scenarios:
        results["raw_fps"] = {}
        results["raw_fps_camstream_function"] = {}
        for preset in DETECTION_PRESETS:
            for key, ours in (("raw_fps", False), ("raw_fps_camstream_function", True)):
                runs = []
                for i in range(repeats):
                    what = "camstream's per-frame function" if ours else "plain OpenCV loop"
                    say(f"{what}, {preset}, {cores} processes, run {i + 1}/{repeats}")
                    runs.append(raw_loop(preset, 2.0 if quick else 8.0, cores, ours))
                results[key][preset] = {"median": statistics.median(runs), "runs": runs}

    if "costs" in scenarios:
        say("per-frame cost on one core at 640x480 and 1280x720, both presets")
        results["frame_costs"] = frame_costs(1.0 if quick else 5.0)

    if "producer" in scenarios:
        import producer_capacity

        say("cameras one producer process sustains at 1 frame/s")
        results["producer_capacity"] = producer_capacity.run(quick=quick)

    if "accuracy" in scenarios:
        results["accuracy"] = {}
        for preset in DETECTION_PRESETS:
            say(f"accuracy of {preset} on labelled frames")
            results["accuracy"][preset] = accuracy(preset)

    needs_stack = scenarios & {"drain", "reference", "latency", "pipeline", "overload", "cameras"}
    if needs_stack:
        _run_stack_scenarios(results, scenarios, quick, repeats, cores)

    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    _plot(results, args.out)
    print(render_table(results))
    say(f"results in {args.out / 'results.json'}")
    return 0


def _run_stack_scenarios(
    results: dict[str, Any], scenarios: set[str], quick: bool, repeats: int, cores: int
) -> None:
    from camstream.spark_job import DEFAULT_CONTINUOUS_INTERVAL, spark_session

    workdir = Path(tempfile.mkdtemp(prefix="camstream-bench-"))
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        say("starting a Kafka broker for the benchmark")
        broker = LocalBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
        bootstrap = broker.start()
    base = Config(
        bootstrap_servers=bootstrap,
        partitions=2 * cores,
        home=str(workdir),
        master=f"local[{cores}]",
    )
    say("starting Spark")
    # The reference design moves 1.2 MB pickled frames through the JVM: give it room.
    spark = spark_session(
        base, app_name="camstream-bench", extra_conf={"spark.driver.memory": "4g"}
    )
    stack = Stack(base, spark, broker, workdir)
    try:
        if "drain" in scenarios:
            results["drain_fps"] = {}
            for preset in DETECTION_PRESETS:
                count = 60 if quick else (400 if preset == "faithful" else 1600)
                runs = []
                for i in range(repeats):
                    say(f"Spark drain, {preset}, {count} frames, run {i + 1}/{repeats}")
                    profile: dict[str, Any] = {}
                    runs.append(drain(stack, preset, count, profile))
                results["drain_fps"][preset] = {
                    "median": statistics.median(runs),
                    "runs": runs,
                    "cores_busy_by_role_last_run": profile,
                }
            say("our producer (batched, no flush per frame)")
            results["our_producer_fps"] = our_producer_rate(stack, 200 if quick else 2000)
        if "reference" in scenarios:
            count = 30 if quick else 150
            say(f"reference design, {count} frames (pickled base64 JSON, classifier per frame)")
            try:
                results["reference"] = reference_drain(stack, count)
            except Exception as exc:  # keep the other scenarios' results
                say(f"reference design failed: {type(exc).__name__}: {exc}")
                results.setdefault("errors", []).append(f"reference: {exc}")
        capacity = results.get("drain_fps", {}).get("fast", {}).get("median") or 100.0
        capacity_faithful = results.get("drain_fps", {}).get("faithful", {}).get("median") or 20.0
        seconds = 12 if quick else 40
        if "latency" in scenarios:
            results["latency"] = []
            fractions = [0.5] if quick else [0.25, 0.5, 0.75]
            modes = [("micro-batch", "0 seconds", False), ("micro-batch async", "0 seconds", True)]
            for fraction in fractions:
                for mode, trigger, async_progress in modes:
                    say(f"latency, fast, {fraction:.0%} of capacity, {mode}")
                    result = run_load(stack, preset="fast", total_fps=fraction * capacity,
                                      cameras=10, seconds=seconds, trigger=trigger,
                                      async_progress=async_progress)  # fmt: skip
                    results["latency"].append({"load": fraction, "mode": mode, **result})
            # Continuous processing needs a core per partition (one endless task each). Its
            # first half minute after a start is slower (workers and JIT warming), so these
            # runs leave 20 s out before measuring, as a long-running job would be measured.
            warm = {"warmup_s": 8.0} if quick else {"warmup_s": 20.0}
            long = seconds if quick else seconds + 20
            continuous = f"continuous, {DEFAULT_CONTINUOUS_INTERVAL} epochs"
            for fraction in fractions:
                say(f"latency, fast, {fraction:.0%} of capacity, {continuous}, partitions = cores")
                result = run_load(stack, preset="fast", total_fps=fraction * capacity,
                                  cameras=10, seconds=long, trigger="continuous",
                                  **warm)  # fmt: skip
                results["latency"].append({"load": fraction, "mode": continuous, **result})
            for mode, trigger in (("micro-batch async", "0 seconds"), (continuous, "continuous")):
                say(f"latency, faithful, 50% of capacity, {mode}")
                result = run_load(stack, preset="faithful", total_fps=0.5 * capacity_faithful,
                                  cameras=5, seconds=long, trigger=trigger,
                                  async_progress=mode.endswith("async"), **warm)  # fmt: skip
                results["latency"].append({"load": 0.5, "mode": mode, **result})
        if "pipeline" in scenarios:
            raw_fast = results.get("raw_fps", {}).get("fast", {}).get("median") or capacity
            say(f"whole pipeline at 85% of the raw loop's {raw_fast:.0f} frames/s")
            result = run_load(stack, preset="fast", total_fps=0.85 * raw_fast, cameras=20,
                              seconds=seconds)  # fmt: skip
            result["keeps_up"] = keeps_up(result)
            results["pipeline"] = result
        if "overload" in scenarios:
            results["overload"] = {}
            for policy in ("latest", "all"):
                say(
                    f"overload: twice the capacity for {60 if not quick else 12} s, policy {policy}"
                )
                results["overload"][policy] = run_load(
                    stack, preset="fast", total_fps=2 * capacity, cameras=20,
                    seconds=12 if quick else 60, freshness=policy,
                )  # fmt: skip
        if "cameras" in scenarios:
            results["cameras"] = []
            for cameras in [20] if quick else [100, 200, 300]:
                say(f"{cameras} cameras at 1 frame/s, fast preset")
                result = run_load(stack, preset="fast", total_fps=cameras, cameras=cameras,
                                  seconds=seconds)  # fmt: skip
                result["keeps_up"] = keeps_up(result)
                results["cameras"].append(result)
    finally:
        try:
            spark.stop()
        finally:  # the broker goes even when Spark died first
            if broker is not None:
                broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)  # gigabytes of frames per run


def render_table(results: dict[str, Any]) -> str:
    rows = [("measure", "value")]
    for preset, value in results.get("raw_fps", {}).items():
        rows.append((f"raw OpenCV loop, {preset} (frames/s)", f"{value['median']:.1f}"))
    for preset, value in results.get("raw_fps_camstream_function", {}).items():
        rows.append((f"loop of camstream's function, {preset}", f"{value['median']:.1f}"))
    for preset, value in results.get("drain_fps", {}).items():
        raw = results.get("raw_fps", {}).get(preset, {}).get("median")
        ratio = f" ({value['median'] / raw:.0%} of raw)" if raw else ""
        rows.append((f"Spark job drain, {preset} (frames/s)", f"{value['median']:.1f}{ratio}"))
    if "reference" in results:
        ref = results["reference"]
        ours = results.get("drain_fps", {}).get("faithful", {}).get("median")
        ratio = f" (ours {ours / ref['job_fps']:.1f}x faster)" if ours else ""
        rows.append(("reference design job, faithful (frames/s)", f"{ref['job_fps']:.1f}{ratio}"))
        rows.append(
            ("reference producer, flush per frame (frames/s)", f"{ref['producer_fps']:.0f}")
        )
    if "our_producer_fps" in results:
        rows.append(("our producer, batched (frames/s)", f"{results['our_producer_fps']:.0f}"))
    for preset, acc in results.get("accuracy", {}).items():
        rows.append(
            (f"{preset}: recall / precision", f"{acc['recall']:.3f} / {acc['precision']:.3f}")
        )
    for item in results.get("latency", []):
        rows.append(
            (
                f"latency {item['preset']}, {item['load']:.0%} load, {item['mode']} (ms)",
                f"p50 {item['delay_ms_p50']:.0f}, p95 {item['delay_ms_p95']:.0f},"
                f" p99 {item['delay_ms_p99']:.0f}",
            )
        )
    if "pipeline" in results:
        p = results["pipeline"]
        rows.append(
            (
                f"whole pipeline at {p['offered_fps']:.0f} frames/s offered",
                f"delivered {p['delivered_fps']:.0f}/s, p50 {p['delay_ms_p50']:.0f} ms,"
                f" keeps up: {p['keeps_up']}",
            )
        )
    for policy, o in results.get("overload", {}).items():
        rows.append(
            (
                f"overload x2, policy {policy}",
                f"p95 {o['delay_ms_p95']:.0f} ms,"
                f" last 10 s p50 {o['delay_ms_p50_last_10s']:.0f} ms,"
                f" skipped {o['skipped']} of {o['received']}",
            )
        )
    for c in results.get("cameras", []):
        rows.append(
            (
                f"{c['cameras']} cameras at 1 frame/s, fast",
                f"delivered {c['delivered_fps']:.0f}/s, p50 {c['delay_ms_p50']:.0f} ms,"
                f" keeps up: {c['keeps_up']}",
            )
        )
    for resolution, cost in results.get("frame_costs", {}).items():
        rows.append(
            (
                f"one core per frame, {resolution} (ms)",
                f"faithful {cost['faithful_ms_per_frame']:.1f}, fast"
                f" {cost['fast_ms_per_frame']:.1f}; JPEG {cost['jpeg_bytes_median'] / 1000:.0f} KB",
            )
        )
    producer = results.get("producer_capacity")
    if producer:
        best = max(
            (s for s in producer["steps"] if s["sustained"]),
            key=lambda s: s["cameras"],
            default=None,
        )
        value = f"{producer['max_sustained_cameras']}"
        if best:
            value += f" ({best['cpu_cores']:.2f} cores, {best['max_rss_mb']:.0f} MB)"
        if not producer["limit_reached"]:
            value += ", limit not reached"
        rows.append(("cameras at 1 frame/s, one producer process", value))
    width = max(len(r[0]) for r in rows)
    lines = [f"| {a.ljust(width)} | {b} |" for a, b in rows]
    lines.insert(1, f"| {'-' * width} | --- |")
    return "\n".join(lines)


def _plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if results.get("cameras"):
        fig, ax = plt.subplots(figsize=(6, 4))
        cams = [c["cameras"] for c in results["cameras"]]
        ax.plot(cams, [c["offered_fps"] for c in results["cameras"]], "k--", label="offered")
        ax.plot(cams, [c["delivered_fps"] for c in results["cameras"]], "o-", label="delivered")
        ax.set(xlabel="cameras at 1 frame/s", ylabel="frames/s", title="Throughput vs cameras")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput_vs_cameras.png", dpi=100)
        plt.close(fig)
    if results.get("latency"):
        fig, ax = plt.subplots(figsize=(7, 4))
        fast = [i for i in results["latency"] if i["preset"] == "fast"]
        for trigger in sorted({i["mode"] for i in fast}):
            items = [i for i in fast if i["mode"] == trigger]
            loads = [i["load"] * 100 for i in items]
            for pct, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
                ax.plot(
                    loads, [i[f"delay_ms_{pct}"] for i in items], style, label=f"{trigger} {pct}"
                )
        ax.set(xlabel="load (% of capacity)", ylabel="capture to station (ms)",
               title="Latency vs load, fast preset")  # fmt: skip
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "latency_vs_load.png", dpi=100)
        plt.close(fig)
    if "reference" in results and "drain_fps" in results:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = ["raw OpenCV loop", "camstream (Spark)", "reference design"]
        values = [
            results.get("raw_fps", {}).get("faithful", {}).get("median", 0),
            results["drain_fps"]["faithful"]["median"],
            results["reference"]["job_fps"],
        ]
        ax.bar(labels, values, color=["#888", "#2e7d32", "#c62828"])
        ax.set(ylabel="frames/s (faithful preset)", title="Ours vs the reference design")
        fig.tight_layout()
        fig.savefig(out / "ours_vs_reference.png", dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
