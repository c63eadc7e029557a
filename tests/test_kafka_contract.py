"""The frame contract over a real broker: keys, values and headers survive the round trip."""

from __future__ import annotations

import time

import pytest

from camstream.broker import free_port
from camstream.config import Config
from camstream.frames import FrameMeta
from camstream.kafka_io import BrokerUnavailableError, ensure_topics, make_admin, make_producer
from conftest import consume


def test_produce_consume_preserves_key_value_and_headers(cfg: Config) -> None:
    producer = make_producer(cfg)
    sent = []
    for seq in range(5):
        meta = FrameMeta("cam-rt", seq, time.time_ns(), 4, 3)
        value = bytes([seq]) * 1000 + b"\xff\xd9"
        producer.send(cfg.input_topic, key=b"cam-rt", value=value, headers=meta.to_headers())
        sent.append((b"cam-rt", value, meta.to_headers()))
    producer.flush()
    producer.close()
    records = consume(cfg, cfg.input_topic, 5)
    received = [(r.key, r.value, list(r.headers)) for r in records]
    assert received == sent  # one key -> one partition -> order kept
    assert len({r.partition for r in records}) == 1


def test_topics_are_created_with_the_configured_partitions(cfg: Config) -> None:
    topic = cfg.input_topic + "-extra"
    assert ensure_topics(cfg, [topic], partitions=3) == [topic]
    assert ensure_topics(cfg, [topic], partitions=3) == []  # idempotent
    admin = make_admin(cfg)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(described["partitions"]) == 3


def test_broker_auto_creation_is_off(cfg: Config) -> None:
    """Producing to a topic nobody created must not create it."""
    if "KAFKA_BOOTSTRAP" in __import__("os").environ:
        pytest.skip("depends on the external broker's configuration")
    missing = cfg.input_topic + "-never-created"
    producer = make_producer(cfg, max_block_ms=3000)
    with pytest.raises(Exception, match=r"(?i)timeout|unknown|not"):
        producer.send(missing, b"x").get(timeout=10)
    producer.close(timeout=5)
    admin = make_admin(cfg)
    try:
        assert missing not in admin.list_topics()
    finally:
        admin.close()


def test_unreachable_broker_gives_a_clear_error() -> None:
    cfg = Config(bootstrap_servers=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="camstream broker start"):
        make_producer(cfg)
    assert time.monotonic() - started < 30
