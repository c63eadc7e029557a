"""Kafka clients (kafka-python) configured for image payloads (security: `kafka.security`)."""

from __future__ import annotations

import functools
import logging

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from camstream.config import Config
from camstream.core.settings import DEFAULT_MAX_MESSAGE_BYTES, RecordSettings
from camstream.errors import KafkaUnavailableError

log = logging.getLogger(__name__)

# Bytes of headers and record overhead that a frame's request needs beyond its JPEG.
REQUEST_HEADROOM_BYTES = 16 * 1024
# Bytes of frames a producer of the per-record path's records gathers per partition into
# one batch at most.
SINK_BATCH_BYTES = 512 * 1024


def sink_topic_limits(settings: RecordSettings | None) -> tuple[int, ...]:
    """The max.message.bytes of the topics the per-record path writes, as read at start."""
    if settings is None:
        return (DEFAULT_MAX_MESSAGE_BYTES,)
    return (settings.output_max_bytes, settings.dead_letter_max_bytes)


def sink_request_bytes(cfg: Config, settings: RecordSettings | None) -> int:
    """The largest request of a producer of the per-record path's records. Every record fits
    its topic (the path sees to it), so the client must never be the one to refuse a record:
    allow the largest topic limit."""
    limits = sink_topic_limits(settings)
    return max(2 * cfg.max_frame_bytes, 16 * 1024 * 1024, max(limits) + 65536)


def sink_batch_bytes(settings: RecordSettings | None) -> int:
    """Several frames per produce request, but a batch never over the smaller topic limit."""
    return min(SINK_BATCH_BYTES, min(sink_topic_limits(settings)) // 2)


def unavailable(cfg: Config, cause: BaseException | None = None) -> KafkaUnavailableError:
    """The error for a broker that did not answer, saying what to check.

    kafka-python reports a refused login or a failed TLS handshake only in its log and
    then times out like an unreachable broker, so the message names all three causes
    that apply to these settings rather than guess one.
    """
    detail = f" ({type(cause).__name__}: {cause})" if cause else ""
    message = f"cannot reach Kafka at {cfg.kafka_bootstrap}{detail}"
    protocol = cfg.kafka_security_protocol
    if protocol.startswith("SASL_"):
        message += (
            ", or it refused the credentials: check that it runs, KAFKA_SASL_USERNAME,"
            " KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) and KAFKA_SASL_MECHANISM"
        )
    if "SSL" in protocol:
        message += (
            f"; with {protocol}, also that KAFKA_SSL_CA_FILE holds the CA that signed the"
            " brokers' certificates"
        )
    if protocol == "PLAINTEXT":
        message += (
            ". Start the local broker with `camstream broker start`, or point KAFKA_BOOTSTRAP /"
            " --kafka-bootstrap at a running one (with KAFKA_SECURITY_PROTOCOL if it needs TLS"
            " or SASL)."
        )
    else:
        message += (
            ". `camstream -v` shows each attempt and why it failed (kafka-python's log at INFO;"
            " secrets are redacted from every log)."
        )
    return KafkaUnavailableError(message)


def _common(cfg: Config) -> dict[str, object]:
    _warn_without_fast_crc()
    return {
        "bootstrap_servers": cfg.kafka_bootstrap.split(","),
        "client_id": "camstream",
        # How long a client waits for the first metadata answer before saying Kafka is down.
        "bootstrap_timeout_ms": round(cfg.kafka_connect_timeout_s * 1000),
        **cfg.kafka_security.python_settings(),
    }


@functools.cache
def _warn_without_fast_crc() -> None:
    from kafka.record import util

    if util.crc32c_c is None:
        log.warning(
            "the `crc32c` package is missing: kafka-python checksums every frame in pure Python"
            " (milliseconds per frame); `pip install crc32c`"
        )


def make_producer(cfg: Config, **overrides: object) -> KafkaProducer:
    """A producer for JPEG frames: idempotent, acks=all, batched, never flushed per frame."""
    settings: dict[str, object] = {
        **_common(cfg),
        "acks": "all",
        "enable_idempotence": True,
        # A few ms of lingering lets frames of many cameras share a request.
        "linger_ms": 5,
        "batch_size": 512 * 1024,
        "max_request_size": cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES,
        # JPEG does not compress further; compression would only cost CPU.
        "compression_type": None,
        "max_block_ms": 10_000,
        "request_timeout_ms": 15_000,
        "delivery_timeout_ms": 60_000,
    }
    settings.update(overrides)
    try:
        return KafkaProducer(**settings)
    except kafka_errors.KafkaTimeoutError as exc:
        raise unavailable(cfg, exc) from None


def make_consumer(
    cfg: Config,
    *topics: str,
    group_id: str | None = None,
    from_beginning: bool = False,
    **overrides: object,
) -> KafkaConsumer:
    """A consumer sized for frames; group-less by default (a monitor reads, it does not commit)."""
    settings: dict[str, object] = {
        **_common(cfg),
        "group_id": group_id,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        "enable_auto_commit": group_id is not None,
        "max_partition_fetch_bytes": max(1024 * 1024, cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES),
        "fetch_max_wait_ms": 50,
    }
    settings.update(overrides)
    try:
        return KafkaConsumer(*topics, **settings)
    except kafka_errors.KafkaTimeoutError as exc:
        raise unavailable(cfg, exc) from None


def make_admin(cfg: Config, bootstrap_timeout_ms: int | None = None) -> KafkaAdminClient:
    settings = _common(cfg)
    if bootstrap_timeout_ms is not None:
        settings["bootstrap_timeout_ms"] = bootstrap_timeout_ms
    try:
        return KafkaAdminClient(**settings, request_timeout_ms=15_000)
    except kafka_errors.KafkaTimeoutError as exc:
        raise unavailable(cfg, exc) from None
