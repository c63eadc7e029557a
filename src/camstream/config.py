"""One frozen configuration object for every component.

Values come from (lowest to highest precedence) the defaults below, environment
variables (`Config.from_env()`), and explicit overrides such as CLI options
(`cfg.replace(...)`). Every value is validated once, here, so a wrong setting
fails fast with a message that names the setting and says what to fix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class DetectionSettings:
    """How faces are detected. `detect_width` downsizes the grey frame before detection."""

    cascade: str = "haarcascade_frontalface_alt.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30
    # None = detect at full resolution; boxes are always reported in full-frame pixels.
    detect_width: int | None = None
    equalize_histogram: bool = True

    def validate(self) -> DetectionSettings:
        if self.scale_factor <= 1.0:
            raise ConfigError(f"scale_factor must be > 1.0 (got {self.scale_factor})")
        if self.min_neighbors < 0:
            raise ConfigError(f"min_neighbors must be >= 0 (got {self.min_neighbors})")
        if self.min_size < 1:
            raise ConfigError(f"min_size must be >= 1 pixel (got {self.min_size})")
        if self.detect_width is not None and self.detect_width < 32:
            raise ConfigError(
                f"detect_width must be >= 32 pixels or unset (got {self.detect_width})"
            )
        return self


@dataclass(frozen=True)
class RecordSettings:
    """Everything the per-record function needs, in one object (`Config.record_settings`)."""

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    jpeg_quality: int = 80
    # An annotated frame too large for the output topic is re-encoded down to this quality,
    # then shrunk by quarters down to this width, before it is dead-lettered instead.
    min_jpeg_quality: int = 40
    min_frame_width: int = 320
    # Larger values are dead-lettered before anything decodes them.
    max_frame_bytes: int | None = None
    # The `latest` freshness policy: frames older than this skip detection.
    max_age_ms: int | None = None
    # The topics' max.message.bytes as the job read them at start.
    output_max_bytes: int = 1_048_588
    dead_letter_max_bytes: int = 1_048_588


# `faithful` keeps the reference demo's settings; `fast` trades a little recall for speed.
DETECTION_PRESETS: dict[str, DetectionSettings] = {
    "faithful": DetectionSettings(),
    "fast": DetectionSettings(
        cascade="haarcascade_frontalface_default.xml",
        scale_factor=1.2,
        min_neighbors=5,
        min_size=24,
        detect_width=320,
    ),
}

STARTING_OFFSETS = ("latest", "earliest")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
FRESHNESS_POLICIES = ("all", "latest")


@dataclass(frozen=True)
class Config:
    """Settings shared by the producer, the Spark job, the monitor and the broker tools."""

    bootstrap_servers: str = "localhost:9092"
    input_topic: str = "camera-stream"
    output_topic: str = "camera-analytics-stream"
    dead_letter_topic: str = "camera-stream-dlq"
    partitions: int = 4
    replication_factor: int = 1
    # Below the broker's default message.max.bytes (1 MiB) with room for headers.
    max_frame_bytes: int = 1_000_000
    jpeg_quality: int = 80
    # For an oversized frame the producer lowers quality down to this, then the width down
    # to the next setting, before it gives up with an error.
    min_jpeg_quality: int = 40
    min_frame_width: int = 320
    # Spark job
    master: str = "local[*]"
    checkpoint_location: str = ""
    starting_offsets: str = "latest"
    trigger_interval: str = "0 seconds"
    max_offsets_per_trigger: int | None = 200
    detection_preset: str = "faithful"
    # `all` analyses every frame however late; `latest` passes frames older than
    # max_frame_age_ms through unanalysed (marked and counted) to stay fresh under overload.
    freshness_policy: str = "all"
    max_frame_age_ms: int = 1000
    # Write micro-batch offsets to the checkpoint asynchronously (lower latency).
    async_progress: bool = False
    # OpenCV threads per Spark task: 1 when tasks already use every core.
    opencv_threads: int = 1
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    # Browser station: loopback unless told otherwise; the token guards it when exposed.
    station_host: str = "127.0.0.1"
    station_port: int = 8080
    station_token: str = field(default="", repr=False)
    station_stale_s: float = 5.0
    # A camera silent this long is dropped from the station (its tile, stats and state).
    station_forget_after_s: float = 1800.0
    # Host names (besides loopback ones) the station answers to without a token, and extra
    # origins whose pages may open its WebSocket: comma-separated lists.
    station_allowed_hosts: str = ""
    station_allowed_origins: str = ""
    # Serving on a non-loopback address without a token needs this, said explicitly.
    station_insecure_no_token: bool = False
    # Kafka security, for every client (producer, Spark source and sink, monitor, station).
    # From the environment only: a password on a command line shows in `ps`.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    # PEM file of the CA(s) that signed the brokers' certificates (empty: the system's).
    ssl_ca_file: str = ""
    # Extra Kafka client properties in the Java client's names (e.g. a ready-made
    # sasl.jaas.config); they win over the settings above. Kept out of repr: may hold secrets.
    kafka_properties: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Local state: broker data and logs, default checkpoints.
    home: str = field(default_factory=lambda: str(Path("~/.camstream").expanduser()))

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from environment variables (see `ENV_VARS`), then apply `overrides`."""
        env = os.environ if env is None else env
        _check_unknown_variables(env)
        values: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(name, var, raw)
        password_file = env.get(PASSWORD_FILE_VAR)
        if password_file and "sasl_password" not in values:
            try:
                values["sasl_password"] = Path(password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"{PASSWORD_FILE_VAR}={password_file!r} cannot be read: {exc.strerror}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls._build(values)

    def replace(self, **overrides: Any) -> Config:
        """A copy with the non-None overrides applied and validated."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.pop("detection")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return self._build(values)

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Config:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        preset = values.get("detection_preset", cls.detection_preset)
        if preset not in DETECTION_PRESETS:
            raise ConfigError(
                f"unknown detection preset {preset!r}: choose one of {', '.join(DETECTION_PRESETS)}"
                " (CAMSTREAM_DETECTION_PRESET / --preset)"
            )
        values.setdefault("detection", DETECTION_PRESETS[preset])
        cfg = cls(**values)
        return cfg.validate()

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> Config:
        if not self.bootstrap_servers.strip():
            raise ConfigError(
                "bootstrap_servers is empty: set KAFKA_BOOTSTRAP or --bootstrap-servers"
            )
        for server in self.bootstrap_servers.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"bad bootstrap server {server!r}: expected HOST:PORT[,HOST:PORT...]"
                    " (KAFKA_BOOTSTRAP / --bootstrap-servers)"
                )
        topics = {
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
            "dead_letter_topic": self.dead_letter_topic,
        }
        for name, topic in topics.items():
            _check_topic(name, topic)
        if len(set(topics.values())) != len(topics):
            raise ConfigError(f"input, output and dead-letter topics must differ: {topics}")
        if self.partitions < 1:
            raise ConfigError(f"partitions must be >= 1 (got {self.partitions})")
        if self.replication_factor < 1:
            raise ConfigError(f"replication_factor must be >= 1 (got {self.replication_factor})")
        if not 1024 <= self.max_frame_bytes <= 100_000_000:
            raise ConfigError(
                f"max_frame_bytes must be between 1024 and 100000000 (got {self.max_frame_bytes})"
            )
        for name in ("jpeg_quality", "min_jpeg_quality"):
            value = getattr(self, name)
            if not 1 <= value <= 100:
                raise ConfigError(f"{name} must be between 1 and 100 (got {value})")
        if self.min_frame_width < 16:
            raise ConfigError(f"min_frame_width must be >= 16 pixels (got {self.min_frame_width})")
        if self.min_jpeg_quality > self.jpeg_quality:
            raise ConfigError(
                f"min_jpeg_quality ({self.min_jpeg_quality}) must not exceed"
                f" jpeg_quality ({self.jpeg_quality})"
            )
        if self.starting_offsets not in STARTING_OFFSETS and not self.starting_offsets.startswith(
            "{"
        ):
            raise ConfigError(
                f"starting_offsets must be 'latest', 'earliest' or a JSON offsets object"
                f" (got {self.starting_offsets!r})"
            )
        if self.max_offsets_per_trigger is not None and self.max_offsets_per_trigger < 1:
            raise ConfigError(
                "max_offsets_per_trigger must be >= 1 or unset"
                f" (got {self.max_offsets_per_trigger})"
            )
        if self.freshness_policy not in FRESHNESS_POLICIES:
            raise ConfigError(
                f"freshness_policy must be one of {', '.join(FRESHNESS_POLICIES)}"
                f" (got {self.freshness_policy!r}; CAMSTREAM_FRESHNESS / --freshness)"
            )
        if self.max_frame_age_ms < 1:
            raise ConfigError(f"max_frame_age_ms must be >= 1 (got {self.max_frame_age_ms})")
        if self.opencv_threads < 0:
            raise ConfigError(f"opencv_threads must be >= 0 (got {self.opencv_threads})")
        if not 0 < self.station_port < 65536:
            raise ConfigError(f"station_port must be 1-65535 (got {self.station_port})")
        if self.station_stale_s <= 0:
            raise ConfigError(f"station_stale_s must be > 0 (got {self.station_stale_s})")
        if self.station_forget_after_s < self.station_stale_s:
            raise ConfigError(
                f"station_forget_after_s ({self.station_forget_after_s}) must not be below"
                f" station_stale_s ({self.station_stale_s})"
            )
        for origin in _csv(self.station_allowed_origins):
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ConfigError(
                    f"allowed origin {origin!r} is not scheme://host[:port]"
                    " (CAMSTREAM_STATION_ALLOWED_ORIGINS), e.g. https://wall.example.com"
                )
        self._validate_security()
        self.detection.validate()
        return self

    def _validate_security(self) -> None:
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"security protocol {protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
                " (KAFKA_SECURITY_PROTOCOL)"
            )
        extra = dict(self.kafka_properties)
        if protocol.startswith("SASL_"):
            if mechanism not in SASL_MECHANISMS:
                raise ConfigError(
                    f"{protocol} needs KAFKA_SASL_MECHANISM, one of {', '.join(SASL_MECHANISMS)}"
                    f" (got {mechanism!r})"
                )
            has_jaas = "sasl.jaas.config" in extra or "kafka.sasl.jaas.config" in extra
            if not has_jaas and not (self.sasl_username and self.sasl_password):
                raise ConfigError(
                    f"{protocol} needs credentials: set KAFKA_SASL_USERNAME and"
                    " KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE, a file holding it)"
                )
        elif mechanism or self.sasl_username:
            raise ConfigError(
                f"SASL settings are given but KAFKA_SECURITY_PROTOCOL is {protocol}:"
                " use SASL_SSL (or SASL_PLAINTEXT on a trusted network)"
            )
        if self.ssl_ca_file:
            if "SSL" not in protocol:
                raise ConfigError(
                    f"KAFKA_SSL_CA_FILE is set but KAFKA_SECURITY_PROTOCOL is {protocol}:"
                    " use SSL or SASL_SSL"
                )
            if not Path(self.ssl_ca_file).is_file():
                raise ConfigError(f"KAFKA_SSL_CA_FILE {self.ssl_ca_file!r} is not a readable file")

    # ---- derived values -----------------------------------------------------------------
    @property
    def station_allowed_host_names(self) -> tuple[str, ...]:
        return tuple(host.lower() for host in _csv(self.station_allowed_hosts))

    @property
    def station_allowed_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.lower().rstrip("/") for origin in _csv(self.station_allowed_origins))

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def skip_frames_older_than_ms(self) -> int | None:
        """The age past which the job skips detection: only under the `latest` policy."""
        return self.max_frame_age_ms if self.freshness_policy == "latest" else None

    @property
    def client_properties(self) -> tuple[tuple[str, str], ...]:
        """Kafka client properties (the Java client's names) for the security settings.

        Spark passes them to its Kafka source and sink as `kafka.*` options; the Python
        clients map them to kafka-python's settings (`kafka_io.security_settings`).
        """
        props: dict[str, str] = {}
        if self.security_protocol != "PLAINTEXT":
            props["security.protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL_") and self.sasl_username:
            module = SASL_MECHANISMS[self.sasl_mechanism]
            props["sasl.mechanism"] = self.sasl_mechanism
            props["sasl.jaas.config"] = (
                f'{module} required username="{_jaas_quote(self.sasl_username)}"'
                f' password="{_jaas_quote(self.sasl_password)}";'
            )
        elif self.sasl_mechanism:
            props["sasl.mechanism"] = self.sasl_mechanism
        if self.ssl_ca_file:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(Path(self.ssl_ca_file).resolve())
        props.update((name.removeprefix("kafka."), value) for name, value in self.kafka_properties)
        return tuple(props.items())

    def record_settings(
        self, output_max_bytes: int = 1_048_588, dead_letter_max_bytes: int = 1_048_588
    ) -> RecordSettings:
        """The per-record function's settings, with the topics' size limits as read at start."""
        return RecordSettings(
            detection=self.detection,
            jpeg_quality=self.jpeg_quality,
            min_jpeg_quality=self.min_jpeg_quality,
            min_frame_width=self.min_frame_width,
            max_frame_bytes=self.max_frame_bytes,
            max_age_ms=self.skip_frames_older_than_ms,
            output_max_bytes=output_max_bytes,
            dead_letter_max_bytes=dead_letter_max_bytes,
        )

    @property
    def checkpoint_path(self) -> str:
        """Where the Spark job keeps its offsets; one folder per input/output pair."""
        if self.checkpoint_location:
            return self.checkpoint_location
        return str(self.home_path / "checkpoints" / f"{self.input_topic}--{self.output_topic}")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _check_topic(name: str, topic: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not topic or len(topic) > 249 or not set(topic) <= allowed or topic in (".", ".."):
        raise ConfigError(
            f"{name} {topic!r} is not a valid Kafka topic name"
            " (1-249 characters of letters, digits, '.', '_' and '-')"
        )


# CAMSTREAM_* variables read outside Config (by the tools that need them).
OTHER_VARIABLES = frozenset({"CAMSTREAM_CACHE", "CAMSTREAM_SPARK_UI", "CAMSTREAM_SPARK_LOG_LEVEL"})


def _check_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt CAMSTREAM_ variable would be ignored silently: fail and suggest instead."""
    import difflib

    known = set(ENV_VARS.values()) | OTHER_VARIABLES
    for var in sorted(env):
        if var.startswith("CAMSTREAM_") and var not in known:
            close = difflib.get_close_matches(var, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(
                f"unknown setting {var}{hint} (every setting is listed in the README)"
            )


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# Read into `sasl_password` when KAFKA_SASL_PASSWORD is not set (Docker/Kubernetes secrets).
PASSWORD_FILE_VAR = "KAFKA_SASL_PASSWORD_FILE"

# Setting name -> environment variable.
ENV_VARS: dict[str, str] = {
    "bootstrap_servers": "KAFKA_BOOTSTRAP",
    "input_topic": "CAMSTREAM_INPUT_TOPIC",
    "output_topic": "CAMSTREAM_OUTPUT_TOPIC",
    "dead_letter_topic": "CAMSTREAM_DLQ_TOPIC",
    "partitions": "CAMSTREAM_PARTITIONS",
    "replication_factor": "CAMSTREAM_REPLICATION_FACTOR",
    "max_frame_bytes": "CAMSTREAM_MAX_FRAME_BYTES",
    "jpeg_quality": "CAMSTREAM_JPEG_QUALITY",
    "min_jpeg_quality": "CAMSTREAM_MIN_JPEG_QUALITY",
    "min_frame_width": "CAMSTREAM_MIN_FRAME_WIDTH",
    "master": "CAMSTREAM_SPARK_MASTER",
    "checkpoint_location": "CAMSTREAM_CHECKPOINT_LOCATION",
    "starting_offsets": "CAMSTREAM_STARTING_OFFSETS",
    "trigger_interval": "CAMSTREAM_TRIGGER_INTERVAL",
    "max_offsets_per_trigger": "CAMSTREAM_MAX_OFFSETS_PER_TRIGGER",
    "detection_preset": "CAMSTREAM_DETECTION_PRESET",
    "freshness_policy": "CAMSTREAM_FRESHNESS",
    "max_frame_age_ms": "CAMSTREAM_MAX_FRAME_AGE_MS",
    "opencv_threads": "CAMSTREAM_OPENCV_THREADS",
    "async_progress": "CAMSTREAM_ASYNC_PROGRESS",
    "home": "CAMSTREAM_HOME",
    "station_host": "CAMSTREAM_STATION_HOST",
    "station_port": "CAMSTREAM_STATION_PORT",
    "station_token": "CAMSTREAM_STATION_TOKEN",
    "station_stale_s": "CAMSTREAM_STATION_STALE_S",
    "station_forget_after_s": "CAMSTREAM_STATION_FORGET_AFTER_S",
    "station_allowed_hosts": "CAMSTREAM_STATION_ALLOWED_HOSTS",
    "station_allowed_origins": "CAMSTREAM_STATION_ALLOWED_ORIGINS",
    "station_insecure_no_token": "CAMSTREAM_STATION_INSECURE_NO_TOKEN",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_ca_file": "KAFKA_SSL_CA_FILE",
}


def _parse(name: str, var: str, raw: str) -> Any:
    """Convert an environment string to the field's type, naming the variable on failure."""
    field_type = {f.name: f.type for f in dataclasses.fields(Config)}[name]
    if field_type in ("int", "int | None"):
        if field_type == "int | None" and raw.strip().lower() in ("none", "unlimited"):
            return None
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a whole number") from None
    if field_type == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}={raw!r} is not true or false")
    if field_type == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a number") from None
    return raw
