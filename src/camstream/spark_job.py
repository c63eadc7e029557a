"""The Spark Structured Streaming job: `camera-stream` -> faces -> `camera-analytics-stream`.

The job only wraps the per-frame function (`camstream.analysis.process_record`) in
`mapInArrow`, so each Python worker receives Arrow batches of frames and keeps its Haar
classifier loaded between batches. Records that cannot be processed are routed, in the
same query, to the dead-letter topic through the Kafka sink's per-row `topic` column.
Per-camera order holds because a camera's frames share one Kafka partition, one Spark
task processes a partition in order, and the sink writes them in that order, keyed by
camera id.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camstream.config import Config, DetectionSettings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from camstream.analysis import ProcessedRecord

OBSERVATION_NAME = "camstream"

OUTPUT_SCHEMA = (
    "key binary, value binary, headers array<struct<key: string, value: binary>>,"
    " topic string, ok boolean, faces int, error string, skipped boolean"
)


def spark_session(
    cfg: Config, app_name: str = "camstream-analyze", extra_conf: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession for `cfg.master` with Spark's Kafka connector on the classpath."""
    from pyspark.sql import SparkSession

    from camstream.deps import spark_kafka_jars

    # PySpark picks the workers' interpreter from this variable when the context starts;
    # by default they run this same interpreter (and so the same camstream and OpenCV).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(app_name)
        .config("spark.jars", ",".join(spark_kafka_jars()))
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.shuffle.partitions", str(max(2, cfg.partitions)))
        # The web UI listens on every interface; keep it off unless asked for.
        .config("spark.ui.enabled", os.environ.get("CAMSTREAM_SPARK_UI", "false"))
        .config("spark.ui.showConsoleProgress", "false")
        # Kafka credentials travel as source/sink options: keep them out of plans and logs.
        .config("spark.sql.redaction.options.regex", "(?i)url|jaas|password|secret|token")
    )
    if _runs_on_loopback(cfg.master):
        # A local job (or a cluster on this machine) binds to loopback, not to whatever
        # address the hostname resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("CAMSTREAM_SPARK_LOG_LEVEL", "WARN"))
    if not cfg.master.startswith("local"):
        # Executors elsewhere get camstream the standard way: a zip on their Python path.
        # Its dependencies (OpenCV, numpy, pyarrow) come from the executors' Python
        # (PYSPARK_PYTHON / spark.pyspark.python, or an environment archive in spark.archives).
        spark.sparkContext.addPyFile(str(package_zip()))
    return spark


def _runs_on_loopback(master: str) -> bool:
    if master.startswith("local"):
        return True
    host = master.split("://", 1)[-1].split(",", 1)[0].rsplit(":", 1)[0]
    return master.startswith("spark://") and host in ("127.0.0.1", "localhost", "::1", "[::1]")


def package_zip() -> Path:
    """camstream's Python sources as a zip for `addPyFile` (rebuilt from this install)."""
    import atexit
    import shutil
    import tempfile
    import zipfile

    import camstream

    package = Path(camstream.__file__).resolve().parent
    folder = tempfile.mkdtemp(prefix="camstream-pyfiles-")
    # Spark's file server reads it whenever an executor starts: keep it while we run.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    target = Path(folder) / "camstream.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            # Executors need the code and its package data, not bytecode or sample video.
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".avi":
                archive.write(path, Path("camstream") / path.relative_to(package))
    return target


def kafka_source_options(cfg: Config) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": cfg.bootstrap_servers,
        "subscribe": cfg.input_topic,
        "startingOffsets": cfg.starting_offsets,
        "includeHeaders": "true",
        # A live video job must not refuse to start because old frames aged out of retention.
        "failOnDataLoss": "false",
        "kafka.max.partition.fetch.bytes": str(max(1 << 20, 2 * cfg.max_frame_bytes)),
    }
    if cfg.max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(cfg.max_offsets_per_trigger)
    return {**options, **_kafka_properties(cfg)}


def _kafka_properties(cfg: Config) -> dict[str, str]:
    """Extra client properties (security settings) as Spark's `kafka.`-prefixed options."""
    return {f"kafka.{name}": value for name, value in cfg.client_properties}


def kafka_sink_options(cfg: Config) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": cfg.bootstrap_servers,
        "checkpointLocation": cfg.checkpoint_path,
        "kafka.acks": "all",
        "kafka.enable.idempotence": "true",
        # A dead letter carries its input record as it came, over the frame limit or not:
        # the client must not refuse it (the topics' max.message.bytes still apply).
        "kafka.max.request.size": str(max(2 * cfg.max_frame_bytes, 16 * 1024 * 1024)),
        "kafka.linger.ms": "0",
        **_kafka_properties(cfg),
    }
    if cfg.async_progress and not is_continuous(cfg):
        # Offsets are written to the checkpoint off the critical path (Kafka sink only):
        # tens of ms less per micro-batch; after a crash, batches since the last
        # checkpointed offset are processed again (at-least-once, as before).
        options["asyncProgressTrackingEnabled"] = "true"
        options["asyncProgressTrackingCheckpointIntervalMs"] = "1000"
    return options


def sink_row(result: ProcessedRecord, output_topic: str, dead_letter_topic: str) -> dict[str, Any]:
    """A processed record as a row of the Kafka sink: key, value, headers and its topic."""
    return {
        "key": result.key,
        "value": result.value,
        "headers": [{"key": k, "value": v} for k, v in result.headers],
        "topic": output_topic if result.ok else dead_letter_topic,
    }


_worker_opencv_threads: int | None = None


def configure_worker(opencv_threads: int) -> None:
    """Once per Python worker: Spark already runs a task per core, so OpenCV's own
    threads would only contend with the other tasks."""
    global _worker_opencv_threads
    if _worker_opencv_threads != opencv_threads:
        import cv2

        cv2.setNumThreads(opencv_threads)
        _worker_opencv_threads = opencv_threads


def make_batch_processor(
    settings: DetectionSettings,
    jpeg_quality: int,
    output_topic: str,
    dead_letter_topic: str,
    max_age_ms: int | None = None,
    opencv_threads: int = 1,
    max_frame_bytes: int | None = None,
) -> Any:
    """The function that Spark runs in each Python worker over Arrow record batches."""

    def process_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from camstream.analysis import process_record
        from camstream.spark_job import configure_worker

        configure_worker(opencv_threads)

        out_schema = pa.schema(
            [
                ("key", pa.binary()),
                ("value", pa.binary()),
                (
                    "headers",
                    pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())])),
                ),
                ("topic", pa.string()),
                ("ok", pa.bool_()),
                ("faces", pa.int32()),
                ("error", pa.string()),
                ("skipped", pa.bool_()),
            ]
        )
        for batch in batches:
            keys = batch.column("key").to_pylist()
            values = batch.column("value").to_pylist()
            header_lists = batch.column("headers").to_pylist()
            rows: dict[str, list[Any]] = {name: [] for name in out_schema.names}
            for key, value, headers in zip(keys, values, header_lists, strict=True):
                pairs = [(h["key"], h["value"]) for h in headers or ()]
                result = process_record(
                    key, value, pairs, settings, jpeg_quality, max_age_ms, max_frame_bytes
                )
                for name, cell in sink_row(result, output_topic, dead_letter_topic).items():
                    rows[name].append(cell)
                rows["ok"].append(result.ok)
                rows["faces"].append(result.faces)
                rows["error"].append(result.error)
                rows["skipped"].append(result.skipped)
            yield pa.RecordBatch.from_pydict(rows, schema=out_schema)

    return process_batches


def is_continuous(cfg: Config) -> bool:
    return cfg.trigger_interval.startswith("continuous")


# Epochs of 250 ms measured best here (fast preset, 55 frames/s): 100 ms epochs cost more
# than they saved and fell behind; 1 s epochs held frames longer (bench/README).
DEFAULT_CONTINUOUS_INTERVAL = "250 milliseconds"

# Continuous mode hands rows to the Python UDF in Arrow batches that otherwise close only at
# an epoch's end or after 10,000 rows, and Spark fills a 64 KB buffer (about three frames)
# before it writes to the Python worker. One row per batch and a small buffer let each frame
# go as soon as it arrives: p50 189 ms instead of 323-385 ms at 55 frames/s on 2 cores
# (interleaved runs; README Performance). The price: about half the micro-batch throughput.
CONTINUOUS_LATENCY_CONF = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": "1",
    "spark.sql.execution.pandas.udf.buffer.size": "1024",
}


def _continuous_interval(cfg: Config) -> str:
    """'continuous' or 'continuous:1 second' -> the checkpoint interval ('1 second')."""
    _, _, interval = cfg.trigger_interval.partition(":")
    return interval.strip() or DEFAULT_CONTINUOUS_INTERVAL


@contextlib.contextmanager
def _session_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    """Set SQL confs while a query starts (it keeps a copy), then restore the caller's."""
    previous = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def continuous_dataframe(spark: SparkSession, cfg: Config) -> DataFrame:
    """The same per-record function for continuous processing.

    Continuous processing has no mapInArrow and no observed metrics, so frames go through
    an Arrow-optimised Python UDF, record by record; dead letters and skipped frames are
    still routed and marked, and counted on their topics.
    """
    from pyspark.sql import functions as F

    settings, quality = cfg.detection, cfg.jpeg_quality
    output_topic, dead_letter_topic = cfg.output_topic, cfg.dead_letter_topic
    max_age_ms = cfg.skip_frames_older_than_ms
    threads = cfg.opencv_threads
    max_bytes = cfg.max_frame_bytes

    def process(key: bytes | None, value: bytes | None, headers: Any) -> dict[str, Any]:
        from camstream.analysis import process_record
        from camstream.spark_job import configure_worker

        configure_worker(threads)
        pairs = [(h["key"], h["value"]) for h in headers or ()]
        result = process_record(key, value, pairs, settings, quality, max_age_ms, max_bytes)
        return sink_row(result, output_topic, dead_letter_topic)

    process_udf = F.udf(
        process,
        "struct<key: binary, value: binary, headers: array<struct<key: string, value: binary>>,"
        " topic: string>",
        useArrow=True,
    )
    options = {k: v for k, v in kafka_source_options(cfg).items() if k != "maxOffsetsPerTrigger"}
    source = spark.readStream.format("kafka").options(**options).load()
    return source.select(process_udf("key", "value", "headers").alias("r")).select("r.*")


def analytics_dataframe(spark: SparkSession, cfg: Config) -> DataFrame:
    """The streaming DataFrame of processed frames (with `topic`, `ok`, `faces`, `error`)."""
    from pyspark.sql import functions as F

    source = spark.readStream.format("kafka").options(**kafka_source_options(cfg)).load()
    processor = make_batch_processor(
        cfg.detection,
        cfg.jpeg_quality,
        cfg.output_topic,
        cfg.dead_letter_topic,
        max_age_ms=cfg.skip_frames_older_than_ms,
        opencv_threads=cfg.opencv_threads,
        max_frame_bytes=cfg.max_frame_bytes,
    )
    processed = source.select("key", "value", "headers").mapInArrow(processor, OUTPUT_SCHEMA)
    # Counted in every batch's progress (observedMetrics): nothing is dropped silently.
    return processed.observe(
        OBSERVATION_NAME,
        F.count(F.lit(1)).alias("frames_in"),
        F.sum(F.col("ok").cast("long")).alias("frames_ok"),
        F.sum((~F.col("ok")).cast("long")).alias("frames_dead_lettered"),
        F.sum(F.col("skipped").cast("long")).alias("frames_skipped"),
        F.sum("faces").alias("faces"),
    )


def _check_cores_for_continuous(spark: SparkSession, cfg: Config) -> None:
    """Continuous processing runs one never-ending task per Kafka partition.

    With fewer cores than partitions, the partitions left without a task are never read:
    their cameras would go dark without an error. Refuse to start instead.
    """
    from camstream.config import ConfigError
    from camstream.kafka_io import partition_count

    partitions = partition_count(cfg, cfg.input_topic)
    cores = spark.sparkContext.defaultParallelism
    if partitions > cores:
        raise ConfigError(
            f"continuous processing needs a core per Kafka partition: {cfg.input_topic} has"
            f" {partitions} partitions but Spark has {cores} cores, so the frames of"
            f" {partitions - cores} partitions would never be processed. Give Spark"
            f" {partitions} cores, or use micro-batches (CAMSTREAM_TRIGGER_INTERVAL)"
        )


def build_query(
    spark: SparkSession,
    cfg: Config,
    query_name: str | None = None,
    create_topics: bool = True,
) -> StreamingQuery:
    """Start the analytics query on `spark`; the caller owns the session and the query.

    `create_topics=False` skips topic creation, for managed Kafka services where the
    job's credentials may not create topics.
    """
    if create_topics:
        from camstream.kafka_io import ensure_topics

        ensure_topics(cfg, [cfg.input_topic, cfg.output_topic, cfg.dead_letter_topic])
    if is_continuous(cfg):
        _check_cores_for_continuous(spark, cfg)
        frames = continuous_dataframe(spark, cfg)
    else:
        frames = analytics_dataframe(spark, cfg).select("key", "value", "headers", "topic")
    writer = (
        frames.writeStream.format("kafka")
        .options(**kafka_sink_options(cfg))
        .queryName(query_name or f"camstream-{cfg.input_topic}-to-{cfg.output_topic}")
    )
    if not is_continuous(cfg):
        return writer.trigger(processingTime=cfg.trigger_interval).start()
    with _session_conf(spark, CONTINUOUS_LATENCY_CONF):
        return writer.trigger(continuous=_continuous_interval(cfg)).start()


def stop_gracefully(spark: SparkSession, query: StreamingQuery, timeout_s: float = 15.0) -> None:
    """Let the running micro-batch finish (bounded), then stop the query.

    Stopping in the middle of a batch works (the checkpoint makes the next run redo it),
    but Spark logs the cancelled tasks as errors; waiting for a gap avoids both.
    """
    deadline = time.monotonic() + timeout_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.02)
    # Tasks cancelled by the stop are expected now; keep them out of the terminal.
    spark.sparkContext.setLogLevel("FATAL")
    query.stop()


def follow_progress(
    query: StreamingQuery,
    show: Callable[[str], Any] = print,
    seconds: float = 0,
    stop: threading.Event | None = None,
) -> None:
    """Report each new batch until the query ends, `stop` is set, or `seconds` (> 0) pass."""
    deadline = time.monotonic() + seconds if seconds > 0 else None
    last_batch = -1
    while query.isActive and not (stop is not None and stop.is_set()):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if stop is not None:
            stop.wait(2.0)
        else:
            query.awaitTermination(2)
        for progress in query.recentProgress:
            if progress["batchId"] > last_batch and progress.get("numInputRows"):
                show(describe_progress(progress))
            last_batch = max(last_batch, progress["batchId"])


def observed_totals(query: StreamingQuery) -> dict[str, int]:
    """Sum of the observed metrics over the query's recent progress reports."""
    totals: dict[str, int] = {}
    for progress in query.recentProgress:
        for name, value in progress_metrics(progress).items():
            totals[name] = totals.get(name, 0) + int(value or 0)
    return totals


def progress_metrics(progress: Any) -> dict[str, Any]:
    """The job's observed metrics from one progress report (a dict or a progress object)."""
    report = progress if isinstance(progress, dict) else progress.jsonValue()
    metrics = (report.get("observedMetrics") or {}).get(OBSERVATION_NAME) or {}
    return metrics.asDict() if hasattr(metrics, "asDict") else dict(metrics)


def describe_progress(progress: dict[str, Any]) -> str:
    metrics = progress_metrics(progress)
    duration = (progress.get("durationMs") or {}).get("triggerExecution", 0)
    return (
        f"batch {progress.get('batchId')}: {progress.get('numInputRows', 0)} frames in"
        f" {duration} ms ({progress.get('processedRowsPerSecond', 0) or 0:.1f} frames/s),"
        f" ok {metrics.get('frames_ok') or 0}, skipped as stale"
        f" {metrics.get('frames_skipped') or 0}, dead-lettered"
        f" {metrics.get('frames_dead_lettered') or 0}, faces {metrics.get('faces') or 0}"
    )
