"""The pipeline over TLS + SASL (SCRAM-SHA-512) against a real broker, certificates made here.

The test makes a throwaway CA and a broker certificate with `openssl`, starts a broker with
a SASL_SSL listener and a SCRAM user with a random password, and runs the real commands
(topics, simulate, analyze, monitor) with nothing but the standard settings in the
environment: protocol, mechanism, user name, a password file and the CA file. Nothing
secret is committed: every key and password lives in the test's temporary folder.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camstream.local.broker import LocalBroker
from camstream.local.ports import free_port

pytestmark = [pytest.mark.spark, pytest.mark.own_brokers]

USER = "camstream-app"


def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1; returns (CA file, broker key+chain PEM)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=camstream CA", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
            "-out", "broker.csr", "-subj", "/CN=localhost", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "san.ext",
            cwd=folder)  # fmt: skip
    # Kafka's PEM key store: the PKCS#8 private key, then the certificate chain.
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=folder)
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(
        (folder / "broker.pk8").read_text()
        + (folder / "broker.crt").read_text()
        + (folder / "ca.pem").read_text()
    )
    for private in ("ca.key", "broker.key", "broker.pk8", "broker-keystore.pem"):
        (folder / private).chmod(0o600)
    return folder / "ca.pem", keystore


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, str]]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    _, keystore = make_certificates(folder / "tls")
    password = secrets.token_urlsafe(24)
    broker = LocalBroker(
        folder / "kafka",
        port=free_port(),
        controller_port=free_port(),
        sasl_ssl_port=free_port(),
        tls_keystore_pem=str(keystore),
        scram_users=((USER, password),),
    )
    broker.start()
    try:
        yield broker, password
    finally:
        broker.stop()


def secure_env(broker: LocalBroker, password_file: Path, home: Path) -> dict[str, str]:
    ca_file = Path(broker.tls_keystore_pem).parent / "ca.pem"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    return {
        **env,
        "KAFKA_BOOTSTRAP": broker.secure_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "KAFKA_SSL_CA_FILE": str(ca_file),
        "CAMSTREAM_HOME": str(home),
    }


def camstream(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "camstream", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_pipeline_over_tls_and_scram(
    secure_broker: tuple[LocalBroker, str], tmp_path: Path
) -> None:
    broker, password = secure_broker
    password_file = tmp_path / "kafka-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    env = secure_env(broker, password_file, tmp_path / "home")

    created = camstream("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert "camera-stream: created" in created.stdout

    analyze = subprocess.Popen(
        [sys.executable, "-m", "camstream", "analyze", "--spark-master", "local[2]",
         "--detection-preset", "fast", "--starting-offsets", "earliest"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        simulate = camstream(
            "simulate", "--cameras", "2", "--fps", "10", "--max-frames", "5", env=env
        )
        assert simulate.returncode == 0, simulate.stderr
        assert "sent 10 frames, 10 acknowledged" in simulate.stdout
        monitor = camstream(
            "monitor", "--from-beginning", "--max-frames", "10", "--idle-timeout", "150", env=env
        )
        assert monitor.returncode == 0, monitor.stderr
        assert "monitor: 10 frames from 2 cameras" in monitor.stdout, monitor.stdout
        assert analyze.poll() is None, "the job exited"
    finally:
        analyze.send_signal(signal.SIGTERM)  # the job stops its query and Spark itself
        output, _ = analyze.communicate(timeout=90)
    assert analyze.returncode == 0, output
    # The credentials are not printed anywhere.
    for text in (output, created.stdout + created.stderr, monitor.stdout + monitor.stderr):
        assert password not in text


def test_wrong_password_and_plaintext_are_refused_with_a_clear_error(
    secure_broker: tuple[LocalBroker, str], tmp_path: Path
) -> None:
    broker, password = secure_broker
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-" + password)
    env = secure_env(broker, wrong, tmp_path / "home")
    out = camstream("topics", "list", env=env, timeout=90)
    # Never passes; the message names the credentials among what to check. (kafka-python
    # reports the refusal only in its log: see docs/contributing.md, Upstream reports.)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and not out.stdout.strip()
    assert "refused the credentials" in out.stderr and "KAFKA_SASL_USERNAME" in out.stderr
    assert "not-" + password not in out.stderr

    # A client that does not speak TLS gets nowhere on the secure port.
    plain = {**env, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD_FILE",
                 "KAFKA_SSL_CA_FILE"):  # fmt: skip
        plain.pop(name)
    out = camstream("topics", "list", env=plain, timeout=90)
    assert out.returncode == 4 and "Traceback" not in out.stderr, out.stderr
