"""Topics: created with frame-sized limits, their limits read back, the broker awaited."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

import kafka.errors as kafka_errors

from camstream.config import Config
from camstream.core.settings import RecordSettings
from camstream.errors import CamstreamError, ConfigError, KafkaUnavailableError
from camstream.kafka.clients import REQUEST_HEADROOM_BYTES, make_admin, unavailable

log = logging.getLogger(__name__)


def list_topics(cfg: Config) -> list[str]:
    """The names of the cluster's topics, sorted."""
    admin = make_admin(cfg)
    try:
        return sorted(admin.list_topics())
    except kafka_errors.KafkaError as exc:
        raise unavailable(cfg, exc) from None
    finally:
        admin.close()


def partition_count(cfg: Config, topic: str) -> int:
    """How many partitions `topic` has (0 if it does not exist)."""
    admin = make_admin(cfg)
    try:
        (description,) = admin.describe_topics([topic])
        return len(description.get("partitions") or [])
    except kafka_errors.UnknownTopicOrPartitionError:
        return 0
    finally:
        admin.close()


def topic_max_message_bytes(
    cfg: Config, topics: Iterable[str], wait_s: float = 5.0
) -> dict[str, int | None]:
    """Each topic's effective `max.message.bytes`, as its brokers enforce it now.

    The topic's own setting if it has one, else the broker's `message.max.bytes`: read
    from Kafka, since a topic may have been created by someone else, with other limits.
    None for a topic whose configuration could not be read (it does not exist, or the
    credentials may not describe it: kafka-python reports both as an empty answer); a
    topic created a moment ago may take a moment to be described, so that is retried
    for `wait_s`.
    """
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = list(dict.fromkeys(topics))
    limits: dict[str, int | None] = dict.fromkeys(wanted)
    deadline = time.monotonic() + wait_s
    admin = make_admin(cfg)
    try:
        while True:
            unknown = [topic for topic in wanted if limits[topic] is None]
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
                for topic in unknown
            ]
            described = admin.describe_configs(resources, config_filter="all").get("topic", {})
            for topic in unknown:
                entry = (described.get(topic) or {}).get("max.message.bytes") or {}
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    limits[topic] = int(entry["value"])
            if all(v is not None for v in limits.values()) or time.monotonic() > deadline:
                return limits
            time.sleep(0.25)
    except kafka_errors.KafkaError as exc:
        raise unavailable(cfg, exc) from None
    finally:
        admin.close()


# A frame topic that cannot hold a modest frame is a mistake, and a producer batches records
# up to its batch size (Spark's sink: 16 KiB) below this, so every batch then fits too.
MIN_TOPIC_MESSAGE_BYTES = 64 * 1024


def record_settings_for_topics(cfg: Config, slots: int = 1, events: bool = True) -> RecordSettings:
    """The per-record settings with the size limits the topics have now, read from Kafka.

    `slots`: how many batches are analysed at once (Spark's task slots, or the consumer-group
    workers), which share the analysis budget; `events`: whether detection events are
    written. Refuses to start when a limit cannot be read, or an output topic cannot hold a modest
    frame; says so (WARN) when the dead-letter topic cannot take the input's largest
    records whole.
    """
    from camstream.core.contract import DEAD_LETTER_HEADROOM_BYTES

    topics = {
        "input": cfg.input_topic,
        "output": cfg.output_topic,
        "dead-letter": cfg.dead_letter_topic,
        "events": cfg.events_topic,
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
    for role in ("output", "dead-letter", "events"):
        if sizes[role] < MIN_TOPIC_MESSAGE_BYTES:
            raise ConfigError(
                f"the {role} topic {topics[role]} accepts records of at most {sizes[role]} bytes"
                f" (max.message.bytes): too small for video frames; raise it to at least"
                f" {MIN_TOPIC_MESSAGE_BYTES}"
            )
    needed = sizes["input"] + DEAD_LETTER_HEADROOM_BYTES
    if sizes["dead-letter"] < needed:
        # Not a reason to refuse: such a dead letter leaves its value out (`value_dropped`)
        # and keeps its headers, reason and source coordinates (records.dead_letter).
        log.warning(
            "the dead-letter topic %s accepts records of at most %d bytes, the input topic %s"
            " %d: a bad record of more than about %d bytes will be dead-lettered without its"
            " value (header value_dropped; its source topic, partition and offset are kept)."
            " To keep every value, raise %s's max.message.bytes to %d",
            cfg.dead_letter_topic, sizes["dead-letter"], cfg.input_topic, sizes["input"],
            sizes["dead-letter"] - DEAD_LETTER_HEADROOM_BYTES, cfg.dead_letter_topic, needed,
        )  # fmt: skip
    return cfg.record_settings(
        task_slots=slots,
        output_max_bytes=sizes["output"],
        dead_letter_max_bytes=sizes["dead-letter"],
        events_max_bytes=sizes["events"] if events else None,
    )


def topic_configs(
    cfg: Config, topic: str | None = None, input_max_bytes: int | None = None
) -> dict[str, str]:
    """Per-topic settings: large enough messages for frames, bounded retention for video.

    The dead-letter topic takes a little more than the input topic: a dead letter is any
    record of the input topic plus the reason it failed. `input_max_bytes` is the input
    topic's actual limit, when it exists already (someone else may have made it).
    """
    from camstream.core.contract import DEAD_LETTER_HEADROOM_BYTES

    max_message_bytes = cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES
    if topic == cfg.dead_letter_topic:
        max_message_bytes = (
            max(max_message_bytes, input_max_bytes or 0) + DEAD_LETTER_HEADROOM_BYTES
        )
    configs = {
        "max.message.bytes": str(max_message_bytes),
        # Input frames and dead letters are only useful for a while; keep an hour or 1 GiB
        # per partition, whichever is less.
        "retention.ms": str(60 * 60 * 1000),
        "retention.bytes": str(1024**3),
    }
    if topic in (cfg.output_topic, cfg.events_topic):
        # The recorder: replay and clips reach back as far as these keep.
        configs["retention.ms"] = str(round(cfg.recording_hours * 3600 * 1000))
    if topic == cfg.output_topic:
        configs["retention.bytes"] = str(cfg.recording_partition_bytes)
    if cfg.replication_factor > 1:
        configs["min.insync.replicas"] = str(min(2, cfg.replication_factor))
    return configs


def ensure_topics(cfg: Config, topics: Iterable[str], partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Broker-side auto-creation stays off, so every command that needs a topic calls this.
    """
    wanted = list(dict.fromkeys(topics))
    admin = make_admin(cfg)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        input_max_bytes = None
        if cfg.dead_letter_topic in missing and cfg.input_topic in existing:
            # Sized from the input topic as it is, so that every record it accepts can be
            # dead-lettered whole.
            input_max_bytes = topic_max_message_bytes(cfg, [cfg.input_topic])[cfg.input_topic]
        request = {
            topic: {
                "num_partitions": partitions or cfg.partitions,
                "replication_factor": cfg.replication_factor,
                "configs": topic_configs(cfg, topic, input_max_bytes),
            }
            for topic in missing
        }
        try:
            # Another command may create a topic between our check and our request.
            with contextlib.suppress(kafka_errors.TopicAlreadyExistsError):
                admin.create_topics(request, timeout_ms=30_000, wait_for_metadata=True)
        except kafka_errors.KafkaError as exc:
            raise CamstreamError(
                f"Kafka did not create topic(s) {', '.join(missing)} with {cfg.partitions}"
                f" partitions and replication factor {cfg.replication_factor}: {exc}"
            ) from None
        log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        admin.close()


def wait_for_broker(cfg: Config, timeout_s: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise KafkaUnavailableError."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            admin = make_admin(cfg, bootstrap_timeout_ms=2_000)
        except KafkaUnavailableError as exc:
            last_error = exc
            continue
        try:
            admin.list_topics()
            return
        except kafka_errors.KafkaError as exc:
            last_error = exc
            time.sleep(0.5)
        finally:
            admin.close()
    raise unavailable(cfg, last_error)
