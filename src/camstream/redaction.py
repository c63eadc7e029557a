"""Logs that never show a secret, at any verbosity.

`camstream -v` logs camstream's own debug lines and the libraries' INFO lines; kafka-python's
and py4j's DEBUG lines (each request on the wire, each command sent to the JVM) come only
with `--wire-logs`. Those carry secrets: kafka-python's SASL PLAIN request holds the password
(`auth_bytes=b'user\\x00user\\x00password'`), its admin client logs its configuration, and
py4j logs the JAAS line passed to Spark's Kafka source. So every handler the CLI sets up
redacts, whatever the level: the secrets it was given (in the forms they take in a repr, a
JSON string or a JAAS line) and, for secrets it was not given, the patterns that carry them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

from camstream.kafka.security import jaas_options, quoted

REDACTED = "<redacted>"
# Their DEBUG logs are wire logs: kafka-python's requests and responses, py4j's commands.
WIRE_LOGGERS = ("kafka", "py4j")

_QUOTED = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_PATTERNS = (
    # SASL exchanges: PLAIN's holds the password, SCRAM's a proof of it.
    re.compile(rf"(auth_bytes\s*=\s*)(?:b?{_QUOTED}|bytearray\(b{_QUOTED}\))"),
    # A JAAS line's password="...", to its closing quote even where the line was escaped
    # again (py4j doubles its backslashes): the quote that ends the option.
    re.compile(r'(password\s*=\s*)".*?"(?=\s*(?:;|\w+\s*=|$))', re.I),
    # Configurations as Python reprs or key=value text: sasl_plain_password='...',
    # 'ssl_password': '...', sasl.password=..., token: ...
    re.compile(
        rf"((?:\w|\.)*(?:password|secret|token)\w*['\"]?\s*[:=]\s*)"
        rf"(?:{_QUOTED}|[^\s,;()\[\]{{}}'\"]+)",
        re.I,
    ),
)
# Shorter values would redact ordinary words; the patterns still cover them.
_MIN_SECRET_CHARS = 4


def _written_forms(secret: str) -> set[str]:
    """How a secret shows in log text: as is, in a str or bytes repr, JSON, a JAAS line."""
    reprs = {repr(secret)[1:-1], repr(secret.encode())[2:-1]}
    # Inside a longer repr its quotes may be escaped or not, whichever the whole needed.
    reprs |= {form.replace("\\'", "'") for form in reprs}
    reprs |= {form.replace("'", "\\'").replace('"', '\\"') for form in reprs}
    jaas = quoted(secret)[1:-1]
    return {secret, *reprs, json.dumps(secret)[1:-1], jaas, jaas.replace("\\", "\\\\")}


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's text without secrets (never drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self._forms: list[str] = []

    def add_secrets(self, values: Iterable[str]) -> None:
        """Redact these wherever they appear (a JAAS line's password included)."""
        forms = set(self._forms)
        for value in values:
            # A ready-made JAAS line's (KAFKA_PROPERTIES) password is redacted where it shows
            # alone, too.
            for secret in (value, jaas_options(value).get("password", "")):
                if len(secret) >= _MIN_SECRET_CHARS:
                    forms |= _written_forms(secret)
        # Longest first: a secret that contains another is redacted whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\1{REDACTED}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, with nothing to redact
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure_logging(verbose: bool, wire_logs: bool, secrets: Iterable[str] = ()) -> None:
    """The CLI's logging: WARNING, or DEBUG with `verbose` (kafka-python and py4j at INFO
    unless `wire_logs`); every record redacted (`RedactingFilter`)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redaction = RedactingFilter()
    redaction.add_secrets(secrets)
    for handler in logging.getLogger().handlers:
        for installed in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(installed)  # main() run again in one process (tests)
        handler.addFilter(redaction)
    kafka_logger = logging.getLogger("kafka")
    # kafka-python logs every refused connection; camstream reports a down broker itself.
    kafka_logger.propagate = verbose
    wire_level = logging.NOTSET if wire_logs else logging.INFO
    kafka_logger.setLevel(wire_level if verbose else logging.CRITICAL)
    logging.getLogger("py4j").setLevel(wire_level if verbose else logging.NOTSET)
