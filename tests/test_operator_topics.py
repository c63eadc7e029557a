"""The job on topics it did not make: all made beforehand with the broker's defaults, only the
input made (by the cameras' owner), or none; on camstream's local broker and on a broker with
Kafka's stock configuration (1,048,588-byte messages, auto-created topics). End to end on
each: frames in, annotated frames, events and a dead letter out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.admin import NewTopic

from camstream.config import Config
from camstream.core.contract import (
    DEAD_LETTER_HEADROOM_BYTES,
    AnnotatedFrame,
    DetectionEvent,
    FrameMeta,
    headers_to_dict,
)
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_admin, make_producer
from camstream.kafka.topics import topic_max_message_bytes
from camstream.spark.job import build_query
from camstream.workers import start_workers
from helpers import astronaut_bgr, consume_topics, unique_topics

pytestmark = pytest.mark.spark

CASES = ("all made", "input made", "none made")
# The consumer-group workers on someone else's topics too, the strictest case.
WORKERS_CASE = "all made, camstream workers"
FRAMES = 6
CAMERA = "cam-op"


def premake(cfg: Config, case: str) -> None:
    """Topics made as someone else makes them: the broker's defaults, 1 partition."""
    names = {
        "all made": cfg.pipeline_topics,
        "input made": [cfg.input_topic],
        "none made": [],
    }[case.split(",")[0]]
    if not names:
        return
    admin = make_admin(cfg)
    try:
        admin.create_topics(
            [NewTopic(name, 1, 1) for name in names], timeout_ms=30_000, wait_for_metadata=True
        )
    finally:
        admin.close()


def test_the_job_and_the_workers_run_unchanged_on_topics_made_by_someone_else(
    spark, any_kafka_bootstrap: str, tmp_path: Path
) -> None:
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    cfgs = {
        case: unique_topics(any_kafka_bootstrap, tmp_path / case.replace(" ", "-").replace(",", ""))
        for case in (*CASES, WORKERS_CASE)
    }
    oversized: dict[str, int] = {}
    for case, cfg in cfgs.items():
        premake(cfg, case)
    # Each creates what is missing.
    queries = [build_query(spark, cfg) for case, cfg in cfgs.items() if case in CASES]
    workers = start_workers(cfgs[WORKERS_CASE].replace(starting_offsets="earliest"), 1)
    try:
        for case, cfg in cfgs.items():
            input_limit = topic_max_message_bytes(cfg, [cfg.input_topic])[cfg.input_topic]
            assert input_limit is not None
            # As large as the input topic takes (over the job's 1,000,000-byte frame limit,
            # so dead-lettered), up to 1.5 MB.
            oversized[case] = min(input_limit, 1_500_000) - 400
            producer = make_producer(cfg.replace(max_frame_bytes=2_000_000))
            for seq in range(FRAMES):
                meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
                producer.send(
                    cfg.input_topic, key=CAMERA.encode(), value=jpeg, headers=meta.to_headers()
                )
                if seq == FRAMES // 2:
                    bad = FrameMeta(CAMERA, 999, time.time_ns(), 512, 512)
                    producer.send(
                        cfg.input_topic,
                        key=CAMERA.encode(),
                        value=b"\xff\xd8" + b"\x00" * (oversized[case] - 2),
                        headers=bad.to_headers(),
                    )
            producer.flush()
            producer.close()
        # Every case's output, events and dead letter, read at once (one consumer).
        read = consume_topics(
            next(iter(cfgs.values())),
            {
                topic: count
                for cfg in cfgs.values()
                for topic, count in (
                    (cfg.output_topic, FRAMES),
                    (cfg.events_topic, FRAMES),
                    (cfg.dead_letter_topic, 1),
                )
            },
            timeout_s=180,
        )
        for case, cfg in cfgs.items():
            out = read[cfg.output_topic]
            frames = [AnnotatedFrame.from_record(r.value, r.headers) for r in out]
            assert [f.seq for f in frames] == list(range(FRAMES)), case  # in order, once each
            assert all(f.faces >= 1 and f.skipped is None for f in frames), case
            # Each frame's detection event, in order, on the events topic as it was found.
            events = read[cfg.events_topic]
            parsed = [DetectionEvent.from_json(r.value) for r in events]
            assert [(e.seq, e.faces) for e in parsed] == [(f.seq, f.faces) for f in frames]
            (dead,) = read[cfg.dead_letter_topic]
            values = headers_to_dict(dead.headers)
            assert "over the 1000000-byte limit" in values["error"], case
            assert values["value_bytes"] == str(oversized[case])
            assert values["source_topic"] == cfg.input_topic and values["seq"] == "999"
            assert int(values["source_offset"]) == FRAMES // 2 + 1
            limits = topic_max_message_bytes(cfg, [cfg.input_topic, cfg.dead_letter_topic])
            if oversized[case] + DEAD_LETTER_HEADROOM_BYTES <= limits[cfg.dead_letter_topic]:
                assert dead.value is not None and len(dead.value) == oversized[case], case
            else:  # someone else's dead-letter topic, no larger than the input: cut, and said
                assert case.startswith("all made") and dead.value is None
                assert values["value_dropped"].startswith(f"{oversized[case]} bytes left out")
            if case == "input made":  # made by the job: sized from the input topic as it is
                assert limits[cfg.dead_letter_topic] == (
                    limits[cfg.input_topic] + DEAD_LETTER_HEADROOM_BYTES
                )
    finally:
        workers.stop()
        for query in queries:
            query.stop()
