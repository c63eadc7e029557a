"""What the tests share besides fixtures: unique topics, bounded waits, reading a topic,
a test image, box overlap, certificates for a TLS broker, and running the notebooks and
reading what they show. Test modules import these from here, never from conftest."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import psutil
import pytest

from camstream.config import Config
from camstream.core.boxes import iou
from camstream.core.contract import FrameMeta, analytics_headers
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_consumer, make_producer
from camstream.kafka.topics import ensure_topics
from camstream.local.supervisor import Supervisor, group_alive
from databricks_shim import NotebookRun, run_notebook


def bench_module(name: str) -> Any:
    """A module of bench/ (not a package), loaded by its path."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_frame_functions = bench_module("frame_functions")
analyse_jpeg = _frame_functions.analyse_jpeg  # the job's per-record path on one JPEG
boxes_of = _frame_functions.boxes_of
detect_faces = _frame_functions.detect_faces
jpeg_size = _frame_functions.jpeg_size
# What the bench and the tests measure of a running stack, defined once.
_probes = bench_module("probes")
observed_totals = _probes.observed_totals
process_rss_mb = _probes.process_rss_mb
free_port_block = _probes.free_port_block
pyspark_python_workers = _probes.pyspark_python_workers


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total / 2**20


__all__ = [
    "ARTIFACTS",
    "CONSUMER_NB",
    "DATABRICKS_NB",
    "PRODUCER_NB",
    "SASL_USER",
    "BackgroundNotebook",
    "RunningCommand",
    "analyse_jpeg",
    "annotated",
    "astronaut_bgr",
    "boxes_of",
    "camstream_running",
    "config_with_topics",
    "consume",
    "consume_topics",
    "databricks_notebook_running",
    "databricks_widgets",
    "detect_faces",
    "end_offsets",
    "execute",
    "free_port_block",
    "group_alive",
    "iou",
    "jpeg_size",
    "make_certificates",
    "observed_totals",
    "outputs",
    "process_rss_mb",
    "process_text",
    "publish",
    "replay_in_consumer_notebook",
    "running",
    "shown_text",
    "tree_rss_mb",
    "unique_topics",
    "wait_until",
]

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
PRODUCER_NB = REPO / "jupyter" / "VideoCaptureToKafka.ipynb"
CONSUMER_NB = REPO / "jupyter" / "KafkaConsumerProcessed.ipynb"
DATABRICKS_NB = REPO / "databricks" / "KafkaStructStream.py"


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
    return consume_topics(config, {topic: count}, timeout_s)[topic]


def consume_topics(
    config: Config, counts: Mapping[str, int], timeout_s: float = 60.0
) -> dict[str, list[Any]]:
    """Read `counts[topic]` records of each topic from its beginning, with one consumer,
    within a bounded time; each topic's records in the order read."""
    consumer = make_consumer(config, *counts, from_beginning=True)
    records: dict[str, list[Any]] = {topic: [] for topic in counts}

    def short() -> dict[str, str]:
        return {t: f"{len(records[t])} of {n}" for t, n in counts.items() if len(records[t]) < n}

    deadline = time.monotonic() + timeout_s
    try:
        while short():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.0f}s: records read {short()}")
            for partition, batch in consumer.poll(timeout_ms=500).items():
                records[partition.topic].extend(batch)
        # Anything beyond the counts that is already there would be a duplicate: collect it
        # too (one wait for all the topics).
        for partition, batch in consumer.poll(timeout_ms=1000).items():
            records[partition.topic].extend(batch)
    finally:
        consumer.close()
    return records


def end_offsets(config: Config, topic: str) -> dict[int, int]:
    """Partition -> end offset of `topic`: how many records each partition ever held."""
    from kafka import TopicPartition

    consumer = make_consumer(config)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


def astronaut_bgr() -> np.ndarray:
    """The public-domain NASA astronaut portrait shipped with scikit-image."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


# ---- a broker with TLS and SASL (the `secure_broker` fixture) --------------------------------
SASL_USER = "camstream-app"


def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1; returns (CA file, broker key+chain PEM)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=camstream CA", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
            "-out", "broker.csr", "-subj", "/CN=localhost", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "san.ext",
            cwd=folder)  # fmt: skip
    # Kafka's PEM key store: the PKCS#8 private key, then the certificate chain.
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=folder)
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(
        (folder / "broker.pk8").read_text()
        + (folder / "broker.crt").read_text()
        + (folder / "ca.pem").read_text()
    )
    for private in ("ca.key", "broker.key", "broker.pk8", "broker-keystore.pem"):
        (folder / private).chmod(0o600)
    return folder / "ca.pem", keystore


def process_text(pid: int) -> str:
    """A live process's command line and environment, as /proc shows them to anyone."""
    proc = Path("/proc") / str(pid)
    try:
        return ((proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()).decode(
            "utf-8", "replace"
        )
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""  # gone meanwhile


# ---- commands run in the background -------------------------------------------------------
class RunningCommand:
    """A command started by `running`: its process (the leader of a group of its own, under
    camstream's supervisor) and its output, which goes to a log file."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        assert supervisor.proc is not None
        self.proc: subprocess.Popen[bytes] = supervisor.proc
        self._signalled = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        """What it has printed so far (stdout and stderr)."""
        return self.supervisor.log_path.read_text(errors="replace")

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `ready`; fail with the output's tail if the command exits first."""
        self.supervisor.wait_ready(ready, timeout_s, what)

    def ask_to_stop(self, signum: int = signal.SIGTERM) -> None:
        """Send it `signum`, once: a second SIGTERM makes `camstream analyze` give up its
        clean stop."""
        if self.proc.poll() is None and not self._signalled:
            self._signalled = True
            self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 90.0) -> int:
        """Ask it to stop and wait for it; past `timeout_s` its whole group is killed (and
        the test fails). Its exit code."""
        self.ask_to_stop(signum)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.supervisor.name} did not stop within {timeout_s:.0f} s:\n"
                f"{self.supervisor.log_tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL to the whole group (the JVM, the Python workers): a crash, no clean stop."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def running(
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    stop_timeout_s: float = 90.0,
    name: str = "",
) -> Iterator[RunningCommand]:
    """`command` in the background, in a process group of its own, its output in `log_path`;
    `env` is its whole environment (default: this process's).

    On leaving, it is stopped if it still runs (`stop_signal`, then SIGKILL to its group
    after `stop_timeout_s`), and whatever its group left behind is killed: a failed test
    leaves no JVM running. A test that checks how the command stops calls `stop` itself.
    """
    supervisor = Supervisor(name or Path(command[0]).name, log_path)
    supervisor.spawn(command, env=dict(os.environ if env is None else env))
    process = RunningCommand(supervisor)
    try:
        yield process
    finally:
        try:
            if process.returncode is None:
                process.stop(stop_signal, stop_timeout_s)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10  # until the killed are reaped
            while group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def camstream_running(
    *args: str, log_path: Path, env: Mapping[str, str] | None = None, **options: Any
) -> contextlib.AbstractContextManager[RunningCommand]:
    """`python -m camstream *args` (`camstream analyze`, `demo`, `station`...) `running`."""
    command = next((arg for arg in args if not arg.startswith("-")), "")
    return running(
        [sys.executable, "-m", "camstream", *args],
        log_path,
        env,
        name=f"camstream {command}".strip(),
        **options,
    )


# ---- the Jupyter notebooks, run in a real kernel --------------------------------------------
def execute(notebook: Path, output: Path, **parameters: Any) -> dict[str, Any]:
    """Run a notebook in a real kernel with papermill's parameters; the executed notebook."""
    import papermill  # imported here: only the notebook tests need it

    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(notebook.parent),
        execution_timeout=300,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / output.name).write_text(output.read_text())  # kept for a look afterwards
    return json.loads(output.read_text())


def replay_in_consumer_notebook(
    cfg: Config, tmp_path: Path, max_frames: int, idle_timeout_s: float
) -> dict[str, Any]:
    """The consumer notebook run over the output topic from its beginning."""
    return execute(
        CONSUMER_NB,
        tmp_path / "KafkaConsumerProcessed.out.ipynb",
        kafkabrokers=cfg.kafka_bootstrap,
        topic=cfg.output_topic,
        from_beginning=True,
        max_frames=max_frames,
        idle_timeout_s=idle_timeout_s,
    )


def outputs(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """What a notebook's code cells showed: streams, displays, errors."""
    return [out for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell["outputs"]]


def shown_text(nb: dict[str, Any]) -> str:
    return json.dumps(outputs(nb))


@functools.cache
def frame_jpeg() -> bytes:
    return encode_jpeg(cv2.resize(astronaut_bgr(), (640, 480), interpolation=cv2.INTER_AREA), 80)


def annotated(camera: str, seq: int, partition: int | None = None) -> dict[str, Any]:
    """An output record as the job writes it (one face), as `producer.send` arguments."""
    meta = FrameMeta(camera, seq, time.time_ns(), 640, 480)
    headers = analytics_headers(meta.to_headers(), [[200, 100, 330, 230]], time.time_ns())
    return {
        "key": camera.encode(),
        "value": frame_jpeg(),
        "headers": headers,
        "partition": partition,
    }


def publish(cfg: Config, records: list[dict[str, Any]]) -> None:
    """Send records (`annotated`'s) to the output topic, acknowledged."""
    producer = make_producer(cfg)
    for record in records:
        producer.send(cfg.output_topic, **record)
    producer.flush()
    producer.close()


def databricks_widgets(cfg: Config, checkpoint_root: Path) -> dict[str, str]:
    """The Databricks notebook's widgets for `cfg`'s broker and topics: every frame from the
    topic's start, no security (the local broker), progress shown until the query stops."""
    return {
        "kafka_bootstrap_servers": cfg.kafka_bootstrap,
        "input_topic": cfg.input_topic,
        "output_topic": cfg.output_topic,
        "dead_letter_topic": cfg.dead_letter_topic,
        "checkpoint_root": str(checkpoint_root),
        "starting_offsets": "earliest",
        "security_protocol": "PLAINTEXT",
        "progress_seconds": "0",
    }


@dataclass
class BackgroundNotebook:
    """The Databricks notebook running in a thread: its last cell prints progress until the
    query stops. `errors` holds what a cell raised."""

    run: NotebookRun = field(default_factory=lambda: NotebookRun(namespace={}))
    errors: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def failed(self) -> bool:
        """Whether it ended by itself (a cell raised, or the query failed): nothing more
        will come out of it."""
        return bool(self.errors) or (self.thread is not None and not self.thread.is_alive())


@contextlib.contextmanager
def databricks_notebook_running(
    spark: Any, widgets: dict[str, str], stop_timeout_s: float = 90.0
) -> Iterator[BackgroundNotebook]:
    """Run the Databricks notebook through the stand-in on `spark` (a classic or a Spark
    Connect session) while the block runs; then stop its query, and fail if a cell raised
    or the query had failed.

    The query is stopped even when the block fails before the notebook started it: a query
    left running would go on writing while later tests share the session.
    """
    notebook = BackgroundNotebook()

    def run() -> None:
        try:
            run_notebook(DATABRICKS_NB, spark, widgets, run=notebook.run)
        except BaseException as exc:  # reported when the block ends
            notebook.errors.append(exc)

    thread = notebook.thread = threading.Thread(target=run, name="notebook", daemon=True)
    thread.start()
    try:
        yield notebook
    finally:
        deadline = time.monotonic() + stop_timeout_s
        stopped = False
        while thread.is_alive() and time.monotonic() < deadline:
            query = notebook.run.namespace.get("query")
            if query is not None and not stopped:
                query.stop()
                stopped = True
            thread.join(timeout=0.5)
    assert not thread.is_alive(), f"the notebook still runs {stop_timeout_s:.0f}s after its stop"
    query = notebook.run.namespace.get("query")
    failure = query.exception() if query is not None else None  # None: stopped by us
    assert not notebook.errors and failure is None, (notebook.errors, failure)
