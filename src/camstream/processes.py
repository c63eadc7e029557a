"""Small facts about local processes, read from /proc: the daemons camstream starts.

Shared by the local Kafka broker or cluster, the local Spark cluster, the benchmark and
the tests, so that each does not read /proc its own way.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_from_file(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if it names a live process whose command line holds `marker`.

    The marker (a main class) guards against a stale pid file whose number was reused.
    """
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if marker.encode() in cmdline else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone once reaped.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(rss[0]) if rss else 0
