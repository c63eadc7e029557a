"""Scale-out on real clusters: three Kafka brokers (KRaft) and a Spark standalone cluster.

Every process is real: three broker JVMs, a Spark master and two worker JVMs started with
pyspark's `spark-class`, executors launched by the workers, and `camstream analyze` as the
driver. Run the fast suite without them with `pytest -m "not cluster"`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from camstream.cameras.simulate import CameraSimulator, camera_ids
from camstream.config import Config
from camstream.core.contract import AnnotatedFrame
from camstream.kafka.clients import make_admin
from camstream.local.broker import LocalCluster
from camstream.local.ports import free_port
from camstream.local.spark_cluster import LocalSparkCluster
from helpers import camstream_running, config_with_topics, consume

pytestmark = [pytest.mark.cluster, pytest.mark.own_brokers]

CAMERAS = 4
FRAMES_PER_CAMERA = 10


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSparkCluster]:
    cluster = LocalSparkCluster(
        tmp_path_factory.mktemp("spark-cluster"), port=free_port(), webui_port=free_port()
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_three_broker_cluster_replicates_every_partition(
    kafka_cluster: LocalCluster, cluster_cfg: Config
) -> None:
    admin = make_admin(cluster_cfg)
    try:
        for topic in (cluster_cfg.input_topic, cluster_cfg.output_topic):
            (description,) = admin.describe_topics([topic])
            partitions = description["partitions"]
            assert len(partitions) == 4
            for partition in partitions:
                assert sorted(partition["replica_nodes"]) == [1, 2, 3]
                assert sorted(partition["isr_nodes"]) == [1, 2, 3]
            # Leadership is spread: no single broker carries every camera.
            assert len({p["leader_id"] for p in partitions}) >= 2
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, ["min.insync.replicas"])
            configs = admin.describe_configs([resource])["topic"][topic]
            assert configs["min.insync.replicas"]["value"] == "2"
    finally:
        admin.close()

    folder = str(kafka_cluster.directory)
    status = subprocess.run(
        [sys.executable, "-m", "camstream", "broker", "status", "--dir", folder],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"cluster of 3 brokers, bootstrap {kafka_cluster.bootstrap}" in status.stdout
    assert status.stdout.count(": running: pid") == 3
    pids = {node.pid() for node in kafka_cluster.nodes}
    assert len(pids) == 3 and None not in pids, "each broker is its own JVM"


def _analyze_on_cluster(
    spark_cluster: LocalSparkCluster,
    cfg: Config,
    checkpoint: Path,
    total: int,
    extra_args: list[str],
    extra_env: dict[str, str],
) -> tuple[list[AnnotatedFrame], str]:
    """`camstream analyze` as the driver of the standalone cluster until `total` frames are
    out; its frames and its output."""
    env = {
        **os.environ,
        "CAMSTREAM_HOME": cfg.home,
        "CAMSTREAM_REPLICATION_FACTOR": "3",
        **extra_env,
    }
    with camstream_running(
        "analyze",
        "--spark-master", spark_cluster.master_url,
        "--kafka-bootstrap", cfg.kafka_bootstrap,
        "--input-topic", cfg.input_topic,
        "--output-topic", cfg.output_topic,
        "--dead-letter-topic", cfg.dead_letter_topic, "--events-topic", cfg.events_topic,
        "--checkpoint-location", str(checkpoint),
        "--starting-offsets", "earliest",
        "--conf", "spark.executor.memory=1g", *extra_args,
        log_path=checkpoint.parent / f"analyze-{checkpoint.name}.log", env=env,
    ) as analyze:  # fmt: skip
        records = consume(cfg, cfg.output_topic, total, timeout_s=240)
        assert analyze.returncode is None, "the Spark job exited early"
        state = spark_cluster.master_state() or {}
        running = [app["name"] for app in state.get("activeapps", [])]
        assert "camstream-analyze" in running, state
        analyze.stop()
        output = analyze.output()
    assert analyze.returncode == 0, output
    assert f"on {spark_cluster.master_url}" in output

    frames = [AnnotatedFrame.from_record(r.value, r.headers) for r in records]
    seen = {(f.camera_id, f.seq) for f in frames}
    assert len(seen) == total, f"{len(seen)} distinct frames of {total}"
    # Per-camera order holds across the cluster: each camera's seq only grows.
    for camera in {camera for camera, _ in seen}:
        seqs = [f.seq for f in frames if f.camera_id == camera]
        assert seqs == sorted(seqs), f"{camera} out of order: {seqs}"
    assert sum(f.faces for f in frames) > 0
    return frames, output


def test_pipeline_on_spark_standalone_and_kafka_cluster(
    spark_cluster: LocalSparkCluster,
    cluster_cfg: Config,
    python_without_camstream: str,
    tmp_path: Path,
) -> None:
    simulator = CameraSimulator(cluster_cfg, CAMERAS, fps=20.0)
    stats = simulator.run(max_frames=FRAMES_PER_CAMERA, progress=lambda *_: None)
    total = CAMERAS * FRAMES_PER_CAMERA
    assert stats.acked == total

    # The executors' interpreter: it has OpenCV, numpy and pyarrow but not camstream.
    _analyze_on_cluster(spark_cluster, cluster_cfg, tmp_path / "checkpoint", total, [],
                        {"PYSPARK_PYTHON": python_without_camstream})  # fmt: skip

    # Spark's own executor logs: tasks ran in executors on both workers.
    finished = {
        name: len(re.findall(r"Finished task", path.read_text(errors="replace")))
        for name, path in spark_cluster.executor_logs().items()
    }
    busy_workers = {name.split("/")[0] for name, count in finished.items() if count > 0}
    assert busy_workers == {"worker-1", "worker-2"}, finished


def test_realtime_mode_on_spark_standalone_and_kafka_cluster(
    spark_cluster: LocalSparkCluster, kafka_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Real-time Mode on the cluster: the Java function and OpenCV's Java jar reach the
    executors through spark.jars (no Python on the executors' path at all); one endless task
    per partition, so two partitions for the cluster's two cores."""
    cfg = config_with_topics(kafka_cluster.bootstrap, tmp_path, partitions=2, replication_factor=3)
    simulator = CameraSimulator(cfg, CAMERAS, fps=20.0)
    assert simulator.run(max_frames=FRAMES_PER_CAMERA, progress=lambda *_: None).acked == 40
    frames, _ = _analyze_on_cluster(
        spark_cluster, cfg, tmp_path / "checkpoint", 40, ["--trigger-interval", "realtime"], {}
    )
    assert {f.camera_id for f in frames} == set(camera_ids(CAMERAS))
    # Both workers' executors ran a real-time task (one per partition).
    started = {
        name: len(re.findall(r"Running task", path.read_text(errors="replace")))
        for name, path in spark_cluster.executor_logs().items()
    }
    assert {name.split("/")[0] for name, n in started.items() if n} == {"worker-1", "worker-2"}
