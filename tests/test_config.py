from __future__ import annotations

import pytest

from camstream.config import DETECTION_PRESETS, Config, ConfigError


def test_defaults_follow_the_frame_contract() -> None:
    cfg = Config.from_env(env={})
    assert cfg.bootstrap_servers == "localhost:9092"
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
    assert cfg.bootstrap_servers == "broker-a:9092,broker-b:9093"
    assert cfg.partitions == 12
    assert cfg.detection == DETECTION_PRESETS["fast"]
    assert cfg.max_offsets_per_trigger is None
    assert cfg.async_progress is True and cfg.freshness_policy == "latest"
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
        ({"CAMSTREAM_DETECTION_PRESET": "turbo"}, "unknown detection preset 'turbo'"),
        ({"CAMSTREAM_JPEG_QUALITY": "150"}, "jpeg_quality must be between 1 and 100"),
        ({"CAMSTREAM_STARTING_OFFSETS": "yesterday"}, "starting_offsets must be"),
        ({"CAMSTREAM_OUTPUT_TOPIC": "camera-stream"}, "must differ"),
        ({"CAMSTREAM_STATION_STALE_S": "soon"}, "CAMSTREAM_STATION_STALE_S='soon' is not a number"),
        ({"CAMSTREAM_STATION_PORT": "0"}, "station_port must be 1-65535"),
        ({"CAMSTREAM_ASYNC_PROGRESS": "maybe"}, "CAMSTREAM_ASYNC_PROGRESS='maybe' is not true"),
        ({"CAMSTREAM_FRESHNESS": "newest"}, "freshness_policy must be one of all, latest"),
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
