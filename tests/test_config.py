from __future__ import annotations

import pytest

from camstream.config import DETECTION_PRESETS, Config, ConfigError


def test_defaults_follow_the_frame_contract() -> None:
    cfg = Config.from_env(env={})
    assert cfg.kafka_bootstrap == "localhost:9092"
    assert cfg.input_topic == "camera-stream"
    assert cfg.output_topic == "camera-analytics-stream"
    assert cfg.dead_letter_topic == "camera-stream-dlq"
    # The reference demo's detection settings are the default.
    assert cfg.detection_preset == "faithful"
    assert cfg.detection.cascade == "haarcascade_frontalface_alt.xml"
    assert cfg.detection.scale_factor == 1.1
    assert cfg.detection.min_neighbors == 5


def test_environment_and_overrides() -> None:
    env = {
        "KAFKA_BOOTSTRAP": "broker-a:9092,broker-b:9093",
        "CAMSTREAM_PARTITIONS": "12",
        "CAMSTREAM_DETECTION_PRESET": "fast",
        "CAMSTREAM_MAX_OFFSETS_PER_TRIGGER": "unlimited",
        "CAMSTREAM_ASYNC_PROGRESS": "true",
        "CAMSTREAM_FRESHNESS": "latest",
    }
    cfg = Config.from_env(env=env, input_topic="cams")
    assert cfg.kafka_bootstrap == "broker-a:9092,broker-b:9093"
    assert cfg.partitions == 12
    assert cfg.detection == DETECTION_PRESETS["fast"]
    assert cfg.max_offsets_per_trigger is None
    assert cfg.async_progress is True and cfg.freshness == "latest"
    assert cfg.input_topic == "cams"
    assert cfg.replace(partitions=3).partitions == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CAMSTREAM_PARTITIONS": "four"}, "CAMSTREAM_PARTITIONS='four' is not a whole number"),
        ({"CAMSTREAM_PARTITIONS": "0"}, "partitions must be >= 1"),
        ({"KAFKA_BOOTSTRAP": "localhost"}, "expected HOST:PORT"),
        ({"KAFKA_BOOTSTRAP": "localhost:99999"}, "expected HOST:PORT"),
        ({"CAMSTREAM_INPUT_TOPIC": "bad topic!"}, "not a valid Kafka topic name"),
        (
            {"CAMSTREAM_DETECTION_PRESET": "turbo"},
            "detection_preset must be one of faithful, equalized, fast",
        ),
        (
            {"CAMSTREAM_DETECTION_PRESET": "fast-gated"},
            "use CAMSTREAM_DETECTION_PRESET=fast CAMSTREAM_MOTION_GATE=1",
        ),
        ({"CAMSTREAM_JPEG_QUALITY": "150"}, "jpeg_quality must be between 1 and 100"),
        ({"CAMSTREAM_STARTING_OFFSETS": "yesterday"}, "starting_offsets must be"),
        ({"CAMSTREAM_OUTPUT_TOPIC": "camera-stream"}, "must differ"),
        ({"CAMSTREAM_STATION_STALE_S": "soon"}, "CAMSTREAM_STATION_STALE_S='soon' is not a number"),
        ({"CAMSTREAM_STATION_PORT": "0"}, "station_port must be between 1 and 65535"),
        ({"CAMSTREAM_ASYNC_PROGRESS": "maybe"}, "CAMSTREAM_ASYNC_PROGRESS='maybe' is not true"),
        ({"CAMSTREAM_TRIGGER_INTERVAL": "realtime:soon"}, ".got 'realtime:soon'"),
        ({"CAMSTREAM_TRIGGER_INTERVAL": "fast"}, "trigger_interval must be an interval"),
        ({"CAMSTREAM_TRIGGER_INTERVAL": "continuous"}, "'continuous' was removed in 0.3"),
        ({"CAMSTREAM_FRESHNESS": "newest"}, "freshness must be one of live, all, latest"),
        ({"CAMSTREAM_DLQ_TOPIC": "dlq"}, "CAMSTREAM_DLQ_TOPIC is now called CAMSTREAM_DEAD_LETTER"),
    ],
)
def test_bad_values_fail_fast_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        Config.from_env(env=env)


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.from_env(env={}, colour="blue")


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.partitions = 9  # type: ignore[misc]


def test_checkpoint_defaults_under_home(tmp_path) -> None:
    cfg = Config(home=str(tmp_path))
    assert cfg.checkpoint_path.startswith(str(tmp_path))
    assert Config(checkpoint_location="/data/ckpt").checkpoint_path == "/data/ckpt"


def test_misspelt_variable_fails_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="CAMSTREAM_PARTITION; did you mean CAMSTREAM_PARTITIONS"):
        Config.from_env({"CAMSTREAM_PARTITION": "8"})
    Config.from_env({"CAMSTREAM_CACHE": "/tmp/x"})  # read by deps.py, not by Config


def test_security_settings_are_checked_and_become_client_properties(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs KAFKA_SASL_MECHANISM"):
        Config.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match="needs credentials"):
        Config.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"})
    with pytest.raises(ConfigError, match="kafka_security_protocol must be one of"):
        Config.from_env({"KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(ConfigError, match=r"KAFKA_SSL_CA_FILE .* is not a readable file"):
        Config.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/no/ca.pem"})
    with pytest.raises(ConfigError, match=r"KAFKA_SASL_PASSWORD_FILE=.* cannot be read"):
        Config.from_env({"KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    secret = tmp_path / "password"
    secret.write_text('p"w\\d\n')
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = Config.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "app",
            "KAFKA_SASL_PASSWORD_FILE": str(secret),
            "KAFKA_SSL_CA_FILE": str(ca),
        }
    )
    assert cfg.kafka_sasl_password == 'p"w\\d' and 'p"w' not in repr(cfg)
    assert 'p"w' not in repr(cfg.kafka_security)
    options = cfg.kafka_security.spark_options()
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
        ' username="app" password="p\\"w\\\\d";'
    )
    assert options["kafka.ssl.truststore.type"] == "PEM"
    assert options["kafka.ssl.truststore.location"] == str(ca)
    assert cfg.kafka_security.java_properties() == {
        name.removeprefix("kafka."): value for name, value in options.items()
    }
    # The Python clients get the same credentials, straight from the settings.
    assert cfg.kafka_security.python_settings() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "app",
        "sasl_plain_password": 'p"w\\d',
        "ssl_cafile": str(ca),
    }


def test_a_ready_made_jaas_line_wins_and_the_python_clients_take_its_login() -> None:
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' username="ops" password="s3\\"cret";'
    )
    cfg = Config(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_properties=(("kafka.sasl.jaas.config", jaas),),
    )
    assert cfg.kafka_security.spark_options()["kafka.sasl.jaas.config"] == jaas
    settings = cfg.kafka_security.python_settings()
    assert settings["sasl_plain_username"] == "ops"
    assert settings["sasl_plain_password"] == 's3"cret'
    oauth = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
    cfg = cfg.replace(kafka_properties=(("sasl.jaas.config", oauth),))
    assert cfg.kafka_security.spark_options()["kafka.sasl.jaas.config"] == oauth
    with pytest.raises(ConfigError, match="take only a PLAIN or SCRAM login"):
        cfg.kafka_security.python_settings()


def test_the_motion_gate_is_its_own_setting_whatever_the_preset() -> None:
    assert not Config(detection_preset="fast").motion.enabled
    gated = Config(detection_preset="fast", motion_gate=True)
    assert gated.motion.enabled and gated.detection == DETECTION_PRESETS["fast"]
    assert Config(detection_preset="faithful", motion_gate=True).motion.enabled
    # The preset that once switched the gate on too is refused, saying what to set instead.
    with pytest.raises(ConfigError, match="--detection-preset fast --motion-gate"):
        Config(detection_preset="fast-gated").validate()
