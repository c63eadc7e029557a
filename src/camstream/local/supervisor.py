"""One way to run a local long-lived process: spawn, pid file, readiness, group stop, log tail.

Used for the Kafka brokers, the Spark cluster's daemons and the demo's components. Each
runs in a session (and process group) of its own, so that stopping it stops whatever it
started too (a JVM's children, a Spark job's Python workers), and so that it ignores the
terminal's Ctrl-C. Processes are looked up with psutil (Linux and macOS alike).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from camstream.errors import CamstreamError


class Supervisor:
    """A named process (and its process group) that camstream starts and stops.

    `marker` is a word of its command line (a main class): a pid file left by a process
    that died, whose number the system gave to another program since, is not taken for
    ours. `logs` are the files whose last lines explain a failure.
    """

    def __init__(
        self,
        name: str,
        log_path: Path,
        *,
        pid_file: Path | None = None,
        marker: str = "",
        logs: Sequence[Path] = (),
        error: type[CamstreamError] = CamstreamError,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.pid_file = pid_file
        self.marker = marker
        self.logs = [log_path, *logs]
        self.error = error
        self.proc: subprocess.Popen[bytes] | None = None

    # ---- state --------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid if the process runs: the one we spawned, or the one in the pid file."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        if self.pid_file is None:
            return None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_running(pid, self.marker) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    # ---- start ----------------------------------------------------------------------------
    def spawn(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start the process in the background, its output appended to its log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        if self.pid_file is not None:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{self.proc.pid}\n")
        return self.proc

    def check_started(self) -> None:
        """Raise the error, with the log's tail, if the process we spawned has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise self.error(
                f"{self.name} exited with code {self.proc.returncode} while starting;"
                f" log: {self.log_path}\n{self.log_tail()}"
            )

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `ready` until it holds; fail with the log's tail if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_started()
            if ready():
                return
            time.sleep(0.2)
        raise self.error(
            f"{self.name} was not {what} after {timeout_s:.0f} s; log: {self.log_path}\n"
            f"{self.log_tail()}"
        )

    # ---- stop -----------------------------------------------------------------------------
    def signal(self, signum: int = signal.SIGTERM, group: bool = False) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(pid, signum)
                else:
                    os.kill(pid, signum)

    def stop(
        self,
        timeout_s: float = 30.0,
        *,
        kill: bool = False,
        group: bool = False,
        signum: int | None = None,
    ) -> bool:
        """Stop it and everything in its process group; False if it was not running.

        `signum` (SIGTERM; SIGINT for a command that stops on Ctrl-C; SIGKILL with `kill`)
        to the process, or to its whole group with `group`, then SIGKILL after `timeout_s`.
        Whatever the process left in its group goes too.
        """
        pid = self.pid()
        if pid is None:
            if self.pid_file is not None:
                self.pid_file.unlink(missing_ok=True)
            return False
        self.signal(signal.SIGKILL if kill else signum or signal.SIGTERM, group=group)
        if not _wait_gone(pid, timeout_s, self.proc):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 30.0, self.proc)
        # A JVM's children or a job's Python workers, if the leader left them behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 25) -> str:
        chunks: list[str] = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks[-lines:])


def _wait_gone(pid: int, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None and proc.pid == pid:
        try:
            proc.wait(timeout=timeout_s)  # our child: this also reaps it
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        psutil.Process(pid).wait(timeout=timeout_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def is_running(pid: int, marker: str = "") -> bool:
    """Whether `pid` runs (not a zombie) and, with a marker, is the program we think."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return not marker or marker in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group `pgid` still runs."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
