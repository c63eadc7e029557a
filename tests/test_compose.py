"""The Docker Compose broker is configured as camstream's own local broker.

It cannot run here (no Docker engine), so the file itself is checked: every setting the
local broker shares with any single-node broker must be the same in the container.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from camstream.local.broker import LocalBroker

REPO = Path(__file__).resolve().parent.parent
# Settings of the local broker that do not depend on its folder, host or ports.
SHARED = (
    "process.roles", "auto.create.topics.enable", "num.partitions", "message.max.bytes",
    "replica.fetch.max.bytes", "log.retention.hours", "log.segment.bytes",
    "default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor", "share.coordinator.state.topic.min.isr",
    "group.initial.rebalance.delay.ms", "controller.listener.names", "inter.broker.listener.name",
)  # fmt: skip


def compose_properties() -> dict[str, str]:
    """The apache/kafka image's KAFKA_* variables as server.properties keys."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["kafka"]
    properties = {}
    for name, value in service["environment"].items():
        if name.startswith("KAFKA_"):
            key = name.removeprefix("KAFKA_").lower()
            key = key.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")
            properties[key] = str(value)
    return properties


def test_the_container_broker_has_the_local_brokers_settings(tmp_path: Path) -> None:
    local = LocalBroker(tmp_path).properties()
    container = compose_properties()
    differing = {
        key: (local[key], container.get(key)) for key in SHARED if local[key] != container.get(key)
    }
    assert not differing, f"docker-compose.yml differs from the local broker: {differing}"
    assert container["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper.connect" not in container
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["kafka"]
    assert service["image"].startswith("apache/kafka:")
    from camstream.local.jars import kafka_version

    assert service["image"] == f"apache/kafka:{kafka_version()}"
    assert service["ports"] == ["127.0.0.1:9092:9092"]  # loopback only
