"""Kafka clients (kafka-python) configured for image payloads, and topic management."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Iterable

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import __version__ as kafka_version

from camstream.config import Config

log = logging.getLogger(__name__)

# Bytes of headers and record overhead that a frame's request needs beyond its JPEG.
REQUEST_HEADROOM_BYTES = 16 * 1024


class _ConnectionFailures(logging.Handler):
    """Keeps kafka-python's last authentication and TLS failures, which it only logs.

    Without it a wrong password or an untrusted certificate would surface as a timeout
    ("cannot reach Kafka"), sending the user after the wrong problem.
    """

    AUTH_MARKERS = ("SaslAuthenticationFailed", "Authentication failed")
    TLS_MARKERS = ("SSLError", "CERTIFICATE_VERIFY_FAILED", "certificate", "handshake")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth: tuple[float, str] | None = None
        self.tls: tuple[float, str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in self.AUTH_MARKERS):
            self.auth = (time.monotonic(), message)
        elif any(marker in message for marker in self.TLS_MARKERS):
            self.tls = (time.monotonic(), message)

    @staticmethod
    def _recent(failure: tuple[float, str] | None, within_s: float = 120.0) -> str | None:
        return failure[1] if failure and time.monotonic() - failure[0] < within_s else None

    def recent_auth(self) -> str | None:
        return self._recent(self.auth)

    def recent_tls(self) -> str | None:
        return self._recent(self.tls)


connection_failures = _ConnectionFailures()
logging.getLogger("kafka").addHandler(connection_failures)


def _deliver_bytes_read_before_close() -> None:
    """Make kafka-python 3.0 hand over the bytes it read together with the broker's close.

    Its transport drops them: when a reply and the end of the stream arrive in one read
    (a busy client), the reply is lost. A broker that refuses SASL credentials answers and
    then closes, so a wrong password looked like "cannot reach Kafka" (about 4 runs in 5
    with the CPU busy). Same loop as the library's, except that the data is delivered, and
    its reader runs, before the abort.
    """
    from kafka.net.transport import KafkaTCPTransport

    original = KafkaTCPTransport._read_from_sock
    if getattr(original, "_camstream_patched", False):
        return

    async def read_from_sock(self) -> None:  # type: ignore[no-untyped-def]
        while self._read and not self._closed:
            await self._net.wait_read(self._sock)
            received, error = self._sock_recv()
            if received:
                self.last_read = time.monotonic()
                if self._protocol and self._protocol._sensors:
                    self._protocol._sensors.bytes_received.record(len(received))
                try:
                    self._protocol.data_received(received)
                except kafka_errors.KafkaProtocolError as protocol_error:
                    return self.abort(error=protocol_error)
            if error:
                if received:
                    # One loop step first: whoever awaits that reply (the SASL exchange)
                    # must see it before the close fails every pending request.
                    await self._net.sleep(0)
                if not self._closed:
                    self.abort(error=error)
                return

    read_from_sock._camstream_patched = True  # type: ignore[attr-defined]
    KafkaTCPTransport._read_from_sock = read_from_sock


if kafka_version.startswith("3.0."):  # the layout this patch was written against
    _deliver_bytes_read_before_close()


class BrokerUnavailableError(ConnectionError):
    """No Kafka broker answered at the configured bootstrap address."""

    def __init__(self, bootstrap_servers: str, cause: BaseException | None = None) -> None:
        auth_failure = connection_failures.recent_auth()
        tls_failure = connection_failures.recent_tls()
        if auth_failure:
            message = (
                f"Kafka at {bootstrap_servers} refused the credentials"
                f" ({_last_clause(auth_failure)}): check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"
                " (or KAFKA_SASL_PASSWORD_FILE) and KAFKA_SASL_MECHANISM"
            )
        elif tls_failure:
            message = (
                f"TLS with Kafka at {bootstrap_servers} failed ({_last_clause(tls_failure)}):"
                " check KAFKA_SECURITY_PROTOCOL and that KAFKA_SSL_CA_FILE holds the CA that"
                " signed the brokers' certificates"
            )
        else:
            detail = f" ({type(cause).__name__}: {cause})" if cause else ""
            message = (
                f"cannot reach Kafka at {bootstrap_servers}{detail}. Start the local broker"
                " with `camstream broker start`, or point KAFKA_BOOTSTRAP /"
                " --bootstrap-servers at a running one (with KAFKA_SECURITY_PROTOCOL if it"
                " needs TLS or SASL)."
            )
        super().__init__(message)


def _last_clause(message: str) -> str:
    """'...: Connection lost: X: reason' -> 'X: reason', without addresses or ports."""
    return message.rsplit("Abort (", 1)[-1].split("Connection lost: ", 1)[-1].rstrip(")")[:300]


# How long a client waits for the first metadata answer before saying the broker is down.
BOOTSTRAP_TIMEOUT_MS = 10_000


def _common(cfg: Config) -> dict[str, object]:
    _warn_without_fast_crc()
    return {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "client_id": "camstream",
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **security_settings(cfg.client_properties),
    }


@functools.cache
def _warn_without_fast_crc() -> None:
    from kafka.record import util

    if util.crc32c_c is None:
        log.warning(
            "the `crc32c` package is missing: kafka-python checksums every frame in pure Python"
            " (milliseconds per frame); `pip install crc32c`"
        )


_JAAS_VALUE = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')
_JAAS_ESCAPE = re.compile(r"\\(.)")


def security_settings(properties: tuple[tuple[str, str], ...]) -> dict[str, object]:
    """Map the Java client's security properties (as Spark takes them) to kafka-python's."""
    props = {name.removeprefix("kafka."): value for name, value in properties}
    settings: dict[str, object] = {}
    if "security.protocol" in props:
        settings["security_protocol"] = props["security.protocol"]
    if "sasl.mechanism" in props:
        settings["sasl_mechanism"] = props["sasl.mechanism"]
    if "sasl.jaas.config" in props:
        found = {
            k: _JAAS_ESCAPE.sub(r"\1", v) for k, v in _JAAS_VALUE.findall(props["sasl.jaas.config"])
        }
        if "username" in found:
            settings["sasl_plain_username"] = found["username"]
            settings["sasl_plain_password"] = found.get("password", "")
    if "ssl.ca.location" in props:
        settings["ssl_cafile"] = props["ssl.ca.location"]
    if props.get("ssl.truststore.type", "").upper() == "PEM" and "ssl.truststore.location" in props:
        settings["ssl_cafile"] = props["ssl.truststore.location"]
    return settings


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
        raise BrokerUnavailableError(cfg.bootstrap_servers, exc) from None


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
        raise BrokerUnavailableError(cfg.bootstrap_servers, exc) from None


def make_admin(cfg: Config, bootstrap_timeout_ms: int = BOOTSTRAP_TIMEOUT_MS) -> KafkaAdminClient:
    settings = {**_common(cfg), "bootstrap_timeout_ms": bootstrap_timeout_ms}
    try:
        return KafkaAdminClient(**settings, request_timeout_ms=15_000)
    except kafka_errors.KafkaTimeoutError as exc:
        raise BrokerUnavailableError(cfg.bootstrap_servers, exc) from None


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


def topic_max_message_bytes(cfg: Config, topics: Iterable[str]) -> dict[str, int | None]:
    """Each topic's effective `max.message.bytes`, as its brokers enforce it now.

    The topic's own setting if it has one, else the broker's `message.max.bytes`: read
    from Kafka, since a topic may have been created by someone else, with other limits.
    None for a topic whose configuration could not be read (it does not exist, or the
    credentials may not describe it: kafka-python reports both as an empty answer).
    """
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = list(dict.fromkeys(topics))
    admin = make_admin(cfg)
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
            for topic in wanted
        ]
        described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    finally:
        admin.close()
    limits: dict[str, int | None] = {}
    for topic in wanted:
        entry = (described.get(topic) or {}).get("max.message.bytes") or {}
        try:
            limits[topic] = int(entry["value"])
        except (KeyError, TypeError, ValueError):
            limits[topic] = None
    return limits


def topic_configs(cfg: Config, topic: str | None = None) -> dict[str, str]:
    """Per-topic settings: large enough messages for frames, bounded retention for video.

    The dead-letter topic takes a little more than the others: a dead letter is any record
    of the input topic plus the reason it failed.
    """
    from camstream.frames import DEAD_LETTER_HEADROOM_BYTES

    max_message_bytes = cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES
    if topic == cfg.dead_letter_topic:
        max_message_bytes += DEAD_LETTER_HEADROOM_BYTES
    configs = {
        "max.message.bytes": str(max_message_bytes),
        # Video is only useful live; keep an hour or 1 GiB per partition, whichever is less.
        "retention.ms": str(60 * 60 * 1000),
        "retention.bytes": str(1024**3),
    }
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
        request = {
            topic: {
                "num_partitions": partitions or cfg.partitions,
                "replication_factor": cfg.replication_factor,
                "configs": topic_configs(cfg, topic),
            }
            for topic in missing
        }
        # Another command may create a topic between our check and our request.
        with contextlib.suppress(kafka_errors.TopicAlreadyExistsError):
            admin.create_topics(request, timeout_ms=30_000, wait_for_metadata=True)
        log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        admin.close()


def wait_for_broker(cfg: Config, timeout_s: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise BrokerUnavailableError."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            admin = make_admin(cfg, bootstrap_timeout_ms=2_000)
        except BrokerUnavailableError as exc:
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
    raise BrokerUnavailableError(cfg.bootstrap_servers, last_error)
