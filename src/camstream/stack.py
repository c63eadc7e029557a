"""The whole local stack in one command: broker, Spark job, simulated cameras, monitor.

Each component runs as its own process group, so that Ctrl-C (or SIGTERM) stops all of
them, their JVMs and Python workers included, and leaves nothing behind. The components
write to log files under `$CAMSTREAM_HOME/logs`; the terminal shows the monitor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from camstream.broker import LocalBroker
from camstream.config import Config
from camstream.kafka_io import BrokerUnavailableError, ensure_topics, wait_for_broker
from camstream.monitor import run_console_monitor
from camstream.station import run_station


def say(message: str) -> None:
    """Print, but never let a closed terminal or pipe stop the clean-up."""
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)


def _is_local(bootstrap: str) -> bool:
    host = bootstrap.split(",")[0].rpartition(":")[0]
    return host in ("localhost", "127.0.0.1", "::1", "[::1]")


class Component:
    """A `camstream` subcommand in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "camstream", *args],
                env={**env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.running():
            try:
                # The leader first: it stops its query and session cleanly; its JVM follows.
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Whatever the leader left in its group (a JVM, Python workers) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _start_broker_if_needed(cfg: Config) -> LocalBroker | None:
    """Use a broker that answers at the bootstrap address, or start the local one."""
    try:
        wait_for_broker(cfg, timeout_s=3)
        say(f"demo: using the Kafka broker at {cfg.bootstrap_servers}")
        return None
    except BrokerUnavailableError:
        if not _is_local(cfg.bootstrap_servers):
            raise
    port = int(cfg.bootstrap_servers.split(",")[0].rpartition(":")[2])
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
    components: list[Component] = []
    failed: list[str] = []
    log_dir = cfg.home_path / "logs"
    try:
        ensure_topics(cfg, [cfg.input_topic, cfg.output_topic, cfg.dead_letter_topic])
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": cfg.bootstrap_servers,
            "CAMSTREAM_HOME": cfg.home,
            "CAMSTREAM_DETECTION_PRESET": cfg.detection_preset,
        }
        components.append(
            Component("analyze", ["analyze", "--starting-offsets", "latest"], env, log_dir)
        )
        components.append(
            Component(
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
                for component in components:
                    if not component.running() and not stop.is_set():
                        failed.append(component.name)
                        say(
                            f"demo: {component.name} exited with code"
                            f" {component.proc.returncode}; its log ends with:\n"
                            f"{component.log_tail()}"
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
        for component in reversed(components):
            component.stop()
        if broker is not None:
            broker.stop()
        say("demo: stopped; no process left running")
