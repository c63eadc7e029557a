"""The Spark Structured Streaming job: `camera-stream` -> faces -> `camera-analytics-stream`.

The job only wraps the per-record function (`camstream.spark.worker`) in `mapInArrow`, so
each Python worker receives Arrow batches of frames and keeps its Haar classifier loaded
between batches. Records that cannot be processed are routed, in the same query, to the
dead-letter topic through the Kafka sink's per-row `topic` column. Per-camera order holds
because a camera's frames share one Kafka partition, one Spark task processes a partition
in order, and the sink writes them in that order, keyed by camera id.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from camstream.config import Config
from camstream.core.settings import RecordSettings
from camstream.errors import ConfigError
from camstream.spark.worker import OUTPUT_SCHEMA, make_batch_processor

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

# The name of the job's observed metrics in each progress report.
OBSERVATION_NAME = "camstream"


def kafka_source_options(cfg: Config) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap,
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
        "kafka.bootstrap.servers": cfg.kafka_bootstrap,
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
        from camstream.spark.worker import configure_worker, process_row, sink_row

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
    from camstream.kafka.topics import partition_count

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
    from camstream.core.contract import DEAD_LETTER_HEADROOM_BYTES
    from camstream.kafka.topics import topic_max_message_bytes

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
            f" {needed} (kafka-configs.sh --bootstrap-server {cfg.kafka_bootstrap} --alter"
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
        from camstream.kafka.topics import ensure_topics

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
