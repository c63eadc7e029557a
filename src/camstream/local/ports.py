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


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports (for a cluster's listeners).

    Below the kernel's range for outgoing connections where it can: a port in that range
    can be taken by any client's connection between this check and the broker's bind (a
    three-broker cluster failed to start so, "Address already in use").
    """
    import random

    high = min(60_000, _ephemeral_low()) - count
    low = 20_000 if high > 20_000 else 1_024
    for _ in range(200):
        base = random.randrange(low, max(low + 1, high))
        ports = range(base, base + count)
        if all(port_is_free(host, port) and _bindable(host, port) for port in ports):
            return base
    raise CamstreamError(f"found no {count} consecutive free ports on {host}")
