"""The whole local stack in one command: broker, Spark job, simulated cameras, monitor.

Each component runs as its own process group, so that Ctrl-C (or SIGTERM) stops all of
them, their JVMs and Python workers included, and leaves nothing behind. The components
write to log files under `$CAMSTREAM_HOME/logs`; the terminal shows the monitor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from camstream.config import Config
from camstream.errors import KafkaUnavailableError
from camstream.kafka.topics import ensure_topics, wait_for_broker
from camstream.local.broker import LocalBroker
from camstream.local.supervisor import Supervisor
from camstream.viewers.console import run_console_monitor
from camstream.viewers.station.server import run_station


def say(message: str) -> None:
    """Print, but never let a closed terminal or pipe stop the clean-up."""
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)


def _is_local(bootstrap: str) -> bool:
    host = bootstrap.split(",")[0].rpartition(":")[0]
    return host in ("localhost", "127.0.0.1", "::1", "[::1]")


def component(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Supervisor:
    """A `camstream` subcommand started in its own process group, logging to a file."""
    process = Supervisor(name, log_dir / f"{name}.log")
    process.spawn([sys.executable, "-m", "camstream", *args], env={**env, "PYTHONUNBUFFERED": "1"})
    return process


def _start_broker_if_needed(cfg: Config) -> LocalBroker | None:
    """Use a broker that answers at the bootstrap address, or start the local one."""
    try:
        wait_for_broker(cfg, timeout_s=3)
        say(f"demo: using the Kafka broker at {cfg.kafka_bootstrap}")
        return None
    except KafkaUnavailableError:
        if not _is_local(cfg.kafka_bootstrap):
            raise
    port = int(cfg.kafka_bootstrap.split(",")[0].rpartition(":")[2])
    broker = LocalBroker(cfg.home_path / "kafka", port=port, controller_port=port + 1)
    say(f"demo: starting Kafka (KRaft) in {broker.directory} ...")
    broker.start()
    say(f"demo: Kafka is up at {broker.bootstrap}")
    return broker


def _open_browser_later(cfg: Config) -> None:
    """Open the wall in a browser where there is a desktop; elsewhere the URL is printed."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    import webbrowser

    url = f"http://{cfg.station_host}:{cfg.station_port}/"
    threading.Timer(2.0, webbrowser.open, args=(url,)).start()


def run_demo(
    cfg: Config,
    cameras: int = 3,
    fps: float = 4.0,
    duration_s: float | None = None,
    console: bool = False,
) -> int:
    """Broker (if none answers), Spark job, simulated cameras, and the station or console."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    broker = _start_broker_if_needed(cfg)
    components: list[Supervisor] = []
    failed: list[str] = []
    log_dir = cfg.home_path / "logs"
    try:
        ensure_topics(cfg, cfg.pipeline_topics)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
            "CAMSTREAM_HOME": cfg.home,
            "CAMSTREAM_DETECTION_PRESET": cfg.detection_preset,
        }
        components.append(
            component("analyze", ["analyze", "--starting-offsets", "latest"], env, log_dir)
        )
        components.append(
            component(
                "simulate",
                ["simulate", "--cameras", str(cameras), "--fps", str(fps)],
                env,
                log_dir,
            )
        )
        say(
            f"demo: Spark job and {cameras} simulated cameras at {fps} frames/s each started;"
            f" their logs: {log_dir}. Annotated frames appear once Spark is up (~15 s)."
        )
        deadline = time.monotonic() + duration_s if duration_s else None

        def watchdog() -> None:
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set()
                for process in components:
                    if not process.is_running() and not stop.is_set():
                        failed.append(process.name)
                        code = process.proc.returncode if process.proc else "?"
                        say(
                            f"demo: {process.name} exited with code {code};"
                            f" its log ends with:\n{process.log_tail(15)}"
                        )
                        stop.set()
                stop.wait(0.5)

        threading.Thread(target=watchdog, daemon=True).start()
        if console:
            with contextlib.suppress(BrokenPipeError):
                run_console_monitor(cfg, stop=stop)
        else:
            _open_browser_later(cfg)
            run_station(cfg, stop=stop)
        return 1 if failed else 0
    finally:
        say("demo: stopping ...")
        for process in reversed(components):
            # The leader first: it stops its query and session cleanly; its JVM and Python
            # workers (same process group) follow, or are killed after the timeout.
            process.stop(30.0)
        if broker is not None:
            broker.stop()
        say("demo: stopped; no process left running")
