"""The supervisor's stop, and the tests' background commands built on it (no Kafka, no Spark)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from camstream.local.supervisor import Supervisor, group_alive
from helpers import running, wait_until

# Stops cleanly on Ctrl-C (exit 0) after starting a child that stays behind in its group.
ON_CTRL_C = """
import signal, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
print("ready", flush=True)
time.sleep(60)
"""


def test_stop_sends_the_signal_asked_for_and_clears_the_group(tmp_path: Path) -> None:
    supervisor = Supervisor("ctrl-c", tmp_path / "ctrl-c.log")
    proc = supervisor.spawn([sys.executable, "-c", ON_CTRL_C])
    supervisor.wait_ready(lambda: "ready" in supervisor.log_tail(), 30, "ready")
    assert supervisor.stop(30, signum=signal.SIGINT)
    assert proc.returncode == 0  # SIGINT, not SIGTERM (which would end it with -15)
    wait_until(lambda: not group_alive(proc.pid), 10, what="the child left behind to go")


def test_a_background_command_is_stopped_and_its_group_killed_when_the_test_fails(
    tmp_path: Path,
) -> None:
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        running(
            [sys.executable, "-c", ON_CTRL_C], tmp_path / "cmd.log", stop_signal=signal.SIGINT
        ) as command,
    ):
        command.wait_ready(lambda: "ready" in command.output(), 30, "ready")
        raise RuntimeError("the test failed")
    assert command.returncode == 0
    assert not group_alive(command.pid)
