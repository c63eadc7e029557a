"""The Databricks notebook over Spark Connect, against camstream's job: one job, two
implementations, the same results.

Databricks' standard access mode and serverless compute run a notebook's Python as a Spark
Connect client: no `sparkContext`, no RDDs, the driver in another process. Here the client
is this test and the server is a local Spark Connect server, started from pyspark's own jars
(they ship `spark-connect`) with the Kafka connector, as a process of its own. The notebook
is a second implementation of the job, on purpose (it must run imported alone): it and
camstream's query (`build_query`, what `camstream analyze` runs, here in the suite's Spark
session: the command itself, its start and clean stop, is tests/test_end_to_end.py's) get
the same records and must give the same boxes and dead letters.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import Config
from camstream.core.contract import OUTPUT_HEADERS, FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_consumer, make_producer
from camstream.local.ports import free_port, port_is_free
from camstream.local.spark_cluster import spark_home
from camstream.local.supervisor import Supervisor
from camstream.spark.jars import spark_kafka_jars
from helpers import (
    astronaut_bgr,
    databricks_notebook_running,
    databricks_widgets,
    unique_topics,
    wait_until,
)
from poison import CAMERA, bad_records, with_exif_orientation

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# The server's JVM lives for one test: JIT-compiling with C1 alone starts Spark in about half
# the time on two cores (the test checks results, not speed).
QUICK_START_JVM = "-XX:TieredStopAtLevel=1"
PRESET = "faithful"  # named on both sides: each has a default of its own


class LocalConnectServer:
    """A Spark Connect server on 127.0.0.1, a JVM of its own (pyspark's `spark-submit`).

    Clients need its token: Spark Connect runs the Python it is sent, so even on loopback
    only this test may talk to it. The token travels in the environment, not on the
    command line that every local user can read.
    """

    def __init__(self, directory: Path, master: str = "local[1]") -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.directory = directory
        self.master = master
        self.process = Supervisor(
            "Spark Connect server", directory / "connect-server.log", marker=CONNECT_SERVER_CLASS
        )
        self.session: Any = None

    def start(self) -> None:
        conf = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }
        command = [
            str(spark_home() / "bin" / "spark-submit"),
            "--master", self.master,
            "--class", CONNECT_SERVER_CLASS,
            "--name", "camstream-tests-connect",
            "--driver-java-options", QUICK_START_JVM,
            "--jars", ",".join(spark_kafka_jars()),
            *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
        ]  # fmt: skip
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            # The server's Python workers run the notebook's function: this interpreter's
            # OpenCV and pyarrow, as the classic session's workers do.
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_CONNECT_AUTHENTICATE_TOKEN": self.token,
        }
        self.process.spawn(command, env, self.directory)

    def connect(self, timeout_s: float = 120.0) -> Any:
        """A Spark Connect session on the server, once it listens (bounded wait)."""
        from pyspark.sql.connect.session import SparkSession

        if self.session is None:
            self.process.wait_ready(
                lambda: not port_is_free("127.0.0.1", self.port), timeout_s, "listening"
            )
            # The Connect session class itself: pyspark's SparkSession.builder refuses a
            # remote session while this process holds the suite's classic one
            # (SESSION_ALREADY_EXIST), and it would turn later sessions into remote ones.
            self.session = SparkSession.builder.remote(
                f"sc://localhost:{self.port}/;token={self.token}"
            ).getOrCreate()
        return self.session

    def stop(self) -> None:
        if self.session is not None:
            # Closed first: an open client retries its cleanup calls at exit, for minutes
            # once the server is gone.
            self.session.stop()
        self.process.stop(timeout_s=20, group=True)  # its Python workers too


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConnectServer]:
    """Started, not waited for: the JVM starts while the test prepares its topics."""
    server = LocalConnectServer(tmp_path_factory.mktemp("spark-connect"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def shared_records() -> tuple[dict[str, Record], set[str]]:
    """Frames with and without faces, odd valid ones, and every kind of bad record; tagged."""
    records: dict[str, Record] = {}
    labels = sample_labels()["frames"]
    frames = load_sample_frames()
    now = time.time_ns()
    for seq, index in enumerate(range(0, len(frames), 6)):  # faces and empty scenes
        meta = FrameMeta("cam-sample", seq, now, 640, 480)
        records[f"sample-{index}-{len(labels[index]['faces'])}"] = (
            b"cam-sample",
            encode_jpeg(frames[index], 80),
            list(meta.to_headers()),
        )
    portrait = encode_jpeg(astronaut_bgr(), 85)
    wide = cv2.resize(astronaut_bgr(), (640, 480), interpolation=cv2.INTER_AREA)
    for seq, (name, value, size) in enumerate(
        [
            ("astronaut", portrait, (512, 512)),
            ("exif-orientation-6", with_exif_orientation(encode_jpeg(wide, 80), 6), (640, 480)),
            ("trailer", portrait + b"\x00trailer" + os.urandom(500), (512, 512)),
        ]
    ):
        records[name] = (
            CAMERA.encode(),
            value,
            list(FrameMeta(CAMERA, seq, now, *size).to_headers()),
        )
    valid = set(records)
    bad = {k: r for k, r in bad_records(portrait, 100).items() if k != "oversized frame value"}
    key = CAMERA.encode()
    base = FrameMeta(CAMERA, 200, now, 512, 512).to_headers()

    def changed(name: str, value: bytes) -> list[tuple[str, bytes | None]]:
        return [(n, value if n == name else v) for n, v in base]

    bad |= {
        "capture_ts_ns of 400 digits": (key, portrait, changed("capture_ts_ns", b"9" * 400)),
        "null key": (None, portrait, list(base)),
        "seq twice": (key, portrait, [*base, ("seq", b"7")]),
        "seq in Arabic-Indic digits": (key, portrait, changed("seq", "١٢".encode())),
    }
    records |= {
        f"bad: {kind}": (k, v, [(n, x) for n, x in h if n != "fuzz_kind"])
        for kind, (k, v, h) in bad.items()
    }
    return records, valid


def publish_tagged(cfg: Config, records: dict[str, Record]) -> None:
    producer = make_producer(cfg)
    for test_id, (key, value, headers) in records.items():
        producer.send(
            cfg.input_topic, key=key, value=value, headers=[*headers, ("test_id", test_id.encode())]
        )
    producer.flush()
    producer.close()


def collect(
    cfg: Config, wanted: set[str], timeout_s: float, given_up: Callable[[], bool] = lambda: False
) -> dict[str, tuple[str, Any]]:
    """test_id -> (topic, record), from the output and dead-letter topics, first seen; until
    all are there, `timeout_s` passed, or `given_up()` (the job failed: none will come)."""
    consumer = make_consumer(cfg, cfg.output_topic, cfg.dead_letter_topic, from_beginning=True)
    seen: dict[str, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while set(seen) < wanted and time.monotonic() < deadline and not given_up():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    test_id = dict(record.headers)["test_id"].decode()
                    seen.setdefault(test_id, (record.topic, record))
    finally:
        consumer.close()
    return seen


@pytest.mark.spark
def test_the_databricks_notebook_over_spark_connect_and_camstreams_job_agree(
    spark: Any, connect_server: LocalConnectServer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    from camstream.kafka.topics import ensure_topics
    from camstream.spark.job import build_query

    records, valid = shared_records()
    configs = {}
    for name in ("notebook", "cli"):
        cfg = unique_topics(kafka_bootstrap, tmp_path / name)
        ensure_topics(cfg, cfg.pipeline_topics)
        publish_tagged(cfg, records)
        configs[name] = cfg
    nb_cfg, cli_cfg = configs["notebook"], configs["cli"]

    # The notebook analyses every frame of this pre-filled topic; so does `all` (unique_topics').
    query = build_query(
        spark,
        cli_cfg.replace(
            detection_preset=PRESET, checkpoint_location=str(tmp_path / "cli-checkpoint")
        ),
    )
    try:
        spark_connect = connect_server.connect()
        # What standard access mode gives a notebook: a client session, no SparkContext.
        assert type(spark_connect).__module__ == "pyspark.sql.connect.session"
        with pytest.raises(Exception, match="sparkContext"):
            _ = spark_connect.sparkContext
        widgets = databricks_widgets(nb_cfg, tmp_path / "nb-checkpoints") | {"preset": PRESET}
        with databricks_notebook_running(spark_connect, widgets) as notebook:
            from_notebook = collect(nb_cfg, set(records), 300, given_up=notebook.failed)
            from_cli = collect(
                cli_cfg, set(records), 300, given_up=lambda: query.exception() is not None
            )
            assert query.isActive and query.exception() is None, "camstream's query stopped"
            query.stop()  # it stops while the notebook shows its progress
            wait_until(
                lambda: notebook.failed() or any("frames in" in s for s in notebook.run.printed),
                60,
                what="the notebook to print progress",
            )
    finally:
        query.stop()
    assert set(from_notebook) == set(records) == set(from_cli)

    faces_seen = 0
    for test_id in records:
        (nb_topic, nb_record), (cli_topic, cli_record) = from_notebook[test_id], from_cli[test_id]
        if test_id in valid:
            assert nb_topic == nb_cfg.output_topic and cli_topic == cli_cfg.output_topic, test_id
            nb_values = headers_to_dict(nb_record.headers)
            cli_values = headers_to_dict(cli_record.headers)
            assert nb_values["faces"] == cli_values["faces"], test_id
            assert json.loads(nb_values["boxes_xyxy"]) == json.loads(cli_values["boxes_xyxy"])
            names = [n for n, _ in nb_record.headers]
            assert names == [n for n, _ in cli_record.headers], test_id
            assert [n for n in names if n != "test_id"] == list(OUTPUT_HEADERS), test_id
            faces_seen += int(nb_values["faces"])
        else:  # both dead-letter it, each with a reason
            assert nb_topic == nb_cfg.dead_letter_topic, (
                test_id,
                headers_to_dict(nb_record.headers),
            )
            assert cli_topic == cli_cfg.dead_letter_topic, test_id
            assert dict(nb_record.headers)["error"] and dict(cli_record.headers)["error"]
    assert faces_seen >= 4
    # How the notebook ran: OpenCV resolved for real, Python restarted, progress shown.
    run = notebook.run
    assert run.pip_commands == ["install opencv-python-headless==4.11.0.86"]
    assert run.restarts == 1 and run.markdown_cells >= 6
    assert any(re.match(r"batch \d+: \d+ frames in \d+ ms$", line) for line in run.printed)
    assert not run.displayed  # progress is printed: Databricks' display refuses a string
