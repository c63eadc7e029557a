"""The job reads its topics' real size limits at start: it refuses limits no frame fits, and
starts on a dead-letter topic smaller than the input's records, saying what it will cut."""

from __future__ import annotations

import logging
import uuid

import pytest
from kafka.admin import NewTopic

from camstream.config import Config, ConfigError
from camstream.core.contract import DEAD_LETTER_HEADROOM_BYTES
from camstream.kafka.clients import REQUEST_HEADROOM_BYTES, make_admin
from camstream.kafka.topics import ensure_topics, topic_max_message_bytes
from camstream.spark.job import (
    kafka_sink_options,
    kafka_source_options,
    record_settings_for_topics,
)
from helpers import unique_topics


def topics_with_limits(bootstrap: str, tmp_path, **limits: int | None) -> Config:
    """A config whose input, output, dead-letter and events topics exist with the given limits
    (None: the broker's default), created here as someone else might have created them."""
    cfg = unique_topics(bootstrap, tmp_path)
    names = {
        "input": cfg.input_topic,
        "output": cfg.output_topic,
        "dlq": cfg.dead_letter_topic,
        "events": cfg.events_topic,
    }
    admin = make_admin(cfg)
    try:
        admin.create_topics(
            [
                NewTopic(
                    names[role],
                    1,
                    1,
                    topic_configs={}
                    if limits.get(role) is None
                    else {"max.message.bytes": str(limits[role])},
                )
                for role in names
            ],
            timeout_ms=30_000,
            wait_for_metadata=True,  # described right after: the topics must be known
        )
    finally:
        admin.close()
    return cfg


def test_the_limits_are_read_from_kafka_not_assumed(kafka_bootstrap: str, tmp_path) -> None:
    cfg = topics_with_limits(
        kafka_bootstrap, tmp_path, input=500_000, output=200_000, dlq=700_000, events=100_000
    )
    limits = topic_max_message_bytes(cfg, [cfg.input_topic, cfg.output_topic, "no-such-topic"])
    assert limits == {cfg.input_topic: 500_000, cfg.output_topic: 200_000, "no-such-topic": None}
    settings = record_settings_for_topics(cfg)
    assert settings.output_max_bytes == 200_000 and settings.dead_letter_max_bytes == 700_000
    assert settings.events_max_bytes == 100_000
    # The sink's client never refuses what a topic accepts.
    assert int(kafka_sink_options(cfg, settings)["kafka.max.request.size"]) >= 700_000


def test_a_dead_letter_topic_smaller_than_the_input_starts_and_says_what_it_cuts(
    kafka_bootstrap: str, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's dead-letter topic may be smaller than the input's records: the job
    starts anyway (such a dead letter leaves its value out) and says so in one WARN line."""
    cfg = topics_with_limits(kafka_bootstrap, tmp_path, input=1_000_000, dlq=900_000)
    with caplog.at_level(logging.WARNING, logger="camstream.spark.job"):
        settings = record_settings_for_topics(cfg)
    assert settings.dead_letter_max_bytes == 900_000
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert cfg.dead_letter_topic in warning and "without its value" in warning
    assert f"max.message.bytes to {1_000_000 + DEAD_LETTER_HEADROOM_BYTES}" in warning


def test_a_dead_letter_topic_the_job_makes_is_sized_from_the_input_topic_as_it_is(
    kafka_bootstrap: str, tmp_path
) -> None:
    """Only the input topic exists (the cameras' owner made it, larger than camstream would):
    the dead-letter topic the job makes takes every record it accepts, whole."""
    cfg = unique_topics(kafka_bootstrap, tmp_path)
    admin = make_admin(cfg)
    try:
        admin.create_topics(
            [NewTopic(cfg.input_topic, 1, 1, topic_configs={"max.message.bytes": "3000000"})],
            timeout_ms=30_000,
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    assert set(ensure_topics(cfg, cfg.pipeline_topics)) == set(cfg.pipeline_topics[1:])
    limits = topic_max_message_bytes(cfg, cfg.pipeline_topics)
    assert limits[cfg.dead_letter_topic] == 3_000_000 + DEAD_LETTER_HEADROOM_BYTES
    assert limits[cfg.output_topic] == cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES


def test_a_topic_too_small_for_frames_or_missing_refuses_to_start(
    kafka_bootstrap: str, tmp_path
) -> None:
    tiny = topics_with_limits(kafka_bootstrap, tmp_path, output=4096)
    with pytest.raises(ConfigError, match=r"output topic .* at most 4096 bytes"):
        record_settings_for_topics(tiny)
    missing = tiny.replace(dead_letter_topic=f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigError, match=r"cannot read max\.message\.bytes"):
        record_settings_for_topics(missing)


def test_topics_camstream_creates_fit_together(cfg: Config) -> None:
    limits = topic_max_message_bytes(cfg, [cfg.input_topic, cfg.dead_letter_topic])
    assert limits[cfg.input_topic] == cfg.max_frame_bytes + REQUEST_HEADROOM_BYTES
    assert limits[cfg.dead_letter_topic] == limits[cfg.input_topic] + DEAD_LETTER_HEADROOM_BYTES
    record_settings_for_topics(cfg)  # accepted as created


@pytest.mark.parametrize(
    ("freshness", "configured", "expected"),
    [("all", 1000, "1000"), ("all", None, None), ("live", 1000, "200"),
     ("live", None, "200"), ("live", 50, "50"), ("latest", 1000, "200")],
)  # fmt: skip
def test_batches_stay_small_under_the_live_policy(
    freshness: str, configured: int | None, expected: str | None
) -> None:
    cfg = Config(freshness=freshness, max_offsets_per_trigger=configured)
    assert kafka_source_options(cfg).get("maxOffsetsPerTrigger") == expected
