"""One frozen configuration object for every component, declared once.

Each field of `Config` is a setting, and its name is the only one it has: the environment
variable is the name in capitals (`CAMSTREAM_` in front, except for the `kafka_` settings,
whose variables start with `KAFKA_`), and the command-line option is the name with dashes.
`dead_letter_topic` is `CAMSTREAM_DEAD_LETTER_TOPIC` and `--dead-letter-topic`;
`kafka_bootstrap` is `KAFKA_BOOTSTRAP` and `--kafka-bootstrap`. Types come from the field
annotations; ranges, choices and help text from the field's `Setting`.

Values come from (lowest to highest precedence) the defaults, the environment
(`Config.from_env()`) and explicit overrides such as CLI options (`cfg.replace(...)`).
Every value is validated once, here: a wrong setting fails fast with a message that names
its variable and option, and an unknown `CAMSTREAM_` variable (a typo) fails too.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camstream.core.settings import (
    DETECTION_PRESETS,
    DetectionSettings,
    MotionSettings,
    RecordSettings,
)
from camstream.errors import ConfigError
from camstream.kafka.security import (
    JAAS_PROPERTY,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    KafkaSecurity,
)

__all__ = ["DETECTION_PRESETS", "Config", "ConfigError", "DetectionSettings", "RecordSettings"]


@dataclass(frozen=True)
class Setting:
    """How a field is read, checked and shown."""

    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # Returns what is wrong with a value, or None.
    check: Callable[[Any], str | None] | None = None
    # Secrets come from the environment only: a command line shows in `ps`.
    secret: bool = False
    # Values no longer taken, each with what to set instead: refused with that said.
    removed: tuple[tuple[str, str], ...] = ()

    @property
    def flag(self) -> bool:
        return not self.secret

    def removed_problem(self, value: Any) -> str | None:
        """What to set instead, if `value` is one no longer taken."""
        for old, instead in self.removed:
            if value == old:
                return f"{old!r} is no longer taken, {instead}"
        return None


def setting(default: Any = dataclasses.MISSING, help: str = "", **options: Any) -> Any:
    """A field of `Config` that is a setting (environment variable and CLI option)."""
    factory = options.pop("factory", None)
    meta = Setting(help, **options)
    kwargs: dict[str, Any] = {"metadata": {"setting": meta}, "repr": not meta.secret}
    if factory is not None:
        kwargs["default_factory"] = factory
    else:
        kwargs["default"] = default
    return field(**kwargs)


def _bootstrap_problem(value: str) -> str | None:
    if not value.strip():
        return "is empty"
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return f"has {server!r}: expected HOST:PORT[,HOST:PORT...]"
    return None


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _topic_problem(topic: str) -> str | None:
    if not topic or len(topic) > 249 or not set(topic) <= _TOPIC_CHARS or topic in (".", ".."):
        return (
            f"{topic!r} is not a valid Kafka topic name"
            " (1-249 characters of letters, digits, '.', '_' and '-')"
        )
    return None


def _offsets_problem(value: str) -> str | None:
    if value in ("latest", "earliest") or value.startswith("{"):
        return None
    return f"must be 'latest', 'earliest' or a JSON offsets object (got {value!r})"


# Spark's interval strings: "0 seconds", "250 milliseconds", "1 minute 30 seconds", "5s".
_INTERVAL = r"\s*(?:interval\s+)?(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+"
_TRIGGER = re.compile(rf"(?:{_INTERVAL})|realtime(?::{_INTERVAL})?", re.IGNORECASE)


def _trigger_problem(value: str) -> str | None:
    if _TRIGGER.fullmatch(value.strip()):
        return None
    if value.strip().lower().startswith("continuous"):
        return (
            "'continuous' was removed in 0.3: Spark's Real-time Mode ('realtime') has a tenth"
            " of its latency at more capacity (docs/performance.md)"
        )
    return (
        f"must be an interval ('0 seconds', '10 seconds') or 'realtime[:<interval>]'"
        f" (got {value!r})"
    )


def _origins_problem(value: str) -> str | None:
    for origin in _csv(value):
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            return f"has {origin!r}: expected scheme://host[:port], e.g. https://wall.example.com"
    return None


def _retention_bytes_problem(value: int) -> str | None:
    if value != -1 and value < 1024 * 1024:
        return f"is {value}: expected -1 (no limit) or at least 1048576 (1 MiB)"
    return None


def _properties_problem(value: tuple[tuple[str, str], ...]) -> str | None:
    for name, _ in value:
        if not name or " " in name:
            return f"has a bad property name {name!r}"
    return None


@dataclass(frozen=True)
class Config:
    """Settings shared by the cameras, the Spark job, the viewers and the local tools."""

    # ---- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap: str = setting(
        "localhost:9092", "Kafka bootstrap servers, HOST:PORT[,...]", check=_bootstrap_problem
    )
    input_topic: str = setting(
        "camera-stream", "topic of the cameras' frames", check=_topic_problem
    )
    output_topic: str = setting(
        "camera-analytics-stream", "topic of the annotated frames", check=_topic_problem
    )
    dead_letter_topic: str = setting(
        "camera-stream-dlq", "topic of the records the job could not process", check=_topic_problem
    )
    events_topic: str = setting(
        "camera-detections",
        "topic of the detection events (JSON, one per frame with faces)",
        check=_topic_problem,
    )
    partitions: int = setting(4, "partitions of the topics camstream creates", minimum=1)
    replication_factor: int = setting(
        1, "replicas of the topics camstream creates (3 on a cluster)", minimum=1
    )
    # The output and events topics are the recorder that replay and clips read back.
    recording_hours: float = setting(
        1.0,
        "hours the output and events topics camstream creates keep (retention.ms): how far"
        " back replay and clips reach",
        minimum=0.01,
    )
    recording_partition_bytes: int = setting(
        1024**3,
        "bytes each partition of the output topic camstream creates keeps (retention.bytes;"
        " -1: no limit), whichever of the two is reached first",
        check=_retention_bytes_problem,
    )
    kafka_connect_timeout_s: float = setting(
        10.0,
        "how long a client waits for Kafka's first answer before it says Kafka cannot be reached",
        minimum=0.5,
        maximum=600.0,
    )
    kafka_security_protocol: str = setting(
        "PLAINTEXT", "how clients talk to Kafka", choices=SECURITY_PROTOCOLS
    )
    kafka_sasl_mechanism: str = setting(
        "", "SASL mechanism with a SASL_ protocol", choices=("", *SASL_MECHANISMS)
    )
    kafka_sasl_username: str = setting("", "SASL user name")
    kafka_sasl_password: str = setting("", "SASL password (environment only)", secret=True)
    kafka_sasl_password_file: str = setting(
        "", "a file holding the SASL password (Docker and Kubernetes secrets)"
    )
    # PEM file of the CA(s) that signed the brokers' certificates (empty: the system's).
    kafka_ssl_ca_file: str = setting(
        "", "PEM file of the CAs that signed the brokers' certificates"
    )
    # Extra client properties in the Java client's names, `name=value;name=value`; they win
    # over the settings above. Secret: they may hold a ready-made sasl.jaas.config.
    kafka_properties: tuple[tuple[str, str], ...] = setting(
        (),
        "extra Kafka client properties, name=value;name=value",
        secret=True,
        check=_properties_problem,
    )

    # ---- frames ----------------------------------------------------------------------------
    # Below the broker's default message.max.bytes (1 MiB) with room for headers.
    max_frame_bytes: int = setting(
        1_000_000, "largest JPEG a frame may be", minimum=1024, maximum=100_000_000
    )
    jpeg_quality: int = setting(
        80, "JPEG quality of frames and annotated frames", minimum=1, maximum=100
    )
    min_jpeg_quality: int = setting(
        40, "lowest JPEG quality to fit a frame in its size limit", minimum=1, maximum=100
    )
    min_frame_width: int = setting(
        320, "narrowest a frame may be shrunk to fit its size limit", minimum=16
    )

    # ---- the Spark job ---------------------------------------------------------------------
    spark_master: str = setting(
        "local[*]",
        "Spark master URL (a local one runs as local[N,4]: a task whose Python worker dies is"
        " retried, as on a cluster, unless it names its own attempts)",
    )
    checkpoint_location: str = setting(
        "", "the job's checkpoint folder (empty: under CAMSTREAM_HOME)"
    )
    starting_offsets: str = setting(
        "latest",
        "where a new query starts: latest, earliest or JSON; where a new worker group starts:"
        " latest or earliest",
        check=_offsets_problem,
    )
    trigger_interval: str = setting(
        "0 seconds",
        "micro-batch trigger interval; 'realtime[:<checkpoint interval>]' for Spark's Real-time"
        " Mode through the Java per-record function (tens of ms; default checkpoints every"
        " 60 seconds; needs a Spark core per Kafka partition)",
        check=_trigger_problem,
    )
    max_offsets_per_trigger: int | None = setting(
        1000,
        "frames per micro-batch at most (unlimited: no limit); with freshness live, at most 200",
        minimum=1,
    )
    detection_preset: str = setting(
        "faithful",
        "detection settings: faithful is the 2018 demo's detector call for call, equalized adds"
        " histogram equalisation and a 30-px minimum face, fast detects on a 320-px-wide copy"
        " (with many mostly still cameras, add the motion gate)",
        choices=tuple(DETECTION_PRESETS),
        # It also switched the motion gate on: a preset now sets detection only.
        removed=(
            (
                "fast-gated",
                "as a preset sets detection only: for the fast detector behind the motion gate,"
                " use CAMSTREAM_DETECTION_PRESET=fast CAMSTREAM_MOTION_GATE=1"
                " (--detection-preset fast --motion-gate)",
            ),
        ),
    )
    motion_gate: bool = setting(
        False,
        "run the detector on a camera's frame only when its scene moved since its last"
        " analysed frame; else carry that frame's boxes (marked carried_from_seq)",
    )
    motion_keyframe_s: float = setting(
        60.0,
        "with the motion gate: a full detection per camera at least this often",
        minimum=0.001,
    )
    motion_pixel_threshold: int = setting(
        25,
        "with the motion gate: grey levels a thumbnail pixel must change by to count as moved",
        minimum=0,
        maximum=254,
    )
    motion_min_changed: float = setting(
        0.001,
        "with the motion gate: share of thumbnail pixels that must move to analyse a frame",
        minimum=0.0,
        maximum=0.999,
    )
    motion_regions: bool = setting(
        True,
        "with the motion gate: on a frame that moved, detect on the moving regions only and"
        " keep the camera's boxes outside them",
    )
    motion_forget_s: float = setting(
        300.0,
        "with the motion gate: a camera silent this long is forgotten (bounded state)",
        minimum=0.001,
    )
    # `live` stays live past capacity: frames older than max_frame_age_ms by their turn go
    # out unanalysed (marked `skipped`, counted), round robin over cameras, none starved.
    # Under capacity nothing is skipped. `all` analyses every frame however late (backfills).
    # `latest` is the name of `live` before 0.5.
    freshness: str = setting(
        "live",
        "live: past capacity, skip detection of frames too old (round robin over the"
        " cameras, newest first, none starved); all: analyse every frame however late"
        " (backfills)",
        choices=("live", "all", "latest"),
    )
    max_frame_age_ms: int = setting(
        1000,
        "with freshness live: frames older than this by their turn skip detection",
        minimum=1,
    )
    max_frame_lag_ms: int = setting(
        5000,
        "with freshness live: under capacity every frame is analysed, unless it waited"
        " longer than this by its turn: then the job counts as past capacity and sheds",
        minimum=1,
    )
    analysis_budget_ms: int = setting(
        400,
        "with freshness live: past capacity, the time a micro-batch spends analysing, shared"
        " by its cameras (newest frames first; the rest skip detection)",
        minimum=1,
    )
    min_analysis_interval_ms: int = setting(
        1500,
        "with freshness live: a camera gets a frame analysed at least this often (in its"
        " capture time), however late",
        minimum=1,
    )
    async_progress: bool = setting(
        False, "write micro-batch offsets to the checkpoint asynchronously (lower latency)"
    )
    opencv_threads: int = setting(
        1,
        "OpenCV threads per Python worker (Spark task or consumer-group worker) and per"
        " Real-time Mode executor (1: they already run one per core)",
        minimum=0,
    )
    frame_threads: int = setting(
        0,
        "threads per Spark task (or consumer-group worker) that analyse a batch's frames in"
        " parallel, in order (0: the machine's cores, at most 4)",
        minimum=0,
    )
    spark_ui: bool = setting(False, "Spark's web UI (it listens on every interface)")
    spark_log_level: str = setting(
        "WARN",
        "Spark's log level",
        choices=("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"),
    )

    # ---- the consumer-group workers (`camstream workers`) ----------------------------------
    worker_group: str = setting(
        "camstream-workers",
        "Kafka consumer group of the consumer-group workers (`camstream workers`): workers of"
        " one group share the input topic's partitions and its committed offsets",
        check=lambda value: None if value.strip() else "is empty",
    )
    worker_max_records: int = setting(
        200,
        "frames a consumer-group worker takes from Kafka per batch at most (its analysis,"
        " delivery and offset commit)",
        minimum=1,
        maximum=100_000,
    )

    # ---- the monitoring station ------------------------------------------------------------
    station_host: str = setting("127.0.0.1", "address the station listens on")
    station_port: int = setting(8080, "port the station listens on", minimum=1, maximum=65535)
    station_token: str = setting(
        "",
        "access token of the station (environment only); set it whenever it is exposed",
        secret=True,
    )
    station_stale_s: float = setting(
        5.0, "seconds without frames before a camera shows as stale", minimum=0.001
    )
    station_forget_after_s: float = setting(
        1800.0, "seconds without frames before a camera is dropped from the station", minimum=0.001
    )
    # A camera id is the sender's choice: memory follows these, not every id ever seen.
    station_max_cameras: int = setting(
        1024,
        "cameras the station (and the console viewers) keep; past it the least recently seen"
        " is dropped",
        minimum=1,
        maximum=1_000_000,
    )
    station_max_frame_memory: int = setting(
        256 * 1024 * 1024,
        "bytes of JPEG the station keeps over all cameras; past it the least recently updated"
        " cameras are dropped",
        minimum=1_000_000,
    )
    station_allowed_hosts: str = setting(
        "", "host names the station answers to without a token, besides loopback ones"
    )
    station_allowed_origins: str = setting(
        "", "other origins whose pages may open the station's WebSocket", check=_origins_problem
    )
    station_max_clients: int = setting(
        64,
        "browsers (WebSocket connections) the station serves at once; more are refused",
        minimum=1,
    )
    # Kafka's retention is the recorder: replay and clips read the output topic back.
    clip_before_s: float = setting(
        5.0,
        "seconds of frames before a detection in its event clip",
        minimum=0.0,
        maximum=600.0,
    )
    clip_after_s: float = setting(
        5.0,
        "seconds of frames after a detection in its event clip",
        minimum=0.0,
        maximum=600.0,
    )
    clip_max_s: float = setting(
        600.0,
        "longest clip the station or `camstream clip` writes, in seconds of capture time",
        minimum=1.0,
        maximum=86_400.0,
    )
    insecure_no_token: bool = setting(
        False,
        "let the station serve a non-loopback address without a token (anyone who can reach"
        " it sees every camera)",
    )

    # ---- local state -----------------------------------------------------------------------
    home: str = setting(
        factory=lambda: str(Path("~/.camstream").expanduser()),
        help="broker data and logs, checkpoints, component logs (default ~/.camstream)",
    )
    cache: str = setting(
        factory=lambda: os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "camstream"
        ),
        help="downloaded jars (default ~/.cache/camstream)",
    )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from environment variables, then apply the non-None `overrides`."""
        env = os.environ if env is None else env
        check_unknown_variables(env)
        values: dict[str, Any] = {}
        for name in SETTINGS:
            raw = env.get(env_var(name))
            if raw is not None and raw != "":
                values[name] = parse(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls._build(values)

    def replace(self, **overrides: Any) -> Config:
        """A copy with the non-None overrides applied and validated."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return self._build(values)

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Config:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        password_file = values.get("kafka_sasl_password_file")
        if password_file and not values.get("kafka_sasl_password"):
            try:
                values["kafka_sasl_password"] = Path(password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"KAFKA_SASL_PASSWORD_FILE={password_file!r} cannot be read: {exc.strerror}"
                ) from None
        return cls(**values).validate()

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> Config:
        for name, meta in SETTINGS.items():
            problem = _problem(meta, getattr(self, name))
            if problem:
                raise ConfigError(f"{name} {problem} ({env_var(name)}{_or_flag(name)})")
        topics = {name: getattr(self, name) for name in TOPIC_SETTINGS}
        if len(set(topics.values())) != len(topics):
            raise ConfigError(f"input, output, dead-letter and events topics must differ: {topics}")
        if self.min_jpeg_quality > self.jpeg_quality:
            raise ConfigError(
                f"min_jpeg_quality ({self.min_jpeg_quality}) must not exceed"
                f" jpeg_quality ({self.jpeg_quality})"
            )
        if self.station_forget_after_s < self.station_stale_s:
            raise ConfigError(
                f"station_forget_after_s ({self.station_forget_after_s}) must not be below"
                f" station_stale_s ({self.station_stale_s})"
            )
        self._validate_security()
        self.detection.validate()
        self.motion.validate()
        return self

    def _validate_security(self) -> None:
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        extra = dict(self.kafka_properties)
        if protocol.startswith("SASL_"):
            if not mechanism:
                raise ConfigError(
                    f"{protocol} needs KAFKA_SASL_MECHANISM, one of {', '.join(SASL_MECHANISMS)}"
                )
            if JAAS_PROPERTY not in extra and not (
                self.kafka_sasl_username and self.kafka_sasl_password
            ):
                raise ConfigError(
                    f"{protocol} needs credentials: set KAFKA_SASL_USERNAME and"
                    " KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE, a file holding it)"
                )
        elif mechanism or self.kafka_sasl_username:
            raise ConfigError(
                f"SASL settings are given but KAFKA_SECURITY_PROTOCOL is {protocol}:"
                " use SASL_SSL (or SASL_PLAINTEXT on a trusted network)"
            )
        if self.kafka_ssl_ca_file:
            if "SSL" not in protocol:
                raise ConfigError(
                    f"KAFKA_SSL_CA_FILE is set but KAFKA_SECURITY_PROTOCOL is {protocol}:"
                    " use SSL or SASL_SSL"
                )
            if not Path(self.kafka_ssl_ca_file).is_file():
                raise ConfigError(
                    f"KAFKA_SSL_CA_FILE {self.kafka_ssl_ca_file!r} is not a readable file"
                )

    # ---- derived values -----------------------------------------------------------------
    @property
    def detection(self) -> DetectionSettings:
        """The preset's detection settings."""
        return DETECTION_PRESETS[self.detection_preset]

    @property
    def motion(self) -> MotionSettings:
        """The motion gate's settings: on with CAMSTREAM_MOTION_GATE, whatever the preset."""
        return MotionSettings(
            enabled=self.motion_gate,
            keyframe_s=self.motion_keyframe_s,
            pixel_threshold=self.motion_pixel_threshold,
            min_changed=self.motion_min_changed,
            regions=self.motion_regions,
            forget_s=self.motion_forget_s,
        )

    @property
    def sheds_load(self) -> bool:
        """Past capacity, frames too old skip detection (the `live` policy)."""
        return self.freshness != "all"

    @property
    def pipeline_topics(self) -> list[str]:
        """The topics of the pipeline: the cameras', the job's three outputs."""
        return [self.input_topic, self.output_topic, self.dead_letter_topic, self.events_topic]

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache).expanduser()

    @property
    def station_allowed_host_names(self) -> tuple[str, ...]:
        return tuple(host.lower() for host in _csv(self.station_allowed_hosts))

    @property
    def station_allowed_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.lower().rstrip("/") for origin in _csv(self.station_allowed_origins))

    @property
    def checkpoint_path(self) -> str:
        """Where the Spark job keeps its offsets; one folder per input/output pair."""
        if self.checkpoint_location:
            return self.checkpoint_location
        return str(self.home_path / "checkpoints" / f"{self.input_topic}--{self.output_topic}")

    def record_settings(
        self,
        output_max_bytes: int | None = None,
        dead_letter_max_bytes: int | None = None,
        events_max_bytes: int | None = None,
        task_slots: int = 1,
    ) -> RecordSettings:
        """The per-record function's settings, with the topics' size limits as read at start
        (no events unless the events topic's limit is given). `task_slots`: how many tasks of
        a micro-batch run at once (they share its analysis budget)."""
        limits = {
            "output_max_bytes": output_max_bytes,
            "dead_letter_max_bytes": dead_letter_max_bytes,
        }
        return RecordSettings(
            detection=self.detection,
            jpeg_quality=self.jpeg_quality,
            min_jpeg_quality=self.min_jpeg_quality,
            min_frame_width=self.min_frame_width,
            max_frame_bytes=self.max_frame_bytes,
            max_age_ms=self.max_frame_age_ms if self.sheds_load else None,
            min_analysis_interval_ms=self.min_analysis_interval_ms if self.sheds_load else None,
            max_lag_ms=self.max_frame_lag_ms if self.sheds_load else None,
            batch_budget_ms=self.analysis_budget_ms if self.sheds_load else None,
            task_slots=max(1, task_slots),
            motion=self.motion,
            events_max_bytes=events_max_bytes,
            output_topic=self.output_topic,
            **{name: value for name, value in limits.items() if value is not None},
        )

    @property
    def kafka_security(self) -> KafkaSecurity:
        """The Kafka security settings, for each kind of client (`camstream.kafka.security`)."""
        return KafkaSecurity.from_config(self)


# ---- the table: names, types, parsing -----------------------------------------------------
SETTINGS: dict[str, Setting] = {
    f.name: f.metadata["setting"] for f in dataclasses.fields(Config) if "setting" in f.metadata
}
TOPIC_SETTINGS = ("input_topic", "output_topic", "dead_letter_topic", "events_topic")
_TYPES: dict[str, Any] = typing.get_type_hints(Config)

# Variables of earlier versions, to say what they are called now instead of ignoring them.
RENAMED_VARIABLES = {
    "CAMSTREAM_DLQ_TOPIC": "CAMSTREAM_DEAD_LETTER_TOPIC",
    "CAMSTREAM_STATION_INSECURE_NO_TOKEN": "CAMSTREAM_INSECURE_NO_TOKEN",
}


def env_var(name: str) -> str:
    """The environment variable of a setting: KAFKA_* for kafka_ settings, else CAMSTREAM_*."""
    return name.upper() if name.startswith("kafka_") else f"CAMSTREAM_{name.upper()}"


def flag(name: str) -> str:
    """The command-line option of a setting."""
    return "--" + name.replace("_", "-")


def _or_flag(name: str) -> str:
    return f" / {flag(name)}" if SETTINGS[name].flag else ""


def setting_type(name: str) -> Any:
    return _TYPES[name]


def parse(name: str, raw: str) -> Any:
    """A setting's value from text (an environment variable or a CLI option)."""
    kind = _TYPES[name]
    where = f"{env_var(name)}={raw!r}"
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if raw.strip().lower() in ("none", "unlimited"):
            return None
        (kind,) = [t for t in typing.get_args(kind) if t is not type(None)]
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} is not true or false")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{where} is not a whole number") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{where} is not a number") from None
    if typing.get_origin(kind) is tuple:  # name=value;name=value
        pairs = [item.partition("=") for item in raw.split(";") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(f"{env_var(name)} must be name=value;name=value")
        return tuple((key.strip(), value.strip()) for key, _, value in pairs)
    return raw


def _problem(meta: Setting, value: Any) -> str | None:
    if value is None:
        return None
    removed = meta.removed_problem(value)
    if removed:
        return removed
    if meta.choices and value not in meta.choices:
        shown = ", ".join(c or "(empty)" for c in meta.choices)
        return f"must be one of {shown} (got {value!r})"
    low, high = meta.minimum, meta.maximum
    if low is not None and high is not None and not low <= value <= high:
        return f"must be between {low:g} and {high:g} (got {value})"
    if low is not None and value < low:
        return f"must be >= {low:g} (got {value})"
    return meta.check(value) if meta.check else None


def check_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt CAMSTREAM_ variable would be ignored silently: fail and suggest instead."""
    known = {env_var(name) for name in SETTINGS}
    for var in sorted(env):
        if not var.startswith("CAMSTREAM_") or var in known:
            continue
        if var in RENAMED_VARIABLES:
            raise ConfigError(f"{var} is now called {RENAMED_VARIABLES[var]}: rename it")
        close = difflib.get_close_matches(var, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown setting {var}{hint} (docs/configuration.md lists them all)")


def secret_values(cfg: Config) -> list[str]:
    """The values of `cfg`'s secret settings (each of `kafka_properties`' too): what no log
    may show."""
    values: list[str] = []
    for item in dataclasses.fields(cfg):
        meta = item.metadata.get("setting")
        if meta is not None and meta.secret:
            value = getattr(cfg, item.name)
            values.extend([value] if isinstance(value, str) else (v for _, v in value))
    return [value for value in values if value]


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
