"""No secret in any log line: the redacting filter on what the libraries really log, and
the levels `-v` and `--wire-logs` give kafka-python and py4j (the end-to-end check over a
SASL broker is in test_security.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from camstream.config import Config, secret_values
from camstream.kafka.security import quoted
from camstream.redaction import RedactingFilter, configure_logging

PASSWORD = "p@ss'w\"or\\d-é"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required"
    f" username={quoted('camstream-app')} password={quoted(PASSWORD)};"
)
PLAIN_BYTES = f"camstream-app\0camstream-app\0{PASSWORD}".encode()
WIRE = bytearray(b"\x00\x00\x00I\x00$\x00\x02" + PLAIN_BYTES)
PY4J_JAAS = JAAS.replace("\\", "\\\\")  # py4j doubles backslashes


@pytest.mark.parametrize(
    "line",
    [
        # kafka-python 3: the PLAIN request, its bytes on the wire, its admin configuration.
        f"Request 3: SaslAuthenticateRequest(version=2, auth_bytes={PLAIN_BYTES!r})",
        f"Send: {WIRE!r}",
        "Starting KafkaAdminClient with configuration: "
        f"{ {'sasl_plain_username': 'camstream-app', 'sasl_plain_password': PASSWORD} }",
        # py4j: the option set on Spark's Kafka source, its backslashes doubled.
        f"Command to send: c\\no12\\noption\\nskafka.sasl.jaas.config\\ns{PY4J_JAAS}\\ne\\n",
        # Text and JSON that a library or an exception might make of it.
        f"login failed for {PASSWORD}",
        json.dumps({"password": PASSWORD}),
    ],
)
def test_a_secret_is_redacted_in_every_form_it_is_logged(line: str) -> None:
    redaction = RedactingFilter()
    redaction.add_secrets([PASSWORD])
    assert PASSWORD not in redaction.redact(line)
    assert "<redacted>" in redaction.redact(line)
    for secret_part in ("or\\d-", "or\\\\d-", "\\xc3\\xa9"):  # no piece of it either
        assert secret_part not in redaction.redact(line)


def test_patterns_redact_secrets_the_filter_was_not_given() -> None:
    redaction = RedactingFilter()
    lines = {
        "SaslAuthenticateRequest(version=2, auth_bytes=b'u\\x00u\\x00hunter2')": "hunter2",
        "{'sasl_plain_password': 'hunter2', 'ssl_password': None}": "hunter2",
        'ScramLoginModule required username="u" password="hun\\\\"ter2";': "ter2",
        "--add-scram=SCRAM-SHA-512=[name=alice,password=hunter2]": "hunter2",
    }
    for line, secret in lines.items():
        assert secret not in redaction.redact(line), line
    # What is no secret stays readable.
    plain = "Bootstrap connection to bootstrap-0 failed: Authentication failed (backoff 0.4 s)"
    assert redaction.redact(plain) == plain


def test_a_handler_with_the_filter_logs_no_secret_from_arguments_nor_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redaction = RedactingFilter()
    redaction.add_secrets(secret_values(Config(kafka_properties=(("sasl.jaas.config", JAAS),))))
    handler.addFilter(redaction)
    logger = logging.getLogger("camstream.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting with %s", JAAS)
        try:
            raise ValueError(f"bad login {PASSWORD}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert "connecting with" in stream.getvalue() and "ValueError: bad login" in stream.getvalue()
    assert PASSWORD not in stream.getvalue()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    kafka, py4j = logging.getLogger("kafka"), logging.getLogger("py4j")
    saved = (root.level, kafka.level, kafka.propagate, py4j.level, list(root.handlers))
    filters = {handler: list(handler.filters) for handler in root.handlers}
    yield
    root.level, kafka.level, kafka.propagate, py4j.level = saved[:4]
    for handler in root.handlers:
        if handler not in saved[4]:
            root.removeHandler(handler)
    for handler, kept in filters.items():
        handler.filters = kept


def test_verbose_keeps_kafka_and_py4j_at_info_unless_wire_logs_are_asked_for(
    restored_logging: None,
) -> None:
    kafka, py4j = logging.getLogger("kafka.protocol.parser"), logging.getLogger("py4j.clientserver")
    configure_logging(verbose=True, wire_logs=False)
    assert not kafka.isEnabledFor(logging.DEBUG) and kafka.isEnabledFor(logging.INFO)
    assert not py4j.isEnabledFor(logging.DEBUG) and py4j.isEnabledFor(logging.INFO)
    configure_logging(verbose=True, wire_logs=True)
    assert kafka.getEffectiveLevel() == py4j.getEffectiveLevel() == logging.getLogger().level
    configure_logging(verbose=False, wire_logs=False)
    assert not kafka.isEnabledFor(logging.ERROR)
    # Every handler carries one filter, however often the CLI configured logging.
    for handler in logging.getLogger().handlers:
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
