"""The `camstream` command line: help, configuration errors, the monitor, the whole demo."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from camstream.config import Config
from camstream.local.ports import free_port
from camstream.viewers.console import run_console_monitor
from helpers import annotated, camstream_running, publish, wait_until


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "camstream", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_subcommands_and_env_defaults() -> None:
    out = run("--help")
    assert out.returncode == 0
    commands = ("broker", "topics", "produce", "simulate", "analyze", "monitor", "station", "demo")
    for command in commands:
        assert command in out.stdout
    analyze = run("analyze", "--help", env={"KAFKA_BOOTSTRAP": "kafka-1:9999"})
    assert "env KAFKA_BOOTSTRAP; now: kafka-1:9999" in " ".join(analyze.stdout.split())
    for option in (
        "--input-topic",
        "--output-topic",
        "--checkpoint-location",
        "--starting-offsets",
    ):
        assert option in analyze.stdout


def test_bad_configuration_fails_fast() -> None:
    out = run("topics", "create", env={"CAMSTREAM_PARTITIONS": "many"})
    assert out.returncode == 2
    assert "CAMSTREAM_PARTITIONS='many' is not a whole number" in out.stderr
    out = run("monitor", "--kafka-bootstrap", "no-port-here")
    assert out.returncode == 2 and "expected HOST:PORT" in out.stderr
    out = run("analyze", "--detection-preset", "turbo")
    assert out.returncode == 2 and "invalid choice: 'turbo'" in out.stderr
    out = run("analyze", "--detection-preset", "fast-gated")
    assert out.returncode == 2 and "--detection-preset fast --motion-gate" in out.stderr


def test_broker_down_is_reported_not_a_traceback() -> None:
    out = run("monitor", "--kafka-bootstrap", f"127.0.0.1:{free_port()}",
              env={"KAFKA_CONNECT_TIMEOUT_S": "2"})  # fmt: skip
    assert out.returncode == 4  # Kafka unreachable (camstream.errors)
    assert "cannot reach Kafka" in out.stderr and "Traceback" not in out.stderr


def test_topics_create_and_list(cfg: Config) -> None:
    env = {
        "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        "CAMSTREAM_INPUT_TOPIC": cfg.input_topic + "-cli",
        "CAMSTREAM_OUTPUT_TOPIC": cfg.output_topic + "-cli",
        "CAMSTREAM_DEAD_LETTER_TOPIC": cfg.dead_letter_topic + "-cli",
        "CAMSTREAM_EVENTS_TOPIC": cfg.events_topic + "-cli",
    }
    out = run("topics", "create", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("created") == 4
    assert run("topics", "create", env=env).stdout.count("exists") == 4
    listed = run("topics", "list", env=env).stdout.split()
    assert cfg.input_topic + "-cli" in listed


FRAME_LINE = re.compile(r"cam-0[12]\s+seq\s+\d+\s+delay\s+[\d.]+ ms\s+faces \d")


@pytest.mark.spark
def test_demo_runs_the_stack_and_ctrl_c_leaves_nothing_behind(cfg: Config, tmp_path: Path) -> None:
    """The demo with its station. `--console` runs the same stack (broker check, Spark job,
    cameras, the same Ctrl-C handling and stop) with the console monitor in the foreground
    instead: that monitor, with the demo's stop event, is
    test_the_console_monitor_prints_each_camera_and_ends_when_told, so a second demo (a
    Spark job started again) would prove no more."""
    home = tmp_path / "demo-home"
    station_port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        "CAMSTREAM_HOME": str(home),
        "CAMSTREAM_INPUT_TOPIC": cfg.input_topic,
        "CAMSTREAM_OUTPUT_TOPIC": cfg.output_topic,
        "CAMSTREAM_DEAD_LETTER_TOPIC": cfg.dead_letter_topic,
        "CAMSTREAM_SPARK_MASTER": "local[2]",
        "CAMSTREAM_STATION_PORT": str(station_port),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "demo.log"
    args = ["demo", "--cameras", "2", "--fps", "3"]

    def cameras_shown() -> set[str]:
        try:
            stats = httpx.get(f"http://127.0.0.1:{station_port}/api/stats", timeout=5).json()
        except httpx.HTTPError:
            return set()
        return {c["camera_id"] for c in stats["cameras"] if c["frames"] > 0}

    # No process of the demo is left: nothing runs with its CAMSTREAM_HOME in its environment.
    def leftovers() -> list[int]:
        found = []
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("CAMSTREAM_HOME") == str(home):
                    found.append(proc.pid)
        return found

    with camstream_running(*args, log_path=log_path, env=env) as demo:
        try:
            wait_until(
                lambda: cameras_shown() == {"cam-01", "cam-02"},
                timeout_s=180,
                what="the demo's station to show annotated frames of both cameras",
            )
        finally:
            demo.stop(signal.SIGINT, timeout_s=120)  # what Ctrl-C does
        text = log_path.read_text()
        assert demo.returncode == 0, text
        assert "demo: stopped; no process left running" in text
        assert f"http://127.0.0.1:{station_port}/" in text
        wait_until(lambda: not leftovers(), timeout_s=30, what="demo processes to exit")


def test_the_console_monitor_prints_each_camera_and_ends_when_told(cfg: Config) -> None:
    """What `camstream demo --console` runs in the foreground: the console monitor on the
    live output topic, a line per annotated frame, until the demo's stop event is set (what
    its Ctrl-C handler does)."""
    stop = threading.Event()
    out = io.StringIO()
    monitor = threading.Thread(
        target=run_console_monitor, args=(cfg,), kwargs={"stop": stop, "out": out}, daemon=True
    )
    monitor.start()
    seq = itertools.count()

    def cameras_shown() -> set[str]:
        # Live: it shows what comes after it joined, so frames go on until both are shown.
        n = next(seq)
        publish(cfg, [annotated("cam-01", n), annotated("cam-02", n)])
        return {line.split()[0] for line in FRAME_LINE.findall(out.getvalue())}

    try:
        wait_until(
            lambda: cameras_shown() == {"cam-01", "cam-02"},
            timeout_s=60,
            what="the console monitor to show annotated frames of both cameras",
        )
    finally:
        stop.set()
        monitor.join(timeout=30)
    assert not monitor.is_alive(), "the console monitor still runs after its stop"
    text = out.getvalue()
    assert text.startswith(f"monitoring {cfg.output_topic} at {cfg.kafka_bootstrap}")
    assert re.search(r"^monitor: \d+ frames from 2 cameras", text, re.M), text


def test_cluster_commands_report_state_and_reject_bad_options(tmp_path: Path) -> None:
    out = run("spark-cluster", "status", "--dir", str(tmp_path / "none"))
    assert out.returncode == 3 and "stopped" in out.stdout
    out = run("broker", "start", "--brokers", "0", "--dir", str(tmp_path / "kafka"))
    assert out.returncode == 2 and "argument --brokers: must be a whole number of 1" in out.stderr
    out = run("analyze", "--conf", "spark.executor.memory", "--kafka-bootstrap", "h:1")
    assert out.returncode == 2 and "is not KEY=VALUE" in out.stderr


# Each subcommand given a bad value: (command line, documented exit code, what the error line
# names, packages hidden from the child). {file} is an existing file, {tmp} a fresh folder.
# Kafka is a closed port throughout: a value that got past the checks would fail with 4.
BAD_COMMAND_LINES = [
    (["setup", "--cache", "{file}"], 2, "{file} is a file, not a folder", ()),
    (["broker", "start", "--brokers", "0", "--dir", "{tmp}/kafka"], 2, "argument --brokers", ()),
    (["broker", "start", "--port", "70000", "--dir", "{tmp}/kafka"], 2, "argument --port", ()),
    (["broker", "stop", "--dir", "{file}/kafka"], 2, "{file} is a file, not a folder", ()),
    (["topics", "create", "--partitions", "0"], 2, "--partitions", ()),
    (["produce", "--source", "{tmp}/none.avi", "--camera-id", "c"], 1, "does not exist", ()),
    (["produce", "--source", "{file}", "--camera-id", "c"], 1, "cannot open source", ()),
    (["produce", "--source", "0", "--camera-id", ""], 2, "argument --camera-id", ()),
    (["produce", "--source", "0", "--camera-id", "c\udcff"], 2, "not valid UTF-8", ()),
    (["simulate", "--cameras", "0"], 2, "argument --cameras", ()),
    (["simulate", "--fps", "nan"], 2, "argument --fps", ()),
    (["simulate", "--scene", "still"], 5, "pip install 'camstream[dev]'", ("skimage",)),
    (["analyze", "--conf", "spark.executor.memory"], 2, "is not KEY=VALUE", ()),
    (["analyze", "--spark-master", "bogus"], 2, "--spark-master 'bogus'", ()),
    (["spark-cluster", "start", "--workers", "0"], 2, "argument --workers", ()),
    (["spark-cluster", "start", "--worker-memory", "lots"], 2, "argument --worker-memory", ()),
    (["spark-cluster", "status", "--dir", "{file}"], 2, "{file} is a file, not a folder", ()),
    (["monitor", "--max-frames", "0"], 2, "argument --max-frames", ()),
    (["events", "--idle-timeout", "-1"], 2, "argument --idle-timeout", ()),
    (["station", "--station-port", "70000"], 2, "--station-port", ()),
    (["station"], 5, "pip install 'camstream[station]'", ("uvicorn",)),
    (["demo", "--cameras", "0"], 2, "argument --cameras", ()),
]


@pytest.mark.parametrize(
    ("args", "code", "names", "hidden"),
    BAD_COMMAND_LINES,
    ids=[
        " ".join(case[0]).encode("ascii", "backslashreplace").decode() or "-"
        for case in BAD_COMMAND_LINES
    ],
)
def test_bad_values_are_one_line_and_their_exit_code(
    args: list[str], code: int, names: str, hidden: tuple[str, ...], tmp_path: Path
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder, not a video\n")
    fill = {"file": str(a_file), "tmp": str(tmp_path)}
    env = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "CAMSTREAM_HOME": str(tmp_path / "home")}
    if hidden:
        # A package that is there but cannot be imported, first on the child's path.
        shadow = tmp_path / "shadow"
        for name in hidden:
            (shadow / name).mkdir(parents=True)
            (shadow / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(shadow), os.environ.get("PYTHONPATH")])
        )
    out = run(*(arg.format(**fill) for arg in args), env=env, timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    assert lines, "nothing on stderr"
    command = args[0]
    if lines[-1].startswith(f"camstream {command}: error: "):
        # argparse's own report of a bad option: its usage, then the one error line.
        assert lines[0].startswith(f"usage: camstream {command} "), out.stderr
    else:
        assert re.match(r"camstream: (configuration )?error: \S", lines[-1]), out.stderr
        assert len(lines) == 1, out.stderr  # nothing else: no warning, no log line
    assert names.format(**fill) in lines[-1]
