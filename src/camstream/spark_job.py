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
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camstream.config import Config, ConfigError, RecordSettings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from camstream.analysis import ProcessedRecord

log = logging.getLogger(__name__)

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


def kafka_sink_options(cfg: Config, settings: RecordSettings | None = None) -> dict[str, str]:
    largest_record = (
        0 if settings is None else max(settings.output_max_bytes, settings.dead_letter_max_bytes)
    )
    options = {
        "kafka.bootstrap.servers": cfg.bootstrap_servers,
        "checkpointLocation": cfg.checkpoint_path,
        "kafka.acks": "all",
        "kafka.enable.idempotence": "true",
        # Every record fits its topic (the per-record function sees to it), so the client
        # must never be the one to refuse a record: allow the largest topic limit.
        "kafka.max.request.size": str(
            max(2 * cfg.max_frame_bytes, 16 * 1024 * 1024, largest_record + 65536)
        ),
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
    settings: RecordSettings,
    output_topic: str,
    dead_letter_topic: str,
    opencv_threads: int = 1,
) -> Any:
    """The function that Spark runs in each Python worker over Arrow record batches.

    One output row per input row, always: a record that fails becomes a dead letter.
    """

    def process_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from camstream.spark_job import configure_worker, process_row

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
                result = process_row(key, value, headers, settings)
                for name, cell in sink_row(result, output_topic, dead_letter_topic).items():
                    rows[name].append(cell)
                rows["ok"].append(result.ok)
                rows["faces"].append(result.faces)
                rows["error"].append(result.error)
                rows["skipped"].append(result.skipped)
            yield pa.RecordBatch.from_pydict(rows, schema=out_schema)

    return process_batches


def process_row(key: Any, value: Any, headers: Any, settings: RecordSettings) -> ProcessedRecord:
    """`process_record` for one Spark row, with a last line of defence around it."""
    from camstream.analysis import ProcessedRecord, process_record

    try:
        return process_record(key, value, headers, settings)
    except Exception as exc:  # process_record never raises; should it, the row still goes on
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        safe_key = key if isinstance(key, bytes) else None
        safe_value = value if isinstance(value, bytes) else None
        error_headers: list[tuple[str, bytes | None]] = [
            ("error", reason.encode("utf-8", "replace")),
            ("failed_ts_ns", str(time.time_ns()).encode()),
        ]
        return ProcessedRecord(False, safe_key, safe_value, error_headers, error=reason)


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


def continuous_dataframe(spark: SparkSession, cfg: Config, settings: RecordSettings) -> DataFrame:
    """The same per-record function for continuous processing.

    Continuous processing has no mapInArrow and no observed metrics, so frames go through
    an Arrow-optimised Python UDF, record by record; dead letters and skipped frames are
    still routed and marked, and counted on their topics.
    """
    from pyspark.sql import functions as F

    output_topic, dead_letter_topic = cfg.output_topic, cfg.dead_letter_topic
    threads = cfg.opencv_threads

    def process(key: bytes | None, value: bytes | None, headers: Any) -> dict[str, Any]:
        from camstream.spark_job import configure_worker, process_row

        configure_worker(threads)
        result = process_row(key, value, headers, settings)
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


def analytics_dataframe(
    spark: SparkSession, cfg: Config, settings: RecordSettings | None = None
) -> DataFrame:
    """The streaming DataFrame of processed frames (with `topic`, `ok`, `faces`, `error`)."""
    from pyspark.sql import functions as F

    settings = settings or cfg.record_settings()
    source = spark.readStream.format("kafka").options(**kafka_source_options(cfg)).load()
    processor = make_batch_processor(
        settings, cfg.output_topic, cfg.dead_letter_topic, opencv_threads=cfg.opencv_threads
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


# A frame topic that cannot hold a modest frame is a mistake, and a producer batches records
# up to its batch size (Spark's sink: 16 KiB) below this, so every batch then fits too.
MIN_TOPIC_MESSAGE_BYTES = 64 * 1024


def record_settings_for_topics(cfg: Config) -> RecordSettings:
    """The per-record settings with the size limits the topics have now, read from Kafka.

    Refuses to start when the dead-letter topic could not take every record that the input
    topic accepts (such a record would stop the job), or when a limit cannot be read.
    """
    from camstream.frames import DEAD_LETTER_HEADROOM_BYTES
    from camstream.kafka_io import topic_max_message_bytes

    topics = {
        "input": cfg.input_topic,
        "output": cfg.output_topic,
        "dead-letter": cfg.dead_letter_topic,
    }
    limits = topic_max_message_bytes(cfg, topics.values())
    unreadable = [topic for topic in topics.values() if limits.get(topic) is None]
    if unreadable:
        raise ConfigError(
            f"cannot read max.message.bytes of topic(s) {', '.join(unreadable)}: create them"
            " (the job creates missing topics unless told not to), or allow these credentials"
            " to describe topic configurations (DescribeConfigs)"
        )
    sizes = {role: int(limits[topic] or 0) for role, topic in topics.items()}
    for role in ("output", "dead-letter"):
        if sizes[role] < MIN_TOPIC_MESSAGE_BYTES:
            raise ConfigError(
                f"the {role} topic {topics[role]} accepts records of at most {sizes[role]} bytes"
                f" (max.message.bytes): too small for video frames; raise it to at least"
                f" {MIN_TOPIC_MESSAGE_BYTES}"
            )
    needed = sizes["input"] + DEAD_LETTER_HEADROOM_BYTES
    if sizes["dead-letter"] < needed:
        raise ConfigError(
            f"the dead-letter topic {cfg.dead_letter_topic} accepts records of at most"
            f" {sizes['dead-letter']} bytes but the input topic {cfg.input_topic} accepts"
            f" {sizes['input']}: a bad record near that size could not be dead-lettered and"
            f" would stop the job. Raise the dead-letter topic's max.message.bytes to at least"
            f" {needed} (kafka-configs.sh --bootstrap-server {cfg.bootstrap_servers} --alter"
            f" --entity-type topics --entity-name {cfg.dead_letter_topic} --add-config"
            f" max.message.bytes={needed}), or lower the input topic's"
        )
    return cfg.record_settings(
        output_max_bytes=sizes["output"], dead_letter_max_bytes=sizes["dead-letter"]
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
    settings = record_settings_for_topics(cfg)
    if is_continuous(cfg):
        _check_cores_for_continuous(spark, cfg)
        frames = continuous_dataframe(spark, cfg, settings)
    else:
        frames = analytics_dataframe(spark, cfg, settings).select(
            "key", "value", "headers", "topic"
        )
    writer = (
        frames.writeStream.format("kafka")
        .options(**kafka_sink_options(cfg, settings))
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
    losses: LossMonitor | None = None,
) -> None:
    """Report each new batch until the query ends, `stop` is set, or `seconds` (> 0) pass.

    With `losses`, frames that retention deleted before the job read them are counted,
    shown in the batch's line and logged at WARN with their partitions and offsets.
    """
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
            if progress["batchId"] > last_batch:
                lost = losses.check(progress) if losses is not None else 0
                if progress.get("numInputRows") or lost:
                    show(describe_progress(progress, lost))
            last_batch = max(last_batch, progress["batchId"])


class LossMonitor:
    """Counts frames deleted from Kafka (by retention) before the job could read them.

    With `failOnDataLoss=false` Spark's Kafka source skips offsets that no longer exist
    and goes on, so a job that fell far behind would lose frames silently. A batch that
    read fewer records than its offset range spans is checked against each partition's
    earliest offset now: what lies below it was deleted unread. (The other source of such
    gaps, a transactional producer's commit markers, is not counted: those offsets are
    still in the log.)
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.total = 0
        self._consumer: Any = None

    def check(self, progress: dict[str, Any]) -> int:
        """Frames lost in this batch (0 normally); logs a warning for each partition hit."""
        lost_in_batch = 0
        for source in progress.get("sources") or []:
            start = _offsets(source.get("startOffset"))
            end = _offsets(source.get("endOffset"))
            spans = {tp: end[tp] - start[tp] for tp in end if tp in start and end[tp] > start[tp]}
            unread = sum(spans.values()) - int(source.get("numInputRows") or 0)
            if unread <= 0:
                continue
            earliest = self._earliest(list(spans))
            ranges = []
            for tp in sorted(spans):
                first_kept = min(earliest.get(tp, start[tp]), end[tp])
                if first_kept > start[tp]:
                    ranges.append((tp, start[tp], first_kept))
            lost = min(unread, sum(b - a for _, a, b in ranges))
            for (topic, partition), first, after in ranges:
                log.warning(
                    "%d frames of %s partition %d (offsets %d to %d) were deleted from Kafka"
                    " before the job read them: it fell behind by more than the topic's"
                    " retention",
                    after - first, topic, partition, first, after - 1,
                )  # fmt: skip
            lost_in_batch += lost
        self.total += lost_in_batch
        return lost_in_batch

    def _earliest(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        from kafka import TopicPartition

        from camstream.kafka_io import make_consumer

        try:
            if self._consumer is None:
                self._consumer = make_consumer(self.cfg)
            found = self._consumer.beginning_offsets([TopicPartition(t, p) for t, p in partitions])
            return {(tp.topic, tp.partition): offset for tp, offset in found.items()}
        except Exception as exc:  # a report must not stop the job; say why it is missing
            log.warning("could not check for frames lost to retention: %s", exc)
            return {}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _offsets(value: Any) -> dict[tuple[str, int], int]:
    """Spark's Kafka offsets ({"topic": {"0": 12}}, as JSON text or parsed) by partition."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {
        (topic, int(partition)): int(offset)
        for topic, partitions in value.items()
        if isinstance(partitions, dict)
        for partition, offset in partitions.items()
    }


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


def describe_progress(progress: dict[str, Any], lost: int = 0) -> str:
    metrics = progress_metrics(progress)
    duration = (progress.get("durationMs") or {}).get("triggerExecution", 0)
    line = (
        f"batch {progress.get('batchId')}: {progress.get('numInputRows', 0)} frames in"
        f" {duration} ms ({progress.get('processedRowsPerSecond', 0) or 0:.1f} frames/s),"
        f" ok {metrics.get('frames_ok') or 0}, skipped as stale"
        f" {metrics.get('frames_skipped') or 0}, dead-lettered"
        f" {metrics.get('frames_dead_lettered') or 0}, faces {metrics.get('faces') or 0}"
    )
    if lost:
        line += f", LOST {lost} (deleted from Kafka before they were read)"
    return line
