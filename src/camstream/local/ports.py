"""Local TCP ports: is one free, and free ones for brokers and tests."""

from __future__ import annotations

import socket

from camstream.errors import CamstreamError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports (for a cluster's listeners)."""
    import random

    for _ in range(200):
        base = random.randrange(20_000, 60_000 - count)
        if all(port_is_free(host, port) for port in range(base, base + count)):
            return base
    raise CamstreamError(f"found no {count} consecutive free ports on {host}")
