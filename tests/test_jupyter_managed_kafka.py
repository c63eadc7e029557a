"""The Jupyter notebooks on a managed Kafka: SASL/SCRAM over TLS, and topics they may not create.

A managed service (Confluent Cloud, MSK, Aiven) takes SASL_SSL, refuses a replication factor
of 1 and often forbids creating topics. The broker here has a SASL_SSL listener with a CA
made by the session (`secure_broker`) and one node, so a replication factor of 3 is refused
as a managed service refuses what it cannot or may not do.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from papermill.exceptions import PapermillExecutionError

from camstream.config import Config
from camstream.core.contract import INPUT_HEADERS, FrameMeta
from camstream.kafka.topics import ensure_topics, list_topics
from camstream.local.broker import LocalBroker
from helpers import (
    SASL_USER,
    annotated,
    consume,
    execute,
    outputs,
    publish,
    shown_text,
    unique_topics,
)

pytestmark = pytest.mark.own_brokers

JUPYTER = Path(__file__).resolve().parent.parent / "jupyter"
PRODUCER_NB = JUPYTER / "VideoCaptureToKafka.ipynb"
CONSUMER_NB = JUPYTER / "KafkaConsumerProcessed.ipynb"
MECHANISM = "SCRAM-SHA-512"


def ca_file(broker: LocalBroker) -> str:
    return str(Path(broker.tls_keystore_pem).parent / "ca.pem")


@pytest.fixture
def secure_cfg(secure_broker: tuple[LocalBroker, str], tmp_path: Path) -> Config:
    """camstream's own clients on the SASL_SSL listener, topics of this test's own."""
    broker, password = secure_broker
    return unique_topics(
        broker.secure_bootstrap,
        tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=MECHANISM,
        kafka_sasl_username=SASL_USER,
        kafka_sasl_password=password,
        kafka_ssl_ca_file=ca_file(broker),
    )


def failed_run(notebook: Path, output: Path, **parameters: Any) -> tuple[str, dict[str, Any]]:
    """Run a notebook that must stop: the error's one line and the notebook as it stopped."""
    with pytest.raises(PapermillExecutionError) as failure:
        execute(notebook, output, **parameters)
    error = failure.value
    return f"{error.ename}: {error.evalue}", json.loads(output.read_text())


def cell_source(path: Path, start: str) -> str:
    cells = json.loads(path.read_text())["cells"]
    (found,) = ["".join(c["source"]) for c in cells if "".join(c["source"]).startswith(start)]
    return found


def test_both_notebooks_connect_alike() -> None:
    """One connection cell and one set of security parameters, the same text in both."""
    opening = "# A parameter wins, else camstream's environment variable"
    assert cell_source(PRODUCER_NB, opening) == cell_source(CONSUMER_NB, opening)
    security = re.compile(r"^# Security,.*?^connect_timeout_s = .*?$", re.MULTILINE | re.DOTALL)
    (producer,) = security.findall(cell_source(PRODUCER_NB, "# Parameters"))
    (consumer,) = security.findall(cell_source(CONSUMER_NB, "# Parameters"))
    assert producer == consumer
    for name in ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
                 "ssl_ca_file", "connect_timeout_s"):  # fmt: skip
        assert f"\n{name} = None" in producer, name


def test_producer_notebook_over_scram_and_tls_from_the_environment(
    secure_broker: tuple[LocalBroker, str],
    secure_cfg: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker and its credentials as camstream's commands take them; a topic that exists
    is used as it is: neither create_topic=False nor a replication factor the cluster lacks
    stops it."""
    broker, password = secure_broker
    ensure_topics(secure_cfg, [secure_cfg.input_topic])
    secret = tmp_path / "kafka-password"
    secret.write_text(password + "\n")
    for name, value in {
        "KAFKA_BOOTSTRAP": broker.secure_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": SASL_USER,
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
        "KAFKA_SSL_CA_FILE": ca_file(broker),
    }.items():
        monkeypatch.setenv(name, value)  # the kernel inherits them
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    output = tmp_path / "VideoCaptureToKafka.scram.ipynb"
    nb = execute(
        PRODUCER_NB, output, topic=secure_cfg.input_topic, camera_id="scram-cam", fps=25,
        max_frames=3, create_topic=False, replication_factor=3,
    )  # fmt: skip
    records = consume(secure_cfg, secure_cfg.input_topic, 3)
    assert [FrameMeta.from_headers(r.headers).seq for r in records] == [0, 1, 2]
    assert all([n for n, _ in r.headers] == list(INPUT_HEADERS) for r in records)
    text = shown_text(nb)
    assert f"Kafka at {broker.secure_bootstrap} (SASL_SSL, {MECHANISM} as {SASL_USER})" in text
    assert f"topic {secure_cfg.input_topic} exists" in text and "3 acknowledged" in text
    assert password not in output.read_text()  # neither shown nor among the parameters


def test_producer_notebook_stops_in_one_line_when_the_topic_cannot_be_created(
    secure_broker: tuple[LocalBroker, str],
    secure_cfg: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replication factor 3 on one broker: what Kafka refused and what to set, then a stop."""
    broker, password = secure_broker
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", password)
    missing = secure_cfg.input_topic
    error, nb = failed_run(
        PRODUCER_NB, tmp_path / "VideoCaptureToKafka.rf3.ipynb",
        kafkabrokers=broker.secure_bootstrap, security_protocol="SASL_SSL",
        sasl_mechanism=MECHANISM, sasl_username=SASL_USER, ssl_ca_file=ca_file(broker),
        topic=missing, replication_factor=3, max_frames=3,
    )  # fmt: skip
    assert "\n" not in error
    assert error.startswith(f"SetupError: Kafka refused to create topic {missing}")
    assert "INVALID_REPLICATION_FACTOR" in error and "only 1 broker(s)" in error
    assert error.endswith("set replication_factor to what the cluster has (None: its default)")
    assert "frames sent" not in shown_text(nb)  # stopped before the producer
    assert missing not in list_topics(secure_cfg)


def test_consumer_notebook_over_scram_and_a_wrong_password(
    secure_broker: tuple[LocalBroker, str],
    secure_cfg: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, password = secure_broker
    ensure_topics(secure_cfg, [secure_cfg.output_topic])
    publish(secure_cfg, [annotated("scram-cam", seq) for seq in range(2)])
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", password)
    security = {"kafkabrokers": broker.secure_bootstrap, "security_protocol": "SASL_SSL",
                "sasl_mechanism": MECHANISM, "sasl_username": SASL_USER,
                "ssl_ca_file": ca_file(broker), "topic": secure_cfg.output_topic}  # fmt: skip
    nb = execute(
        CONSUMER_NB,
        tmp_path / "KafkaConsumerProcessed.scram.ipynb",
        **security,
        from_beginning=True,
        max_frames=2,
        idle_timeout_s=60,
    )
    assert "2 frames from 1 cameras" in shown_text(nb)

    # A refused login looks like silence to kafka-python: the connect timeout bounds it.
    started = time.monotonic()
    error, nb = failed_run(
        CONSUMER_NB,
        tmp_path / "KafkaConsumerProcessed.refused.ipynb",
        **security,
        sasl_password="not-" + password,
        connect_timeout_s=2,
    )
    assert time.monotonic() - started < 30
    assert "\n" not in error
    assert error.startswith(f"SetupError: no answer from Kafka at {broker.secure_bootstrap}")
    assert "within 2 s" in error and "sasl_password" in error and "ssl_ca_file" in error
    assert password not in json.dumps(outputs(nb))
