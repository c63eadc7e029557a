"""Shared fixtures: a real Kafka broker for the session, unique topics per test, bounded waits.

Set KAFKA_BOOTSTRAP to run the suite against any broker (e.g. the apache/kafka image);
otherwise the session starts camstream's own local broker on free ports and stops it after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest

from camstream.config import Config
from camstream.kafka.clients import make_consumer
from camstream.kafka.topics import ensure_topics
from camstream.local.broker import LocalBroker, LocalCluster
from camstream.local.ports import free_port, free_port_block
from camstream.local.supervisor import group_alive  # noqa: F401  (for the tests)

T = TypeVar("T")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


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
        tmp_path_factory.mktemp("kafka-stock"), port=free_port(), controller_port=free_port(),
        stock=True,
    )  # fmt: skip
    broker.start()
    try:
        yield broker.bootstrap
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


def unique_topics(bootstrap: str, tmp_path: Path, **settings: Any) -> Config:
    """A config with topic names of its own (not created yet) and state under tmp_path.

    Tests fill a topic first and start the job on it after: a backlog, which the default
    `live` policy would catch up on by skipping detection. These tests check what the job
    does to every frame, so they analyse every frame (`all`) unless they say otherwise.
    """
    suffix = uuid.uuid4().hex[:10]
    settings.setdefault("freshness", "all")
    return Config(
        kafka_bootstrap=bootstrap,
        input_topic=f"camera-stream-{suffix}",
        output_topic=f"camera-analytics-stream-{suffix}",
        dead_letter_topic=f"camera-stream-dlq-{suffix}",
        events_topic=f"camera-detections-{suffix}",
        starting_offsets="earliest",
        home=str(tmp_path / "home"),
        **settings,
    )


def config_with_topics(bootstrap: str, tmp_path: Path, **settings: Any) -> Config:
    config = unique_topics(bootstrap, tmp_path, **settings)
    ensure_topics(config, config.pipeline_topics)
    return config


def wait_until(
    check: Callable[[], T], timeout_s: float, interval_s: float = 0.2, what: str = "condition"
) -> T:
    """Poll `check` until it returns a truthy value; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def consume(config: Config, topic: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Read `count` records of `topic` from its beginning, within a bounded time."""
    consumer = make_consumer(config, topic, from_beginning=True)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout_s:.0f}s:"
                    f" {len(records)} of {count} records on {topic}"
                )
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # Anything beyond `count` that is already there would be a duplicate: collect it too.
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def astronaut_bgr() -> np.ndarray:
    """The public-domain NASA astronaut portrait shipped with scikit-image."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def iou(a: list[int] | np.ndarray, b: list[int] | np.ndarray) -> float:
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    ix = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    iy = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = ix * iy
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


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
