"""The consumer-group workers (`camstream workers`) against the real broker: the per-record
path's outputs, per-camera order over two processes, dead letters, detection events, a
worker killed mid-stream, a clean stop. No Spark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from camstream.cameras.simulate import load_sample_frames
from camstream.config import Config
from camstream.core.batch import process_record
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_producer
from camstream.kafka.topics import record_settings_for_topics
from camstream.local.ports import free_port
from camstream.workers import WorkerGroup, start_workers
from helpers import astronaut_bgr, camstream_running, consume, wait_until
from poison import CAMERA, JOB_MAX_FRAME_BYTES, bad_records

# Headers whose values depend on when a frame was analysed, not on what was analysed.
TIMING_HEADERS = {"analyzed_ts_ns", "failed_ts_ns"}


def send_cameras(cfg: Config, cameras: int, frames: int, first_seq: int = 0) -> list[Any]:
    """`frames` sample-video frames per camera, camera i on partition i % 2 (so that both
    partitions are busy); the records as sent, in order."""
    jpegs = [encode_jpeg(frame, 80) for frame in load_sample_frames()]
    producer = make_producer(cfg)
    futures = []
    for seq in range(first_seq, first_seq + frames):
        for camera in range(cameras):
            camera_id = f"cam-{camera}"
            meta = FrameMeta(camera_id, seq, time.time_ns(), 640, 480)
            jpeg = jpegs[(seq * 7 + camera * 13) % len(jpegs)]
            futures.append(
                producer.send(cfg.input_topic, key=camera_id.encode(), value=jpeg,
                              headers=meta.to_headers(), partition=camera % 2)
            )  # fmt: skip
    producer.flush()
    producer.close()
    return [future.get(timeout=30) for future in futures]


def without_timing(headers: Any) -> list[tuple[str, bytes | None]]:
    return [(name, value) for name, value in headers if name not in TIMING_HEADERS]


def seq_of(record: Any) -> tuple[str, int]:
    found = headers_to_dict(record.headers)
    return found["camera_id"], int(found["seq"])


def assert_no_process_left(group: WorkerGroup) -> None:
    assert not any(group.alive())
    assert not [pid for pid in group.pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # fmt: skip


def test_two_workers_write_what_the_per_record_path_makes_in_order_per_camera(
    cfg: Config,
) -> None:
    cfg = cfg.replace(detection_preset="fast", worker_group=f"g-{cfg.input_topic}")
    cameras, frames = 3, 8
    send_cameras(cfg, cameras, frames)
    inputs = consume(cfg, cfg.input_topic, cameras * frames, timeout_s=30)
    group = start_workers(cfg, 2, progress_interval_s=1.0)
    try:
        out = consume(cfg, cfg.output_topic, cameras * frames, timeout_s=60)
        settings = record_settings_for_topics(cfg, 2)
        expected = {seq_of(r): process_record(r.key, r.value, r.headers, settings) for r in inputs}
        with_faces = [key for key, result in expected.items() if result.faces]
        events = consume(cfg, cfg.events_topic, len(with_faces), timeout_s=30)
        wait_until(lambda: group.totals().frames == cameras * frames, 10, what="the counts")
        assert group.failure() is None
    finally:
        group.stop()
    assert_no_process_left(group)

    # Each frame once, as `process_record` makes it (but when it was analysed).
    assert sorted(seq_of(r) for r in out) == sorted(expected)
    for record in out:
        result = expected[seq_of(record)]
        assert result.ok
        assert record.key == result.key and record.value == result.value
        assert without_timing(record.headers) == without_timing(result.headers)
    # In order per camera, though two processes wrote them.
    for camera in range(cameras):
        seqs = [seq for camera_id, seq in map(seq_of, out) if camera_id == f"cam-{camera}"]
        assert seqs == list(range(frames))
    # An event per frame with faces, as the path makes it.
    assert with_faces, "the sample video has faces"
    assert sorted((e["camera_id"], e["seq"]) for e in map(lambda r: json.loads(r.value), events)) \
        == sorted(with_faces)  # fmt: skip
    for record in events:
        event = json.loads(record.value)
        made = json.loads(expected[(event["camera_id"], event["seq"])].event or b"{}")
        assert {**event, "analyzed_ts_ns": 0} == {**made, "analyzed_ts_ns": 0}
    totals = group.totals()
    assert (totals.frames, totals.dead_letters, totals.events) == (
        cameras * frames, 0, len(with_faces))  # fmt: skip


def test_bad_records_become_dead_letters_with_where_they_were_read(cfg: Config) -> None:
    cfg = cfg.replace(
        detection_preset="fast", max_frame_bytes=JOB_MAX_FRAME_BYTES,
        worker_group=f"g-{cfg.input_topic}",
    )  # fmt: skip
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    producer = make_producer(cfg, max_request_size=2_000_000)
    sent_at: dict[str, tuple[int, int]] = {}
    for seq, (kind, (key, value, headers)) in enumerate(bad_records(jpeg, 10_000).items()):
        meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
        producer.send(cfg.input_topic, key=CAMERA.encode(), value=jpeg, headers=meta.to_headers())
        written = producer.send(cfg.input_topic, key=key, value=value, headers=headers)
        sent_at[kind] = (written.get(timeout=30).partition, written.get(timeout=30).offset)
    producer.flush()
    producer.close()
    with start_workers(cfg, 1) as group:
        dead = consume(cfg, cfg.dead_letter_topic, len(sent_at), timeout_s=60)
        out = consume(cfg, cfg.output_topic, len(sent_at), timeout_s=30)
        assert group.failure() is None and all(group.alive())
    assert_no_process_left(group)
    assert [seq_of(r)[1] for r in out] == list(range(len(sent_at)))
    by_kind = {dict(r.headers)["fuzz_kind"].decode(): r for r in dead}
    assert sorted(by_kind) == sorted(sent_at) and len(dead) == len(sent_at)
    for kind, (partition, offset) in sent_at.items():
        found = dict(by_kind[kind].headers)
        assert found["error"], kind
        assert found["source_topic"].decode() == cfg.input_topic
        assert (int(found["source_partition"]), int(found["source_offset"])) == (partition, offset)
        assert int(found["source_timestamp_ms"]) > 0


def test_a_worker_killed_mid_stream_loses_nothing(cfg: Config) -> None:
    """At-least-once: the killed worker's uncommitted batch is processed again by the
    worker that gets its partition, so a frame may come out twice; none is missing."""
    cfg = cfg.replace(
        detection_preset="faithful", frame_threads=1, worker_max_records=4,
        worker_group=f"g-{cfg.input_topic}",
    )  # fmt: skip
    cameras, frames = 2, 14
    send_cameras(cfg, cameras, frames)
    group = start_workers(cfg, 2, progress_interval_s=1.0)
    try:
        wait_until(lambda: group.assigned() == [1, 1], 30, what="a partition per worker")
        wait_until(lambda: group.totals(0).frames > 0, 30, what="worker 0's first batch")
        assert group.totals(0).frames < frames, "worker 0 finished before it was killed"
        group.kill(0)
        assert group.alive() == [False, True]
        # Worker 1 gets the partition once the group notices (its session timeout).
        everything = {(f"cam-{c}", s) for c in range(cameras) for s in range(frames)}

        def received() -> set[tuple[str, int]]:
            return {seq_of(r) for r in consume(cfg, cfg.output_topic, len(everything), 60)}

        wait_until(lambda: received() >= everything, 60, what="every frame")
        assert group.failure() is None, "a killed worker is no failure"
        assert group.assigned() == [0, 2]
    finally:
        group.stop()
    assert_no_process_left(group)
    assert received() == everything  # duplicates allowed, losses not


def test_the_command_runs_the_group_and_stops_it_on_ctrl_c(cfg: Config, tmp_path: Path) -> None:
    cfg = cfg.replace(detection_preset="fast")
    send_cameras(cfg, 2, 3)
    with camstream_running(
        "workers", "--processes", "2", "--kafka-bootstrap", cfg.kafka_bootstrap,
        "--input-topic", cfg.input_topic, "--output-topic", cfg.output_topic,
        "--dead-letter-topic", cfg.dead_letter_topic, "--events-topic", cfg.events_topic,
        "--worker-group", f"g-{cfg.input_topic}", "--starting-offsets", "earliest",
        "--freshness", "all",
        log_path=tmp_path / "workers.log",
    ) as workers:  # fmt: skip
        consume(cfg, cfg.output_topic, 6, timeout_s=60)
        children = psutil.Process(workers.pid).children(recursive=True)
        assert len(children) >= 2, workers.output()
        assert workers.stop(signal.SIGINT, timeout_s=30) == 0, workers.output()
        output = workers.output()
    assert "workers: stopped" in output and "with 2 processes" in output, output
    assert "Traceback" not in output, output
    assert not [child for child in children if child.is_running()
                and child.status() != psutil.STATUS_ZOMBIE]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["workers", "--processes", "0"], {}, "argument --processes"),
        (["workers"], {"CAMSTREAM_WORKER_MAX_RECORDS": "0"}, "CAMSTREAM_WORKER_MAX_RECORDS"),
        (["workers", "--starting-offsets", '{"t": {"0": 1}}'], {}, "latest or earliest"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_code_2(
    args: list[str], env: dict[str, str], names: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "camstream", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
             "CAMSTREAM_HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and names in lines[-1], done.stderr
    if not lines[-1].startswith("camstream workers: error: "):  # argparse's usage comes first
        assert len(lines) == 1, done.stderr
