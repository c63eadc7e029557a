"""Shared fixtures: a real Kafka broker for the session, unique topics per test, bounded waits.

Set KAFKA_BOOTSTRAP to run the suite against any broker (e.g. the apache/kafka image);
otherwise the session starts camstream's own local broker on free ports and stops it after.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from camstream.config import Config
from camstream.local.broker import LocalBroker, LocalCluster
from camstream.local.ports import free_port
from helpers import SASL_USER, config_with_topics, free_port_block, make_certificates, process_text

# Every Spark driver the tests start (the session's, each `camstream analyze` subprocess's)
# lives for seconds: JIT-compiling with C1 alone starts Spark in about half the time on two
# cores. The tests check results, not the JVM's speed. Set PYSPARK_SUBMIT_ARGS to override.
os.environ.setdefault(
    "PYSPARK_SUBMIT_ARGS", "--driver-java-options -XX:TieredStopAtLevel=1 pyspark-shell"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against an outside broker (KAFKA_BOOTSTRAP), tests that start, stop or kill brokers of
    their own cannot run as meant: skip them, saying why."""
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        return
    skip = pytest.mark.skip(
        reason="starts, stops or kills brokers of its own: run it without KAFKA_BOOTSTRAP"
        " (or leave it out with -m 'not own_brokers')"
    )
    for item in items:
        if item.get_closest_marker("own_brokers"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    directory = tmp_path_factory.mktemp("kafka")
    broker = LocalBroker(directory, port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def stock_kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker with Kafka's own quickstart configuration, as an operator's untuned one:
    1,048,588-byte messages, topics auto-created with 1 partition."""
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-stock"),
        port=free_port(),
        controller_port=free_port(),
        stock=True,
    )
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, str]]:
    """A broker with a SASL_SSL listener (SCRAM-SHA-512 and PLAIN, a CA made here) beside its
    PLAINTEXT one, and the password of its user SASL_USER; one for the session (7 s to start)."""
    folder = tmp_path_factory.mktemp("secure-kafka")
    _, keystore = make_certificates(folder / "tls")
    password = secrets.token_urlsafe(24)
    broker = LocalBroker(
        folder / "kafka",
        port=free_port(),
        controller_port=free_port(),
        sasl_ssl_port=free_port(),
        tls_keystore_pem=str(keystore),
        sasl_users=((SASL_USER, password),),
    )
    # Every command the broker's start runs (kafka-storage's format sets the SCRAM user).
    commands: list[list[str]] = []
    run = subprocess.run

    def recorded(command: list[str], *args: Any, **kwargs: Any) -> Any:
        commands.append([str(arg) for arg in command])
        return run(command, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", recorded)
        broker.start()
    try:
        assert any("StorageTool" in " ".join(c) or c[-1].startswith("@") for c in commands)
        assert not [c for c in commands if password in " ".join(c)], "a password on a command line"
        assert password not in process_text(broker.pid()), "the broker's command line"  # type: ignore[arg-type]
        assert not (broker.directory / "format.args").exists()
        yield broker, password
    finally:
        broker.stop()


@pytest.fixture(params=["local", pytest.param("stock", marks=pytest.mark.own_brokers)])
def any_kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """camstream's local broker (or KAFKA_BOOTSTRAP's), then a stock-configured one."""
    name = "kafka_bootstrap" if request.param == "local" else "stock_kafka_bootstrap"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real three-broker KRaft cluster (three JVMs) for the tests that need one."""
    cluster = LocalCluster(
        tmp_path_factory.mktemp("kafka-cluster"), size=3, base_port=free_port_block(6)
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_cfg(kafka_cluster: LocalCluster, tmp_path: Path) -> Config:
    """Like `cfg`, on the three-broker cluster: replication factor 3, min.insync.replicas 2."""
    return config_with_topics(kafka_cluster.bootstrap, tmp_path, partitions=4, replication_factor=3)


@pytest.fixture(scope="session")
def spark(kafka_bootstrap: str) -> Iterator[Any]:
    """One local Spark session (with the Kafka connector and the Real-time Mode function)
    for the tests that need it."""
    from camstream.spark.session import spark_session

    session = spark_session(
        Config(spark_master="local[2]"), app_name="camstream-tests", realtime=True
    )
    yield session
    session.stop()


@pytest.fixture
def cfg(kafka_bootstrap: str, tmp_path: Path) -> Config:
    """A config whose topics are unique to this test (and created), state under tmp_path."""
    return config_with_topics(kafka_bootstrap, tmp_path, partitions=2)


@pytest.fixture(scope="session")
def python_without_camstream(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with camstream's dependencies but not camstream itself.

    The executors run it, so the job only works if the driver ships the package to them.
    A plain path line in a .pth file adds the site-packages folder without running the
    .pth files inside it, one of which is camstream's editable install.
    """
    venv = tmp_path_factory.mktemp("executor-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    target = next((venv / "lib").glob("python3*/site-packages"))
    (target / "camstream-deps.pth").write_text(f"{site_packages}\n")
    python = str(venv / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import cv2, numpy, pyarrow\nimport camstream"],
        capture_output=True,
        text=True,
    )
    assert "No module named 'camstream'" in probe.stderr, probe.stderr
    return python
