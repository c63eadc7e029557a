"""End to end through the real commands: `camstream simulate` -> `camstream analyze` -> topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camstream.cameras.simulate import CameraSimulator, sample_labels
from camstream.config import Config
from camstream.core.contract import (
    OUTPUT_HEADERS,
    AnnotatedFrame,
    DetectionEvent,
    headers_to_dict,
)
from helpers import camstream_running, consume, group_alive, wait_until

pytestmark = pytest.mark.spark

CAMERAS = 2
FRAMES_PER_CAMERA = 30


def test_simulated_cameras_through_the_spark_job(cfg: Config, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap, "CAMSTREAM_HOME": cfg.home}
    topics = ["--kafka-bootstrap", cfg.kafka_bootstrap]
    with camstream_running(
        "analyze",
        "--input-topic", cfg.input_topic,
        "--output-topic", cfg.output_topic,
        "--dead-letter-topic", cfg.dead_letter_topic, "--events-topic", cfg.events_topic,
        "--checkpoint-location", str(tmp_path / "checkpoint"),
        "--starting-offsets", "earliest",
        # The cameras start with the job, so their first frames wait while Spark starts: a
        # backlog, which the default policy would partly skip. Every frame's faces are checked.
        "--freshness", "all",
        "--spark-master", "local[2]",
        *topics,
        log_path=tmp_path / "analyze.log",
        env=env,
    ) as analyze:  # fmt: skip
        simulate = subprocess.run(
            [sys.executable, "-m", "camstream", "simulate", "--cameras", str(CAMERAS),
             "--fps", "10", "--max-frames", str(FRAMES_PER_CAMERA),
             "--input-topic", cfg.input_topic, *topics],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert simulate.returncode == 0, simulate.stdout + simulate.stderr
        assert f"sent {CAMERAS * FRAMES_PER_CAMERA} frames" in simulate.stdout

        total = CAMERAS * FRAMES_PER_CAMERA
        records = consume(cfg, cfg.output_topic, total, timeout_s=240)
        with_faces = sum(headers_to_dict(r.headers)["faces"] != "0" for r in records)
        event_records = consume(cfg, cfg.events_topic, with_faces, timeout_s=60)
        assert analyze.returncode is None, "the Spark job exited early"
        analyze.stop()
        output = analyze.output()
        assert analyze.returncode == 0, output
        assert "analyze: stopped" in output
        wait_until(lambda: not group_alive(analyze.pid), 30, what="the job's JVM to exit")

    # Every input frame exactly once, with the contract's headers.
    frames = [AnnotatedFrame.from_record(r.value, r.headers) for r in records]
    assert all([name for name, _ in r.headers] == list(OUTPUT_HEADERS) for r in records)
    seen = [(f.camera_id, f.seq) for f in frames]
    assert len(seen) == len(set(seen)) == total
    assert all(r.key == f.camera_id.encode() for r, f in zip(records, frames, strict=True))

    # Per-camera order is kept: seq strictly increasing in output order.
    by_camera: dict[str, list[AnnotatedFrame]] = {}
    for frame in frames:
        by_camera.setdefault(frame.camera_id, []).append(frame)
    assert sorted(by_camera) == ["cam-01", "cam-02"]
    for camera_frames in by_camera.values():
        seqs = [f.seq for f in camera_frames]
        assert seqs == list(range(FRAMES_PER_CAMERA))

    # Faces where the sample video has a face, none where it has none; boxes in the frame.
    simulator = CameraSimulator(cfg, cameras=CAMERAS)
    labels = sample_labels()["frames"]
    face_frames = empty_frames = 0
    for camera in simulator.cameras:
        for frame in by_camera[camera.camera_id]:
            label = labels[camera.frame_index(frame.seq, simulator.frame_count)]
            if label["faces"]:
                face_frames += 1
                assert frame.faces > 0, (frame.camera_id, frame.seq)
            else:
                empty_frames += 1
                assert frame.faces == 0, (frame.camera_id, frame.seq)
            assert frame.faces == len(frame.boxes_xyxy)
            for x1, y1, x2, y2 in frame.boxes_xyxy:
                assert 0 <= x1 < x2 <= frame.width and 0 <= y1 < y2 <= frame.height
            assert frame.analyzed_ts_ns >= frame.capture_ts_ns
            assert frame.jpeg[:3] == b"\xff\xd8\xff"
    assert face_frames > 0 and empty_frames > 0
    # One detection event per output frame with faces, keyed by camera, in each camera's
    # order, naming the frame (camera id, seq) and the topic it is on, with its boxes.
    events = [DetectionEvent.from_json(r.value) for r in event_records]
    assert [r.key for r in event_records] == [e.camera_id.encode() for e in events]
    shown = {(f.camera_id, f.seq): f for f in frames if f.faces}
    assert {(e.camera_id, e.seq) for e in events} == set(shown) and len(events) == len(shown)
    for event in events:
        frame = shown[(event.camera_id, event.seq)]
        assert (event.boxes_xyxy, event.faces, event.capture_ts_ns, event.topic) == (
            frame.boxes_xyxy,
            frame.faces,
            frame.capture_ts_ns,
            cfg.output_topic,
        )
        assert not event.carried  # the gate is off by default
    for camera_id in by_camera:
        seqs = [e.seq for e in events if e.camera_id == camera_id]
        assert seqs == sorted(seqs)
    # `camstream events` prints them.
    printed = subprocess.run(
        [sys.executable, "-m", "camstream", "events", "--from-beginning", "--json",
         "--max-events", str(len(events)), "--idle-timeout", "30",
         "--events-topic", cfg.events_topic, *topics],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    # Partitions interleave as each consumer fetches them: compare each camera's sequence.
    for camera_id in by_camera:
        assert [e["seq"] for e in lines if e["camera_id"] == camera_id] == [
            e.seq for e in events if e.camera_id == camera_id
        ]
    assert len(lines) == len(events)
    (tmp_path / "e2e-summary.json").write_text(
        json.dumps({"frames": total, "face_frames": face_frames, "empty_frames": empty_frames})
    )
