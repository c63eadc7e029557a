"""Kafka's retention as the recorder: a camera's frames and detections read back by time,
from a real broker, with records written in a recorded past (Kafka timestamps after their
capture times, as the job writes them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

from camstream.config import Config
from camstream.kafka.clients import make_admin
from camstream.kafka.recorder import (
    camera_partition,
    detection_recording,
    frame_recording,
)
from camstream.kafka.topics import ensure_topics
from helpers import end_offsets
from station_helpers import AnnotatedFramePublisher, record_past

NO_FACE = 35  # a sample frame without a face
FPS = 4
INTERVAL_NS = 1_000_000_000 // FPS


def test_camera_partition_is_kafkas_default_partitioner() -> None:
    """Kafka's own murmur2 vectors (UtilsTest.testMurmur2), as partitions of a topic."""
    for key, java_hash in (("21", -973932308), ("foobar", -790332482), ("abc", 479470107),
                           ("a-little-bit-long-string", -985981536)):  # fmt: skip
        for partitions in (1, 3, 7, 12):
            assert camera_partition(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


@pytest.fixture
def recorded(cfg: Config) -> tuple[Config, dict[str, list[int]], int]:
    """Two cameras' frames over 60 s of a past minute at 4 frames/s, on a 3-partition
    topic (cam-b every 5th frame with a face); (config, capture times per camera, start)."""
    cfg = cfg.replace(
        output_topic=cfg.output_topic + "-rec", events_topic=cfg.events_topic + "-rec"
    )
    ensure_topics(cfg, [cfg.output_topic, cfg.events_topic], partitions=3)
    publisher = AnnotatedFramePublisher(cfg)
    start_ns = time.time_ns() - 10 * 60 * 1_000_000_000
    try:
        for index in range(60 * FPS):
            capture_ns = start_ns + index * INTERVAL_NS
            publisher.send("cam-a", NO_FACE, capture_ns=capture_ns)
            publisher.send("cam-b", 0 if index % 5 == 0 else NO_FACE, capture_ns=capture_ns + 7)
        publisher.flush()
    finally:
        publisher.close()
    return cfg, publisher.captured_ns, start_ns


def test_a_seek_lands_on_the_first_frame_captured_at_or_after_the_moment(recorded) -> None:
    cfg, captured, start_ns = recorded
    for camera in ("cam-a", "cam-b"):
        with frame_recording(cfg, camera) as recording:
            for seconds in (0.0, 0.6, 12.3, 30.0, 59.7):  # 0.6: read from the oldest record
                moment = start_ns + int(seconds * 1e9)
                landed = recording.seek(moment)
                expected = min(t for t in captured[camera] if t >= moment)
                assert landed.first is not None
                # Older than the camera's first frame: it says so (cam-b's is 7 ns after start).
                assert landed.before_retention == (moment < captured[camera][0])
                assert landed.first.camera_id == camera
                assert landed.first.capture_ts_ns == expected
                # And on from there, in order, every frame of the camera.
                following = [
                    f.capture_ts_ns for f in recording.follow(end_offset=recording.end_offset())
                ]
                assert following == [t for t in captured[camera] if t > expected]
            # After the last frame: nothing yet (a replay would then be live).
            assert recording.seek(start_ns + 61 * 1_000_000_000).first is None


def test_frames_between_two_times_are_exactly_those_captured_then(recorded) -> None:
    cfg, captured, start_ns = recorded
    from_ns, to_ns = start_ns + 20 * 1_000_000_000, start_ns + 40 * 1_000_000_000
    with frame_recording(cfg, "cam-b") as recording:
        landed, frames = recording.between(from_ns, to_ns)
        got = [(f.seq, f.capture_ts_ns) for f in frames]
    want = [(seq, t) for seq, t in enumerate(captured["cam-b"]) if from_ns <= t <= to_ns]
    assert got == want and len(got) == 20 * FPS and landed.first is not None  # cam-b: +7 ns


def test_a_time_before_retention_answers_with_the_oldest_frame_kept(recorded) -> None:
    """Retention has removed the first 40 records of each partition (delete_records moves
    the log start offset as retention does): a time before them lands on the oldest kept."""
    cfg, captured, start_ns = recorded
    admin: KafkaAdminClient = make_admin(cfg)
    try:
        ends = end_offsets(cfg, cfg.output_topic)
        admin.delete_records(
            {TopicPartition(cfg.output_topic, p): 40 for p, end in ends.items() if end}
        )
    finally:
        admin.close()
    with frame_recording(cfg, "cam-a") as recording:
        kept = recording.kept()
        landed = recording.seek(start_ns - 60 * 1_000_000_000)
        alone = ends[recording.partition.partition] == 60 * FPS  # cam-a has its partition
    assert landed.before_retention and landed.first is not None
    assert landed.oldest_ns == landed.first.capture_ts_ns
    # The oldest frame kept of cam-a: its 41st if it is alone in its partition.
    if alone:
        assert landed.first.seq == 40 and landed.oldest_ns == captured["cam-a"][40]
    assert landed.oldest_ns > captured["cam-a"][0]
    assert kept.oldest_ms is not None and kept.oldest_ms <= landed.oldest_ns // 1_000_000 + 1000
    # A moment inside retention is no such answer.
    with frame_recording(cfg, "cam-a") as recording:
        assert not recording.seek(captured["cam-a"][-10]).before_retention


def test_a_cameras_detections_are_read_back_by_time(recorded) -> None:
    cfg, _, start_ns = recorded
    with detection_recording(cfg, "cam-b") as recording:
        _, events = recording.between(start_ns, start_ns + 60 * 1_000_000_000)
        seqs = [e.seq for e in events]
    assert seqs == list(range(0, 60 * FPS, 5))
    with detection_recording(cfg, "cam-a") as recording:
        _, events = recording.between(start_ns, start_ns + 60 * 1_000_000_000)
        assert list(events) == []


def test_a_topic_that_does_not_exist_is_a_clear_error(cfg: Config) -> None:
    from camstream.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        frame_recording(cfg.replace(kafka_connect_timeout_s=1.0), "cam-a", topic="no-such-topic-x")


def test_the_recorder_keeps_what_its_settings_say(kafka_bootstrap: str, tmp_path) -> None:
    """The output and events topics camstream creates keep `recording_hours`; the output
    topic's partitions `recording_partition_bytes`; the input topic its own hour."""
    from kafka.admin import ConfigResource, ConfigResourceType

    from helpers import config_with_topics

    cfg = config_with_topics(
        kafka_bootstrap, tmp_path, recording_hours=24.0, recording_partition_bytes=-1
    )
    admin = make_admin(cfg)
    try:
        topics = (cfg.output_topic, cfg.events_topic, cfg.input_topic)
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        described = admin.describe_configs(resources).get("topic", {})
    finally:
        admin.close()
    kept = {
        topic: {
            name: entry["value"] for name, entry in entries.items() if name.startswith("retention.")
        }
        for topic, entries in described.items()
    }
    day_ms = str(24 * 3600 * 1000)
    assert kept[cfg.output_topic] == {"retention.ms": day_ms, "retention.bytes": "-1"}
    assert kept[cfg.events_topic]["retention.ms"] == day_ms
    assert kept[cfg.input_topic] == {"retention.ms": "3600000", "retention.bytes": str(1024**3)}


def clip(cfg: Config, camera: str, start: str, end: str, output: Path, *more: str) -> int:
    """`camstream clip`, run as the command line runs it; its exit status."""
    from camstream.cli import main

    return main(["clip", "--kafka-bootstrap", cfg.kafka_bootstrap, "--output-topic",
                 cfg.output_topic, "--camera-id", camera, "--from", start, "--to", end,
                 "-o", str(output), *more])  # fmt: skip


def test_camstream_clip_writes_the_frames_between_two_times(recorded, tmp_path, capsys) -> None:
    """`camstream clip` with ISO times, then with offsets from now: the file holds exactly
    the camera's frames captured between them, in order; a span older than anything kept
    starts at the oldest frame; one with no frames, or a bad time, is a clear error."""
    import cv2

    from camstream.viewers.timespec import format_time, parse_time

    cfg, captured, start_ns = recorded
    from_text = format_time(start_ns + 10 * 1_000_000_000)
    to_text = format_time(start_ns + 30 * 1_000_000_000)
    output = tmp_path / "cam-b.webm"
    assert clip(cfg, "cam-b", from_text, to_text, output) == 0
    low, high = parse_time(from_text), parse_time(to_text)
    expected = [t for t in captured["cam-b"] if low <= t <= high]
    video = cv2.VideoCapture(str(output))
    decoded = 0
    while video.read()[0]:
        decoded += 1
    assert decoded == len(expected) == 80
    assert f"wrote {output}: 80 frames of cam-b" in capsys.readouterr().out

    # Offsets from now: the recorded minute began 10 minutes ago.
    ago_s = (time.time_ns() - start_ns) / 1e9
    relative = tmp_path / "relative.mp4"
    ago = round(ago_s)
    assert clip(cfg, "cam-a", f"-{ago - 20}s", f"-{ago - 40}s", relative) == 0
    written = int(capsys.readouterr().out.split(": ")[1].split()[0])
    assert 80 <= written <= 81  # 20 s of frames 250 ms apart, ends included

    # Older than anything kept: from the oldest frame on, and it says so.
    oldest = tmp_path / "oldest.webm"
    fourth = format_time(captured["cam-a"][3] + 1_000_000)  # (ms: the one after its ns)
    assert clip(cfg, "cam-a", "-1h", fourth, oldest) == 0
    said = capsys.readouterr()
    assert "older than anything kept of cam-a" in said.err
    assert format_time(captured["cam-a"][0]) in said.err and ": 4 frames of cam-a" in said.out

    # Nothing kept then: exit 1, saying so, and no file.
    nothing = tmp_path / "nothing.webm"
    assert clip(cfg, "cam-a", "-2h", "-1h", nothing) == 1
    assert "keeps no frame of cam-a" in capsys.readouterr().err and not nothing.exists()
    # A time it cannot read, or a span past clip_max_s: exit 2, saying what it takes.
    assert clip(cfg, "cam-a", "yesterday", "now", nothing) == 2
    assert "-5m" in capsys.readouterr().err
    assert clip(cfg, "cam-a", "-2h", "now", nothing, "--clip-max-s", "60") == 2
    assert "CAMSTREAM_CLIP_MAX_S" in capsys.readouterr().err


def test_an_operators_topic_stamped_by_the_broker_is_read_back_alike(cfg: Config) -> None:
    """A topic someone else made, with `message.timestamp.type=LogAppendTime` (the broker's
    clock, not the writer's): every record of a recorded past is stamped 'now', so the time
    index finds nothing older; the seek still lands on the right frame, by capture time."""
    admin = make_admin(cfg)
    topic = cfg.output_topic + "-append"
    try:
        from kafka.admin import NewTopic

        admin.create_topics(
            [NewTopic(topic, 2, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})]
        )
    finally:
        admin.close()
    cfg = cfg.replace(output_topic=topic)
    start_ns = time.time_ns() - 3600 * 1_000_000_000
    captured = record_past(cfg, "cam-op", NO_FACE, 40, start_ns, INTERVAL_NS)
    with frame_recording(cfg, "cam-op") as recording:
        landed = recording.seek(captured[17] - 1)
    assert landed.first is not None and landed.first.seq == 17 and not landed.before_retention
