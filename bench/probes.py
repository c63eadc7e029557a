"""What the bench and the tests measure of a running stack, defined once for both.

Not part of camstream: the job and the local tools need none of it. The tests load this
module by its path (`tests/helpers.py`).
"""

from __future__ import annotations

import contextlib
import random
import socket
from typing import Any

import psutil

from camstream.local.ports import port_is_free


def observed_totals(query: Any) -> dict[str, int]:
    """Sum of the job's observed metrics over the query's recent progress reports."""
    from camstream.spark.progress import progress_metrics  # the job's module: not on import

    totals: dict[str, int] = {}
    for progress in query.recentProgress:
        for name, value in progress_metrics(progress).items():
            totals[name] = totals.get(name, 0) + int(value or 0)
    return totals


def process_rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB (0 if it is gone)."""
    try:
        return float(psutil.Process(pid).memory_info().rss / 2**20)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports (for a cluster's listeners).

    Below the kernel's range for outgoing connections where it can: a port in that range
    can be taken by any client's connection between this check and the broker's bind (a
    three-broker cluster failed to start so, "Address already in use").
    """
    high = min(60_000, _ephemeral_low()) - count
    low = 20_000 if high > 20_000 else 1_024
    for _ in range(200):
        base = random.randrange(low, max(low + 1, high))
        ports = range(base, base + count)
        if all(port_is_free(host, port) and _bindable(host, port) for port in ports):
            return base
    raise RuntimeError(f"found no {count} consecutive free ports on {host}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux; else its default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def pyspark_python_workers() -> list[psutil.Process]:
    """PySpark's Python workers on this machine: the children of its worker daemons."""
    workers = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "pyspark.daemon" in cmdline or "pyspark/daemon" in cmdline:
            with contextlib.suppress(psutil.Error):
                workers.extend(process.children())
    return workers
