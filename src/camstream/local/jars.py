"""The local stack's jars: the official Apache Kafka broker from Maven Central.

`camstream setup` also makes the Spark job's jars (`camstream.spark.jars`): `local/`
builds on `spark/`, never the reverse. The Maven and Java helpers both use are in
`camstream.jvm`.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from camstream.config import Config
from camstream.jvm import cache_dir, java_executable, pom_property, resolve_pom

KAFKA_BROKER_POM = "kafka-broker.pom.xml"


def _pom(name: str) -> Path:
    return Path(str(resources.files("camstream.local").joinpath("maven", name)))


def kafka_version() -> str:
    return pom_property(_pom(KAFKA_BROKER_POM), "kafka.version")


def kafka_jars_dir(cfg: Config | None = None) -> Path:
    """The official Apache Kafka broker jars (kafka_2.13 and its runtime dependencies)."""
    version = kafka_version()
    return resolve_pom(
        _pom(KAFKA_BROKER_POM), cache_dir(cfg) / f"kafka-{version}", f"Kafka {version}"
    )


def ensure_all(cfg: Config | None = None) -> None:
    """Everything the local stack needs, for `camstream setup`."""
    from camstream.spark.jars import realtime_jars, spark_kafka_jars

    java_executable()
    kafka_jars_dir(cfg)
    jars = spark_kafka_jars(cfg)
    print(f"camstream: Spark Kafka connector jars: {len(jars)}", file=sys.stderr)
    realtime = realtime_jars(cfg)
    print(f"camstream: Real-time Mode jars: {len(realtime)}", file=sys.stderr)
