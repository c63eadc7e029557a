"""No record stops the job: poison records end to end, a crash and a restart, and no silent loss.

Every record is tagged with a `test_id` header (the contract passes extra headers on, to
the output and to dead letters), so that each can be found on whichever topic it reached.
The records go gzip-compressed, so that giants far over the topics' limits get in, as an
attacker's would (a broker checks the compressed size, the job writes them uncompressed).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

import cv2
import pytest
from kafka import TopicPartition

from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_admin, make_consumer, make_producer
from camstream.spark.job import build_query
from camstream.spark.progress import LossMonitor, follow_progress
from helpers import (
    RunningCommand,
    astronaut_bgr,
    camstream_running,
    config_with_topics,
    consume,
    group_alive,
    wait_until,
)
from poison import CAMERA, GIANT_BYTES, GIANTS, poison_records

pytestmark = pytest.mark.spark

Headers = list[tuple[str, bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers]


def analyze(
    cfg: Config, checkpoint: Path, log_path: Path
) -> AbstractContextManager[RunningCommand]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap, "CAMSTREAM_HOME": cfg.home}
    return camstream_running(
        "analyze",
        "--input-topic", cfg.input_topic, "--output-topic", cfg.output_topic,
        "--dead-letter-topic", cfg.dead_letter_topic,
        "--events-topic", cfg.events_topic, "--checkpoint-location", str(checkpoint),
        "--starting-offsets", "earliest", "--spark-master", "local[2]",
        # Small batches, so that the kill lands in the middle of the stream; the live
        # policy with a generous age and budget, so that only the hour-old records take
        # its path (the large frames must be analysed, and fitted to the output topic).
        "--max-offsets-per-trigger", "6", "--freshness", "live",
        "--analysis-budget-ms", "600000",
        "--max-frame-age-ms", "600000",
        log_path=log_path, env=env,
    )  # fmt: skip


class Tally:
    """Which test_id reached which topic, and how often."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.consumer = make_consumer(
            cfg, cfg.output_topic, cfg.dead_letter_topic, from_beginning=True
        )
        self.seen: dict[str, Counter[str]] = {
            cfg.output_topic: Counter(),
            cfg.dead_letter_topic: Counter(),
        }
        self.output_order: list[str] = []
        self.records: dict[str, object] = {}

    def poll(self) -> int:
        for records in self.consumer.poll(timeout_ms=500).values():
            for record in records:
                test_id = dict(record.headers).get("test_id", b"?").decode()
                self.seen[record.topic][test_id] += 1
                self.records.setdefault(test_id, record)
                if record.topic == self.cfg.output_topic:
                    self.output_order.append(test_id)
        return sum(len(c) for c in self.seen.values())


@pytest.fixture
def poison_cfg(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """Topics on a broker with Kafka's stock configuration (an operator's untuned one), or on
    KAFKA_BOOTSTRAP's broker when it is set (the suite starts no broker of its own then)."""
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        kafka_bootstrap = request.getfixturevalue("stock_kafka_bootstrap")
    return config_with_topics(kafka_bootstrap, tmp_path, partitions=2)


def test_poison_records_never_stop_the_job_even_across_a_crash(
    poison_cfg: Config, tmp_path: Path
) -> None:
    """`camstream analyze` (micro-batches) SIGKILLed mid-stream and restarted from its
    checkpoint, with records published while it is down: nothing lost, nothing on both
    topics. This is also the micro-batch case of test_faults.py's SIGKILL test (which runs
    Real-time Mode only): the same command, kill and restart, on a stock-configured broker."""
    cfg = poison_cfg
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    bad, tricky = poison_records(jpeg)
    stream: list[tuple[str, Record, bool]] = []  # (test_id, record, valid?)
    # The slow 3200x2400 frame early: the kill below lands while its batch is in flight, so
    # that the restarted job replays a batch with poison records in it.
    kinds = [*tricky.items(), *bad.items()]
    giants = [kind for kind in kinds if kind[0] in GIANTS]
    kinds = [kind for kind in kinds if kind[0] not in GIANTS]
    kinds.insert(6, kinds.pop(0))
    # The giants right after it, in the first half: they reach the job before the kill
    # (before the fix their dead letters made the query die, and each restart again).
    kinds[7:7] = giants
    for seq, (kind, record) in enumerate(kinds):
        headers = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512).to_headers()
        stream.append((f"valid-{seq}", (CAMERA.encode(), jpeg, headers), True))
        stream.append((kind, record, kind in tricky))
    producer = make_producer(cfg, compression_type="gzip", max_request_size=2 * GIANT_BYTES)

    def publish(part: list[tuple[str, Record, bool]]) -> None:
        for test_id, (key, value, headers), _ in part:
            tagged = [*headers, ("test_id", test_id.encode())]
            producer.send(cfg.input_topic, key=key, value=value, headers=tagged)
        producer.flush()

    half = len(stream) // 2
    publish(stream[:half])
    tally = Tally(cfg)
    checkpoint = tmp_path / "checkpoint"
    try:
        with analyze(cfg, checkpoint, tmp_path / "first-run.log") as job:
            wait_until(
                lambda: (
                    tally.poll() >= 12
                    and any(line.startswith("batch ") for line in job.output().splitlines())
                ),
                240,
                what="the job to process a first part",
            )
            job.kill()  # the whole job: driver JVM and Python workers
            first_run = job.output()
            wait_until(lambda: not group_alive(job.pid), 30, what="the killed job to be gone")
        publish(stream[half:])
        # From its checkpoint: what was in flight comes again.
        with analyze(cfg, checkpoint, tmp_path / "second-run.log") as job:
            wanted = {test_id for test_id, _, _ in stream}
            wait_until(
                lambda: (
                    tally.poll() >= 0
                    and wanted
                    <= set(tally.seen[cfg.output_topic]) | set(tally.seen[cfg.dead_letter_topic])
                ),
                300,
                what="every record on the output or the dead-letter topic",
            )
            assert job.returncode is None, "the job stopped"
            job.stop()
            output = job.output()
    finally:
        producer.close()
        tally.consumer.close()
    assert job.returncode == 0, output[-3000:]
    # The second run went on from the first one's checkpoint, not from the start.
    first_batches = [int(b) for b in re.findall(r"^batch (\d+):", first_run, re.M)]
    second_batches = [int(b) for b in re.findall(r"^batch (\d+):", output, re.M)]
    assert first_batches and second_batches and second_batches[0] > first_batches[-1]

    out, dead = tally.seen[cfg.output_topic], tally.seen[cfg.dead_letter_topic]
    valid_ids = {test_id for test_id, _, valid in stream if valid}
    bad_ids = {test_id for test_id, _, valid in stream if not valid}
    assert set(out) == valid_ids, set(out) ^ valid_ids
    assert set(dead) == bad_ids, set(dead) ^ bad_ids
    assert not set(out) & set(dead)
    repeats = sum(n - 1 for n in out.values()) + sum(n - 1 for n in dead.values())
    print(
        f"poison stream: {len(valid_ids)} out, {len(bad_ids)} dead-lettered, {repeats} repeats;"
        f" first run batches {first_batches}, second run {second_batches}"
    )
    # Per-camera order on the output, each frame counted once (replays after the crash).
    first_seen = list(dict.fromkeys(t for t in tally.output_order if t.startswith("valid-")))
    assert first_seen == sorted(first_seen, key=lambda t: int(t.split("-")[1]))
    # The tricky valid frames came out right.
    big = headers_to_dict(
        tally.records["3200x2400 face frame that annotated exceeds its topic"].headers
    )
    assert "fitted" in big and int(big["faces"]) >= 1
    exif = tally.records["EXIF orientation 6"]
    exif_headers = headers_to_dict(exif.headers)
    assert (exif_headers["width"], exif_headers["height"]) == ("640", "480")
    assert cv2.imdecode(
        __import__("numpy").frombuffer(exif.value, "uint8"), cv2.IMREAD_COLOR
    ).shape[:2] in ((480, 640), (640, 480))
    stale = headers_to_dict(tally.records["stale but valid (the latest policy)"].headers)
    assert stale["skipped"].startswith("stale")
    reason = headers_to_dict(tally.records["capture_ts_ns of 400 digits"].headers)["error"]
    assert "capture_ts_ns" in reason and "400 digits" in reason
    # The giants fit: the key is replaced by its hash, the giant headers are cut; the
    # reasons, the value and the test_id tag stay.
    key, value, _ = dict(kinds)[GIANTS[0]]
    hashed = tally.records[GIANTS[0]]
    hashed_headers = headers_to_dict(hashed.headers)
    assert hashed.key == hashlib.sha256(key or b"").hexdigest().encode()
    assert hashed_headers["key_hashed"].startswith(f"{GIANT_BYTES} bytes replaced by their SHA-256")
    assert "differs from camera_id" in hashed_headers["error"] and hashed.value == value
    for giant, where in ((GIANTS[1], "error"), (GIANTS[2], "faces")):
        cut = tally.records[giant]
        assert len(cut.value) + sum(len(v or b"") for _, v in cut.headers) < 200_000, giant
        assert headers_to_dict(cut.headers)["headers_dropped"].startswith("1 original headers")
        assert where in headers_to_dict(cut.headers), giant
    reason = headers_to_dict(tally.records[GIANTS[1]].headers)["error"]
    assert reason == "FrameError: camera_id header must be 1-255 characters"


def test_frames_deleted_before_the_job_read_them_are_reported(
    spark, cfg: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """failOnDataLoss=false lets a job that fell behind go on: it must say what it lost."""
    jpeg = encode_jpeg(cv2.resize(astronaut_bgr(), (128, 128)), 70)
    producer = make_producer(cfg)

    def send(seqs: range) -> list:
        futures = [
            producer.send(
                cfg.input_topic,
                key=b"cam-loss",
                value=jpeg,
                headers=FrameMeta("cam-loss", seq, time.time_ns(), 128, 128).to_headers(),
            )
            for seq in seqs
        ]
        producer.flush()
        return [f.get(timeout=30) for f in futures]

    send(range(10))
    query = build_query(spark, cfg)
    try:
        consume(cfg, cfg.output_topic, 10, timeout_s=120)
    finally:
        query.stop()
    sent = send(range(10, 30))  # while the job is down
    partition, first = sent[0].partition, sent[0].offset
    admin = make_admin(cfg)
    try:  # what retention does to a job that fell too far behind
        admin.delete_records({TopicPartition(cfg.input_topic, partition): first + 15})
    finally:
        admin.close()
    producer.close()

    losses = LossMonitor(cfg)
    lines: list[str] = []
    stop = threading.Event()
    query = build_query(spark, cfg)
    follower = threading.Thread(
        target=follow_progress,
        args=(query, lines.append),
        kwargs={"stop": stop, "losses": losses},
        daemon=True,
    )
    caplog.set_level("WARNING", logger="camstream.spark.progress")
    follower.start()
    try:
        out = consume(cfg, cfg.output_topic, 15, timeout_s=120)
        wait_until(lambda: losses.total >= 15, 60, what="the loss to be counted")
    finally:
        stop.set()
        follower.join(timeout=30)
        query.stop()
        losses.close()
    assert sorted(int(headers_to_dict(r.headers)["seq"]) for r in out) == [
        *range(10),
        *range(25, 30),
    ]
    assert losses.total == 15
    assert any("LOST 15" in line for line in lines), lines
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    expected = f"partition {partition} (offsets {first} to {first + 14})"
    assert any(expected in w and "15 frames" in w for w in warnings), warnings
