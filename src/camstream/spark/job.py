"""The Spark Structured Streaming job: `camera-stream` -> faces -> `camera-analytics-stream`.

The job only wraps the per-record function (`camstream.spark.worker`) in `mapInArrow`, so
each Python worker receives Arrow batches of frames and keeps its Haar classifier loaded
between batches. Records that cannot be processed are routed, in the same query, to the
dead-letter topic through the Kafka sink's per-row `topic` column. Per-camera order holds
because a camera's frames share one Kafka partition, one Spark task processes a partition
in order, and the sink writes them in that order, keyed by camera id.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from camstream.config import Config
from camstream.core.settings import RecordSettings
from camstream.errors import ConfigError, EnvironmentFailure
from camstream.spark.worker import (
    OUTPUT_SCHEMA,
    WorkerSettings,
    is_flush_row,
    make_batch_processor,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

# The name of the job's observed metrics in each progress report.
OBSERVATION_NAME = "camstream"
# Frames per micro-batch at most under the `live` freshness policy (see below).
LIVE_MAX_OFFSETS = 200


def kafka_source_options(cfg: Config) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap,
        "subscribe": cfg.input_topic,
        "startingOffsets": cfg.starting_offsets,
        "includeHeaders": "true",
        # A live video job must not refuse to start because old frames aged out of retention.
        "failOnDataLoss": "false",
        "kafka.max.partition.fetch.bytes": str(max(1 << 20, 2 * cfg.max_frame_bytes)),
        # A broker that dies without a word (SIGKILL, a lost machine) left the driver's
        # offset lookup waiting out the Kafka admin client's 60 s API timeout before Spark
        # retried on a new client, which found the new leaders at once: every camera froze
        # for a minute (tests/test_faults.py). 10 s a request instead, and attempts enough
        # to ride out the 3 minutes of outage that Spark's defaults (3 x 60 s) did. The
        # executors' consumers take the same API timeout for a partition's position, and a
        # task that gives up fails the query: 20 s outlasts a new leader's election (the
        # broker session timeout, 9 s by default; at 10 s a task sometimes gave up), at the
        # cost of a longer stall (measured: docs/security.md).
        "kafka.request.timeout.ms": "10000",
        "kafka.default.api.timeout.ms": "20000",
        "fetchOffset.numRetries": "18",
    }
    limit = cfg.max_offsets_per_trigger
    if cfg.sheds_load:
        # Past capacity freshness is the goal, and small batches end sooner (measured:
        # docs/performance.md); under capacity a batch holds far fewer frames than this.
        limit = min(limit or LIVE_MAX_OFFSETS, LIVE_MAX_OFFSETS)
    if limit is not None:
        options["maxOffsetsPerTrigger"] = str(limit)
    return {**options, **cfg.kafka_security.spark_options()}


def kafka_sink_options(cfg: Config, settings: RecordSettings | None = None) -> dict[str, str]:
    from camstream.kafka.clients import sink_batch_bytes, sink_request_bytes

    options = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap,
        "checkpointLocation": cfg.checkpoint_path,
        "kafka.acks": "all",
        "kafka.enable.idempotence": "true",
        "kafka.max.request.size": str(sink_request_bytes(cfg, settings)),
        # Several frames per produce request: a request per frame cost the broker and the
        # Spark JVM more CPU, on the same cores as the detection, than the linger's wait
        # costs (measured: docs/performance.md). A batch never exceeds the smaller topic limit.
        "kafka.linger.ms": "0" if is_realtime(cfg) else "5",
        "kafka.batch.size": str(sink_batch_bytes(settings)),
        **cfg.kafka_security.spark_options(),
    }
    # Real-time Mode tracks progress asynchronously by itself (every batch is checkpointed).
    if cfg.async_progress and not is_realtime(cfg):
        # Offsets are written to the checkpoint off the critical path (Kafka sink only):
        # less time per micro-batch (docs/performance.md); after a crash, batches since the last
        # checkpointed offset are processed again (at-least-once, as before).
        options["asyncProgressTrackingEnabled"] = "true"
        options["asyncProgressTrackingCheckpointIntervalMs"] = "1000"
    return options


def is_realtime(cfg: Config) -> bool:
    return cfg.trigger_interval.startswith("realtime")


def is_long_running(cfg: Config) -> bool:
    """Modes that run one never-ending task per Kafka partition (Real-time Mode)."""
    return is_realtime(cfg)


# Real-time Mode's trigger duration is how often it checkpoints, not a latency: frames flow
# through as they come. Between two batches nothing flows for a moment (the commit and the
# next batch's start), so a short interval raises the tail latency (bench/README).
DEFAULT_REALTIME_INTERVAL = "60 seconds"


def _mode_interval(cfg: Config, default: str) -> str:
    """'realtime' or 'realtime:30 seconds' -> the checkpoint interval ('30 seconds')."""
    _, _, interval = cfg.trigger_interval.partition(":")
    return interval.strip() or default


# The Java per-record function (src/camstream/spark/realtime), for Real-time Mode, which runs
# JVM UDFs only; `camstream.spark.jars.realtime_jars` builds it.
REALTIME_UDF_NAME = "camstream_process_record"
REALTIME_UDF_CLASS = "camstream.realtime.ProcessRecord"
SINK_ROW_TYPE = (
    "struct<key: binary, value: binary, headers: array<struct<key: string, value: binary>>,"
    " topic: string>"
)
# The Haar cascades the Java function carries in its jar (those of the two presets).
REALTIME_CASCADES = ("haarcascade_frontalface_alt.xml", "haarcascade_frontalface_default.xml")


def realtime_settings_text(
    settings: RecordSettings, output_topic: str, dead_letter_topic: str, opencv_threads: int = 1
) -> str:
    """The per-record settings as the Java function reads them: 'name=value;...'.

    `opencv_threads`: OpenCV's own threads in the executor, as the Python workers get
    (`CAMSTREAM_OPENCV_THREADS`): a task per partition already runs per core."""
    detection = settings.detection
    if detection.cascade not in REALTIME_CASCADES:
        raise ConfigError(
            f"Real-time Mode detects with the Haar cascades in its jar"
            f" ({', '.join(REALTIME_CASCADES)}); cascade {detection.cascade!r} is not one of"
            " them: use micro-batches for it"
        )
    values = {
        "cascade": detection.cascade,
        "scale_factor": repr(float(detection.scale_factor)),
        "min_neighbors": detection.min_neighbors,
        "min_size": detection.min_size,
        "detect_width": detection.detect_width or 0,
        "equalize_histogram": str(detection.equalize_histogram).lower(),
        "box_colour_bgr": ",".join(str(c) for c in detection.box_colour_bgr),
        "box_thickness": detection.box_thickness or 0,  # 0: grows with the frame
        "jpeg_quality": settings.jpeg_quality,
        "min_jpeg_quality": settings.min_jpeg_quality,
        "min_frame_width": settings.min_frame_width,
        "max_frame_bytes": -1 if settings.max_frame_bytes is None else settings.max_frame_bytes,
        "max_age_ms": -1 if settings.max_age_ms is None else settings.max_age_ms,
        "min_analysis_interval_ms": (
            -1 if settings.min_analysis_interval_ms is None else settings.min_analysis_interval_ms
        ),
        "output_max_bytes": settings.output_max_bytes,
        "dead_letter_max_bytes": settings.dead_letter_max_bytes,
        "output_topic": output_topic,  # Kafka topic names have no ';' or '='
        "dead_letter_topic": dead_letter_topic,
        "opencv_threads": opencv_threads,
    }
    return ";".join(f"{name}={value}" for name, value in values.items())


def realtime_rows(
    spark: SparkSession,
    frames: DataFrame,
    settings_text: str,
    udf_name: str = REALTIME_UDF_NAME,
) -> DataFrame:
    """`frames` (key, value, headers, and where each was read when `frames` has the Kafka
    source's topic, partition, offset and timestamp columns) through the Java per-record
    function: the sink's rows.

    `udf_name`: the function to apply; by default the one registered here from
    REALTIME_UDF_CLASS (which reads the system clock). Any other name must have been
    registered already, e.g. an instance made with a clock of its own (the equivalence
    tests give Java and Python the same fixed clock); the query's own function is not
    touched by that.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    if udf_name == REALTIME_UDF_NAME:
        try:
            spark.udf.registerJavaFunction(REALTIME_UDF_NAME, REALTIME_UDF_CLASS, SINK_ROW_TYPE)
        except AnalysisException as exc:  # the session was started without the module's jars
            raise ConfigError(
                f"{REALTIME_UDF_CLASS} is not on this Spark session's classpath: start it with "
                "camstream.spark.session.spark_session(cfg, realtime=True), or add the jars that "
                "camstream.spark.jars.realtime_jars(cfg) lists (spark.jars)"
            ) from exc
    columns = set(frames.columns)
    source = (
        [F.col("topic"), F.col("partition"), F.col("offset"), F.unix_millis("timestamp")]
        if {"topic", "partition", "offset", "timestamp"} <= columns
        else [F.lit(None).cast(kind) for kind in ("string", "int", "long", "long")]
    )
    result = F.call_function(
        udf_name, F.col("key"), F.col("value"), F.col("headers"), *source,
        F.lit(settings_text),
    )  # fmt: skip
    return frames.select(result.alias("r")).select("r.*")


def realtime_dataframe(spark: SparkSession, cfg: Config, settings: RecordSettings) -> DataFrame:
    """The job for Spark's Real-time Mode: the same contract, through the Java function.

    Real-time Mode refuses Python UDFs (and, allowed anyway, the Python runner hands its
    results back only at a batch's end), so each frame goes through the Java twin of the
    per-record function, which tests keep equal to the Python one. No observed metrics:
    they are counted at a batch's end, which here is the checkpoint interval.
    """
    text = realtime_settings_text(
        settings, cfg.output_topic, cfg.dead_letter_topic, cfg.opencv_threads
    )
    # Real-time Mode reads each partition continuously: there is no per-batch limit.
    options = {k: v for k, v in kafka_source_options(cfg).items() if k != "maxOffsetsPerTrigger"}
    source = spark.readStream.format("kafka").options(**options).load()
    columns = ("key", "value", "headers", "topic", "partition", "offset", "timestamp")
    return realtime_rows(spark, source.select(*columns), text)


def analytics_dataframe(
    spark: SparkSession, cfg: Config, settings: RecordSettings | None = None
) -> DataFrame:
    """The streaming DataFrame of processed frames (with `topic`, `ok`, `faces`, `error`)."""
    from pyspark.sql import functions as F

    settings = settings or cfg.record_settings()
    source = spark.readStream.format("kafka").options(**kafka_source_options(cfg)).load()
    worker = WorkerSettings(
        cfg.output_topic,
        cfg.dead_letter_topic,
        cfg.events_topic,
        opencv_threads=cfg.opencv_threads,
        frame_threads=cfg.frame_threads,
    )
    processor = make_batch_processor(settings, worker)
    # Where each record was read travels beside it, for its dead letter (SOURCE_COLUMNS).
    records = source.select(
        "key", "value", "headers", "topic", "partition", "offset",
        F.unix_millis("timestamp").alias("timestamp_ms"),
    )  # fmt: skip
    processed = records.mapInArrow(processor, OUTPUT_SCHEMA).where(~is_flush_row(F.col("topic")))
    # Counted in every batch's progress (observedMetrics): nothing is dropped silently. Event
    # rows have a null `ok`: count() and sum() of the frames' columns leave them out.
    return processed.observe(
        OBSERVATION_NAME,
        F.count(F.col("ok")).alias("frames_in"),
        F.sum(F.col("ok").cast("long")).alias("frames_ok"),
        F.sum((~F.col("ok")).cast("long")).alias("frames_dead_lettered"),
        F.sum(F.col("skipped").cast("long")).alias("frames_skipped"),
        F.sum(F.col("analysed").cast("long")).alias("frames_analysed"),
        F.sum(F.col("carried").cast("long")).alias("frames_gated"),
        F.sum("faces").alias("faces"),
        F.sum(F.col("ok").isNull().cast("long")).alias("events"),
    )


def _check_cores_for_long_running(spark: SparkSession, cfg: Config) -> None:
    """Real-time Mode runs one never-ending task per partition.

    With fewer cores than partitions, the partitions left without a task are never read:
    their cameras would go dark without an error. Refuse to start instead.
    """
    from camstream.kafka.topics import partition_count

    partitions = partition_count(cfg, cfg.input_topic)
    cores = spark.sparkContext.defaultParallelism
    if partitions > cores:
        raise ConfigError(
            f"Real-time Mode needs a core per Kafka partition: {cfg.input_topic} has"
            f" {partitions} partitions but Spark has {cores} cores, so the frames of"
            f" {partitions - cores} partitions would never be processed. Give Spark"
            f" {partitions} cores, or use micro-batches (CAMSTREAM_TRIGGER_INTERVAL)"
        )


def task_slots(spark: SparkSession) -> int:
    """How many tasks of a micro-batch run at once (they share its analysis budget).

    Without a SparkContext (Spark Connect), the driver's cores stand in for them.
    """
    try:
        context = spark.sparkContext
        task_cpus = int(context.getConf().get("spark.task.cpus", "1"))
        return max(1, context.defaultParallelism // max(1, task_cpus))
    except Exception:  # Spark Connect has no SparkContext
        return os.cpu_count() or 1


def record_settings_for_topics(cfg: Config, slots: int = 1) -> RecordSettings:
    """The per-record settings with the topics' size limits read from Kafka
    (`camstream.kafka.topics.record_settings_for_topics`); Real-time Mode's Java function
    returns one row per record: no events (yet)."""
    from camstream.kafka.topics import record_settings_for_topics as from_topics

    return from_topics(cfg, slots, events=not is_realtime(cfg))


def check_detector(spark: SparkSession, cfg: Config) -> None:
    """Load the detector once, before the query starts: a missing cascade or a native
    library that does not load stops the start with what is wrong (exit code 5), rather
    than failing every task. Micro-batches: the Haar cascade, here on the driver. Real-time
    Mode: one frame through the Java function (OpenCV's native library and the jar's
    cascade), on Spark."""
    settings = cfg.record_settings()
    if not is_realtime(cfg):
        from camstream.core.detection import load_cascade

        load_cascade(settings.detection.cascade)  # DetectorUnavailableError says which
        return
    import numpy as np

    from camstream.core.contract import FrameMeta
    from camstream.core.jpeg import encode_jpeg

    camera_id = "camstream-start-check"
    meta = FrameMeta(camera_id, 0, time.time_ns(), 64, 64)
    frame = (camera_id.encode(), encode_jpeg(np.zeros((64, 64, 3), np.uint8), 80))
    probe = spark.createDataFrame(
        [(*frame, meta.to_headers())],
        "key binary, value binary, headers array<struct<key: string, value: binary>>",
    )
    text = realtime_settings_text(
        settings, cfg.output_topic, cfg.dead_letter_topic, cfg.opencv_threads
    )
    try:
        realtime_rows(spark, probe, text).collect()
    except ConfigError:
        raise
    except Exception as exc:
        from camstream.spark.progress import describe_failure

        raise EnvironmentFailure(
            f"Real-time Mode's per-record function cannot run: {describe_failure(exc)}"
        ) from exc


def build_query(
    spark: SparkSession,
    cfg: Config,
    query_name: str | None = None,
    create_topics: bool = True,
) -> StreamingQuery:
    """Start the analytics query on `spark`; the caller owns the session and the query.

    `create_topics=False` skips topic creation, for managed Kafka services where the
    job's credentials may not create topics. The detector is loaded first (`check_detector`).
    """
    check_detector(spark, cfg)
    if create_topics:
        from camstream.kafka.topics import ensure_topics

        ensure_topics(cfg, cfg.pipeline_topics)
    if is_realtime(cfg) and cfg.motion.enabled:
        raise ConfigError(
            "the motion gate runs in the Python per-record stages, which Real-time Mode cannot"
            " run (it analyses every frame through the Java function): turn the gate off"
            " (CAMSTREAM_MOTION_GATE=0) or use micro-batches"
        )
    settings = record_settings_for_topics(cfg, task_slots(spark))
    if is_realtime(cfg):
        log.warning(
            "Real-time Mode writes no detection events to %s (its Java function returns one"
            " row per frame); the annotated frames carry the same results in their headers",
            cfg.events_topic,
        )
    if is_long_running(cfg):
        _check_cores_for_long_running(spark, cfg)
    if is_realtime(cfg):
        frames = realtime_dataframe(spark, cfg, settings)
    else:
        frames = analytics_dataframe(spark, cfg, settings).select(
            "key", "value", "headers", "topic"
        )
    writer = (
        frames.writeStream.format("kafka")
        .options(**kafka_sink_options(cfg, settings))
        .queryName(query_name or f"camstream-{cfg.input_topic}-to-{cfg.output_topic}")
    )
    if is_realtime(cfg):
        # Real-time Mode takes the update output mode only (each record is written once
        # anyway: there is no aggregation).
        interval = _mode_interval(cfg, DEFAULT_REALTIME_INTERVAL)
        # pyspark's type hints for `trigger` do not name Real-time Mode's keyword yet.
        realtime_writer = writer.outputMode("update")
        return realtime_writer.trigger(realTime=interval).start()  # type: ignore[call-overload]
    return writer.trigger(processingTime=cfg.trigger_interval).start()


def stop_gracefully(
    spark: SparkSession, query: StreamingQuery, timeout_s: float = 15.0, wait: bool = True
) -> None:
    """Let the running micro-batch finish (bounded), then stop the query.

    Stopping in the middle of a batch works (the checkpoint makes the next run redo it),
    but Spark logs the cancelled tasks as errors; waiting for a gap avoids both. A
    real-time query has no gap to wait for (`wait=False`).
    """
    deadline = time.monotonic() + (timeout_s if wait else 0.0)
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.02)
    # Tasks cancelled by the stop are expected now; keep them out of the terminal.
    spark.sparkContext.setLogLevel("FATAL")
    query.stop()
