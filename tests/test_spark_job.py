"""The Spark job in a real local Spark session, reading and writing a real broker."""

from __future__ import annotations

import time

import pytest

from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_producer
from camstream.spark.job import build_query
from helpers import astronaut_bgr, consume, observed_totals, wait_until

pytestmark = pytest.mark.spark


def test_bad_input_is_counted_and_dead_lettered_without_stopping_the_job(
    spark, cfg: Config
) -> None:
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    producer = make_producer(cfg)
    garbage = b"\x00garbage\x01" * 10
    plan = ["ok", "garbage", "ok", "empty", "ok", "ok"]
    for seq, kind in enumerate(plan):
        value = {"ok": jpeg, "garbage": garbage, "empty": b""}[kind]
        meta = FrameMeta("cam-a", seq, time.time_ns(), 512, 512)
        producer.send(cfg.input_topic, key=b"cam-a", value=value, headers=meta.to_headers())
    producer.flush()

    query = build_query(spark, cfg)
    try:
        out = consume(cfg, cfg.output_topic, 4, timeout_s=120)
        dead = consume(cfg, cfg.dead_letter_topic, 2, timeout_s=30)
        assert [headers_to_dict(r.headers)["seq"] for r in out] == ["0", "2", "4", "5"]
        assert all(headers_to_dict(r.headers)["faces"] == "1" for r in out)
        reasons = {
            headers_to_dict(r.headers)["seq"]: headers_to_dict(r.headers)["error"] for r in dead
        }
        assert reasons == {
            "1": "FrameError: value is not a JPEG (missing FF D8 FF start marker)",
            "3": "FrameError: empty frame value",
        }
        # Dead letters keep the original key and value.
        assert {r.key for r in dead} == {b"cam-a"}
        assert sorted(len(r.value or b"") for r in dead) == [0, len(garbage)]
        totals = wait_until(
            lambda: (t := observed_totals(query)).get("frames_in", 0) >= 6 and t,
            timeout_s=30,
            what="observed metrics",
        )
        assert totals["frames_ok"] == 4 and totals["frames_dead_lettered"] == 2
        assert totals["faces"] == 4

        # The job is still running and processes the frames that come after.
        assert query.isActive and query.exception() is None
        meta = FrameMeta("cam-a", len(plan), time.time_ns(), 512, 512)
        producer.send(cfg.input_topic, key=b"cam-a", value=jpeg, headers=meta.to_headers())
        producer.flush()
        later = consume(cfg, cfg.output_topic, 5, timeout_s=60)
        assert headers_to_dict(later[-1].headers)["seq"] == str(len(plan))
    finally:
        producer.close()
        query.stop()


def test_a_failed_query_ends_the_command_with_its_root_cause_in_one_line(
    cfg: Config, tmp_path
) -> None:
    """Kafka refuses every record (a client limit far below a frame): the query dies. The
    command ends with Kafka's own reason on its last line and exit code 6, not a plan."""
    import os
    import subprocess
    import sys

    producer = make_producer(cfg)
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    meta = FrameMeta("cam-x", 0, time.time_ns(), 512, 512)
    producer.send(cfg.input_topic, key=b"cam-x", value=jpeg, headers=meta.to_headers())
    producer.flush()
    producer.close()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        "CAMSTREAM_HOME": cfg.home,
        "KAFKA_PROPERTIES": "max.request.size=5000",
    }
    done = subprocess.run(
        [sys.executable, "-m", "camstream", "analyze", "--spark-master", "local[1]",
         "--input-topic", cfg.input_topic, "--output-topic", cfg.output_topic,
         "--dead-letter-topic", cfg.dead_letter_topic,
         "--events-topic", cfg.events_topic, "--starting-offsets", "earliest",
         "--checkpoint-location", str(tmp_path / "checkpoint")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 6, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("camstream: error: the query stopped: Kafka refused:"), last
    assert "RecordTooLargeException" in last and "max.request.size" in last
    assert "Traceback" not in last and "Plan" not in last


def test_the_motion_gate_in_the_job_carries_still_scenes_and_writes_events(
    spark, kafka_bootstrap: str, tmp_path
) -> None:
    """Two cameras of the labelled still scenes through the real query with the gate: the
    frames where people moved are analysed, the still ones carried (marked, counted in the
    batch metrics), every face found, and every frame with faces has its event."""
    import sys
    from pathlib import Path

    from camstream.cameras.still_scenes import clip_named, labels
    from camstream.core.contract import AnnotatedFrame, DetectionEvent
    from helpers import config_with_topics

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from gating import clip_records, iou

    cfg = config_with_topics(
        kafka_bootstrap,
        tmp_path,
        partitions=2,
        detection_preset="fast",
        motion_gate=True,
        max_offsets_per_trigger=25,
    )
    clips = {"cam-lobby": "lobby", "cam-guard": "gravel-guard"}
    producer = make_producer(cfg)
    for camera_id, clip in clips.items():
        for key, value, headers in clip_records(clip, camera_id):
            producer.send(cfg.input_topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()
    query = build_query(spark, cfg)
    try:
        records = consume(cfg, cfg.output_topic, 120, timeout_s=180)
        frames = [AnnotatedFrame.from_record(r.value, r.headers) for r in records]
        with_faces = [f for f in frames if f.faces]
        events = [
            DetectionEvent.from_json(r.value)
            for r in consume(cfg, cfg.events_topic, len(with_faces), timeout_s=60)
        ]
        totals = wait_until(
            lambda: (t := observed_totals(query)).get("frames_in", 0) >= 120 and t,
            timeout_s=30,
            what="observed metrics",
        )
    finally:
        query.stop()
    assert totals["frames_gated"] + totals["frames_analysed"] == 120 == totals["frames_ok"]
    assert totals["frames_gated"] == sum(f.carried_from_seq is not None for f in frames) >= 80
    assert totals["events"] == len(with_faces)
    for camera_id, clip in clips.items():
        mine = [f for f in frames if f.camera_id == camera_id]
        assert [f.seq for f in mine] == list(range(60))  # in order, each once
        truth = labels(clip_named(clip))
        analysed: dict[int, AnnotatedFrame] = {}
        for frame, label in zip(mine, truth, strict=True):
            if label["moved"]:
                assert frame.carried_from_seq is None, (camera_id, frame.seq)
            if frame.carried_from_seq is None:
                analysed[frame.seq] = frame
                continue
            # Carried from an earlier analysed frame of the camera, younger than a keyframe
            # interval, with its boxes. (Each Python worker keeps its own models: the frames
            # of a partition that moved between workers may be carried from a frame before
            # the latest one analysed, which looks the same.)
            source = analysed[frame.carried_from_seq]
            assert frame.capture_ts_ns - source.capture_ts_ns < cfg.motion_keyframe_s * 1e9
            assert frame.boxes_xyxy == source.boxes_xyxy
    # The gate loses no face the detector finds on these scenes (fast preset, IoU >= 0.5).
    found = sum(
        any(iou(face, box) >= 0.5 for box in frame.boxes_xyxy)
        for camera_id, clip in clips.items()
        for frame, label in zip(
            [f for f in frames if f.camera_id == camera_id], labels(clip_named(clip)), strict=True
        )
        for face in label["faces"]
    )
    assert found >= 80
    assert [(e.camera_id, e.seq, e.carried) for e in events] == [
        (f.camera_id, f.seq, f.carried_from_seq is not None) for f in with_faces
    ] or sorted((e.camera_id, e.seq) for e in events) == sorted(
        (f.camera_id, f.seq) for f in with_faces
    )
    assert any(e.carried for e in events) and any(not e.carried for e in events)


def test_real_time_mode_refuses_the_motion_gate(spark, cfg: Config) -> None:
    from camstream.errors import ConfigError

    gated = cfg.replace(trigger_interval="realtime", motion_gate=True)
    with pytest.raises(ConfigError, match="motion gate"):
        build_query(spark, gated)
