"""The local broker script's error paths (the session fixture covers start and stop)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from camstream.errors import BrokerError, DependencyError
from camstream.jvm import java_executable
from camstream.local.broker import LocalBroker
from camstream.local.ports import free_port


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        broker = LocalBroker(tmp_path, port=port, controller_port=free_port())
        with pytest.raises(BrokerError, match=f"port 127.0.0.1:{port} is already taken"):
            broker.start()
    assert not broker.is_running()
    assert broker.status().startswith("stopped")


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-jdk")
    with pytest.raises(DependencyError, match="Java 17 or newer is required"):
        java_executable()


def test_java_on_this_machine_is_new_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert java_executable()


def test_cluster_ids_never_look_like_options() -> None:
    """A random id starting with '-' made kafka-storage fail (1 start in 64)."""
    from camstream.local.broker import _kafka_uuid

    ids = [_kafka_uuid() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
