"""Kafka security as structured credentials, rendered for each kind of client.

`KafkaSecurity` holds what the settings say (protocol, SASL mechanism, user, password, CA
file, extra properties). The Python clients get kafka-python's settings from it directly
(`python_settings`); Spark gets the Java client's properties (`java_properties`), the JAAS
line that Spark needs rendered here from the credentials. No JAAS line is parsed back, but
one: a ready-made `sasl.jaas.config` that a user hands in `KAFKA_PROPERTIES`
(`user_jaas_credentials`).

This module imports neither kafka-python nor the rest of camstream: `camstream.config`
takes its protocol and mechanism names from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from camstream.errors import ConfigError

if TYPE_CHECKING:
    from camstream.config import Config

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The Java client's login module of each mechanism (kafka-python needs none).
SASL_MECHANISMS = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
JAAS_PROPERTY = "sasl.jaas.config"


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to Kafka and check its certificates (validated by Config)."""

    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    # KAFKA_PROPERTIES in the Java client's names; they win over the fields above. Secret:
    # they may hold a ready-made sasl.jaas.config.
    extra: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def from_config(cls, cfg: Config) -> KafkaSecurity:
        return cls(
            protocol=cfg.kafka_security_protocol,
            mechanism=cfg.kafka_sasl_mechanism,
            username=cfg.kafka_sasl_username,
            password=cfg.kafka_sasl_password,
            ca_file=cfg.kafka_ssl_ca_file,
            extra=tuple((name.removeprefix("kafka."), v) for name, v in cfg.kafka_properties),
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def java_properties(self) -> dict[str, str]:
        """The Java client's properties (Spark's Kafka source and sink take them)."""
        props: dict[str, str] = {}
        if self.protocol != "PLAINTEXT":
            props["security.protocol"] = self.protocol
        if self.mechanism:
            props["sasl.mechanism"] = self.mechanism
        if self.uses_sasl and self.username:
            props[JAAS_PROPERTY] = (
                f"{SASL_MECHANISMS[self.mechanism]} required username={quoted(self.username)}"
                f" password={quoted(self.password)};"
            )
        if self.ca_file:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(Path(self.ca_file).resolve())
        props.update(self.extra)
        return props

    def spark_options(self) -> dict[str, str]:
        """`java_properties` as Spark's `kafka.`-prefixed source and sink options."""
        return {f"kafka.{name}": value for name, value in self.java_properties().items()}

    def python_settings(self) -> dict[str, object]:
        """kafka-python's settings. The extra properties that kafka-python has an equivalent
        of win, as they do for Spark; a ready-made JAAS line counts only with a user name and
        password in it (`user_jaas_credentials`)."""
        settings: dict[str, object] = {}
        if self.protocol != "PLAINTEXT":
            settings["security_protocol"] = self.protocol
        if self.mechanism:
            settings["sasl_mechanism"] = self.mechanism
        if self.uses_sasl and self.username:
            settings["sasl_plain_username"] = self.username
            settings["sasl_plain_password"] = self.password
        if self.ca_file:
            settings["ssl_cafile"] = str(Path(self.ca_file).resolve())
        extra = dict(self.extra)
        if "security.protocol" in extra:
            settings["security_protocol"] = extra["security.protocol"]
        if "sasl.mechanism" in extra:
            settings["sasl_mechanism"] = extra["sasl.mechanism"]
        if JAAS_PROPERTY in extra:
            username, password = user_jaas_credentials(extra[JAAS_PROPERTY])
            settings["sasl_plain_username"] = username
            settings["sasl_plain_password"] = password
        if "ssl.ca.location" in extra:
            settings["ssl_cafile"] = extra["ssl.ca.location"]
        if extra.get("ssl.truststore.type", "").upper() == "PEM" and (
            "ssl.truststore.location" in extra
        ):
            settings["ssl_cafile"] = extra["ssl.truststore.location"]
        return settings


def quoted(value: str) -> str:
    """`value` in double quotes, backslash-escaped: as JAAS lines and Java's argument files
    read it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_JAAS_VALUE = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_JAAS_ESCAPE = re.compile(r"\\(.)")


def jaas_options(line: str) -> dict[str, str]:
    """The quoted options of a user's JAAS line (`username`, `password`...), unescaped."""
    return {name: _JAAS_ESCAPE.sub(r"\1", value) for name, value in _JAAS_VALUE.findall(line)}


def user_jaas_credentials(line: str) -> tuple[str, str]:
    """The user name and password of a ready-made `sasl.jaas.config` (KAFKA_PROPERTIES).

    kafka-python has no JAAS: it takes a user name and password, which is all a PLAIN or
    SCRAM login module line holds. Any other line (OAuth, Kerberos) it cannot use.
    """
    options = jaas_options(line)
    if "username" not in options or "password" not in options:
        raise ConfigError(
            "the sasl.jaas.config in KAFKA_PROPERTIES has no quoted username and password:"
            " the Python clients (kafka-python) take only a PLAIN or SCRAM login; set"
            " KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD instead"
        )
    return options["username"], options["password"]
