"""A real Spark standalone cluster on this machine: a master and workers, each its own JVM.

Started with pyspark's own `bin/spark-class` (the launcher Spark's `sbin/` scripts use), so
the daemons are exactly those of a Spark installation; `camstream analyze --spark-master
spark://HOST:PORT` then runs the job on it unchanged. Everything (logs, worker folders with
executor logs, pid files) lives under one folder, `<CAMSTREAM_HOME>/spark-cluster` by
default, and every port binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from camstream.errors import SparkClusterError
from camstream.jvm import java_executable
from camstream.local.layout import load_layout, save_layout
from camstream.local.ports import port_is_free
from camstream.local.supervisor import Supervisor

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
LAYOUT_FILE = "spark-cluster.json"


def spark_home() -> Path:
    """pyspark's own Spark distribution (jars, bin/spark-class)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass(frozen=True)
class LocalSparkCluster:
    directory: Path
    workers: int = 2
    cores_per_worker: int = 1
    worker_memory: str = "2g"
    host: str = "127.0.0.1"
    port: int = 7077
    webui_port: int = 8089

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def webui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    def worker_dir(self, index: int) -> Path:
        """Where worker `index` (from 1) keeps its executors' folders and their logs."""
        return self.directory / "work" / f"worker-{index}"

    @property
    def process_names(self) -> list[str]:
        return ["master", *(f"worker-{i}" for i in range(1, self.workers + 1))]

    # ---- saved layout -------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path) -> LocalSparkCluster | None:
        return load_layout(cls, directory, LAYOUT_FILE)

    def save(self) -> None:
        save_layout(self, LAYOUT_FILE)

    # ---- processes ----------------------------------------------------------------------
    def process(self, name: str) -> Supervisor:
        """The master or worker `name` ('master', 'worker-1', ...) as a supervised process."""
        return Supervisor(
            f"Spark {name}",
            self.logs_dir / f"{name}.log",
            pid_file=self.directory / f"{name}.pid",
            marker=MASTER_CLASS if name == "master" else WORKER_CLASS,
            error=SparkClusterError,
        )

    def _pid(self, name: str) -> int | None:
        return self.process(name).pid()

    def _env(self) -> dict[str, str]:
        java = java_executable()
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            JAVA_HOME=str(Path(java).resolve().parent.parent),
            # Every service (RPC, web UI) binds to this address instead of all interfaces.
            SPARK_LOCAL_IP=self.host,
            SPARK_LOG_DIR=str(self.logs_dir),
            SPARK_DAEMON_MEMORY="512m",
            # No unauthenticated REST job submission endpoint (port 6066).
            SPARK_MASTER_OPTS=" ".join(
                filter(None, [env.get("SPARK_MASTER_OPTS"), "-Dspark.master.rest.enabled=false"])
            ),
        )
        return env

    def _spawn(self, name: str, *args: str) -> Supervisor:
        process = self.process(name)
        # spark-class execs the JVM, so the pid stays the daemon's.
        spark_class = str(spark_home() / "bin" / "spark-class")
        process.spawn([spark_class, *args], self._env(), self.directory)
        return process

    def start(self, timeout_s: float = 90.0) -> str:
        """Start the master and the workers; wait until all workers registered. Returns the URL."""
        if all(self._pid(name) for name in self.process_names):
            self._wait_workers(timeout_s, {})
            return self.master_url
        if any(self._pid(name) for name in self.process_names):
            raise SparkClusterError(
                f"part of a Spark cluster is running from {self.directory}: stop it first"
            )
        for port in (self.port, self.webui_port):
            if not port_is_free(self.host, port):
                raise SparkClusterError(
                    f"port {self.host}:{port} is taken: stop what uses it or pick other ports"
                    " (--port / --webui-port)"
                )
        self.save()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        procs = {
            "master": self._spawn(
                "master",
                MASTER_CLASS,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--webui-port",
                str(self.webui_port),
            )
        }
        for i in range(1, self.workers + 1):
            self.worker_dir(i).mkdir(parents=True, exist_ok=True)
            procs[f"worker-{i}"] = self._spawn(
                f"worker-{i}",
                WORKER_CLASS,
                self.master_url,
                "--host",
                self.host,
                "--cores",
                str(self.cores_per_worker),
                "--memory",
                self.worker_memory,
                "--webui-port",
                "0",  # any free port: several workers share the host
                "--work-dir",
                str(self.worker_dir(i)),
            )
        try:
            self._wait_workers(timeout_s, procs)
        except SparkClusterError:
            self.stop()
            raise
        return self.master_url

    def master_state(self) -> dict | None:
        """The master's own JSON status (workers, applications), or None if it is down."""
        try:
            with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=2) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def alive_workers(self) -> int:
        state = self.master_state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def _wait_workers(self, timeout_s: float, procs: dict[str, Supervisor]) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in procs.values():
                process.check_started()
            if self.alive_workers() >= self.workers:
                return
            time.sleep(0.5)
        raise SparkClusterError(
            f"{self.alive_workers()} of {self.workers} Spark workers registered with"
            f" {self.master_url} after {timeout_s:.0f} s; logs in {self.logs_dir}"
        )

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop workers first (their executors with them), then the master."""
        stopped = False
        for name in reversed(self.process_names):
            # The whole group: a worker's executors run in it.
            stopped |= self.process(name).stop(timeout_s, group=True)
        return stopped

    def is_running(self) -> bool:
        return all(self._pid(name) for name in self.process_names)

    def status(self) -> str:
        if not any(self._pid(name) for name in self.process_names):
            return f"stopped (folder {self.directory})"
        state = self.master_state() or {}
        apps = [a.get("name", "?") for a in state.get("activeapps", [])]
        return (
            f"running: master {self.master_url} (web UI {self.webui_url}),"
            f" {self.alive_workers()} of {self.workers} workers alive,"
            f" {self.workers * self.cores_per_worker} cores, applications: {apps or 'none'};"
            f" folder {self.directory}"
        )

    def log_tail(self, name: str, lines: int = 20) -> str:
        return self.process(name).log_tail(lines)

    def executor_logs(self) -> dict[str, Path]:
        """Each executor's stderr log, by 'worker-i/app-id/executor-id'."""
        logs = {}
        for i in range(1, self.workers + 1):
            for path in sorted(self.worker_dir(i).glob("app-*/*/stderr")):
                logs[f"worker-{i}/{path.parent.parent.name}/{path.parent.name}"] = path
        return logs
