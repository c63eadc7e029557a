"""Fuzz-style: many kinds of bad records, interleaved with valid frames, through the real job.

Every bad record must reach the dead-letter topic with its original key, value and headers
plus a reason (`error`) and `failed_ts_ns`; every valid frame around them must reach the
output; the job must still be running afterwards. A broken environment, on the contrary, is
no record's fault: it stops the job with its cause, and dead-letters nothing.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from pyspark.errors import StreamingQueryException

from camstream.config import DETECTION_PRESETS, Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.detection import cascade_path
from camstream.core.jpeg import encode_jpeg
from camstream.errors import DetectorUnavailableError
from camstream.kafka.clients import make_consumer, make_producer
from camstream.spark.job import build_query
from camstream.spark.progress import describe_failure
from helpers import astronaut_bgr, consume, observed_totals, wait_until
from poison import CAMERA, JOB_MAX_FRAME_BYTES, Headers, Record, bad_records

pytestmark = pytest.mark.spark


def test_every_bad_record_is_dead_lettered_and_every_frame_around_it_processed(
    spark, cfg: Config
) -> None:
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    sent_bad: dict[str, Record] = {}
    valid_seqs: list[int] = []
    producer = make_producer(cfg)
    seq = 0

    sent_at: dict[str, tuple[int, int]] = {}  # kind -> its partition and offset

    def send(key: bytes | None, value: bytes | None, headers: Headers) -> Any:
        return producer.send(cfg.input_topic, key=key, value=value, headers=headers)

    for kind, record in bad_records(jpeg, 10_000).items():
        meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
        send(CAMERA.encode(), jpeg, meta.to_headers())  # a valid frame before each bad one
        valid_seqs.append(seq)
        seq += 1
        written = send(*record).get(timeout=30)
        sent_at[kind] = (written.partition, written.offset)
        sent_bad[kind] = record
    meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
    send(CAMERA.encode(), jpeg, meta.to_headers())
    valid_seqs.append(seq)
    producer.flush()
    producer.close()
    assert len(sent_bad) >= 20

    query = build_query(spark, cfg.replace(max_frame_bytes=JOB_MAX_FRAME_BYTES))
    try:
        out = consume(cfg, cfg.output_topic, len(valid_seqs), timeout_s=180)
        dead = consume(cfg, cfg.dead_letter_topic, len(sent_bad), timeout_s=60)
        totals = wait_until(
            lambda: (
                (t := observed_totals(query)).get("frames_in", 0) >= len(valid_seqs) + len(sent_bad)
                and t
            ),
            timeout_s=30,
            what="observed metrics",
        )
        assert query.isActive and query.exception() is None, "the job stopped"
    finally:
        query.stop()

    # Every valid frame, once, in order, analysed.
    assert [int(headers_to_dict(r.headers)["seq"]) for r in out] == valid_seqs
    assert all(headers_to_dict(r.headers)["faces"] == "1" for r in out)

    # Every bad record, once, as it was sent, with a reason and the time it failed.
    by_kind = {dict(r.headers)["fuzz_kind"].decode(): r for r in dead}
    assert sorted(by_kind) == sorted(sent_bad), "missing or unexpected dead letters"
    assert len(dead) == len(sent_bad)
    reasons = {}
    for kind, (key, value, headers) in sent_bad.items():
        record = by_kind[kind]
        assert record.key == key, kind
        assert record.value == value, kind  # null stays null, empty stays empty
        names = [name for name, _ in record.headers]
        assert names[: len(headers)] == [name for name, _ in headers], kind
        assert [v for _, v in record.headers[: len(headers)]] == [v for _, v in headers], kind
        extra = dict(record.headers[len(headers) :])
        own = {"error", "failed_ts_ns", "source_topic", "source_partition", "source_offset",
               "source_timestamp_ms"} | (set() if value is None else {"value_bytes"})  # fmt: skip
        assert set(extra) == own, kind
        assert int(extra["failed_ts_ns"]) > 0
        # Where it was read: the input topic, the record's partition, offset and timestamp.
        assert extra["source_topic"].decode() == cfg.input_topic, kind
        assert (int(extra["source_partition"]), int(extra["source_offset"])) == sent_at[kind]
        assert int(extra["source_timestamp_ms"]) > 0
        if value is not None:
            assert extra["value_bytes"] == str(len(value)).encode(), kind
        reasons[kind] = extra["error"].decode()
        assert reasons[kind], f"{kind}: empty reason"
    assert "over the 150000-byte limit" in reasons["oversized frame value"]
    assert "zero-size" in reasons["zero-size JPEG"]
    assert "exceeds" in reasons["absurdly large JPEG (65000x65000)"]
    assert "unsupported schema_version '99'" in reasons["unknown schema_version"]
    assert "missing header(s): camera_id" in reasons["missing camera_id"]
    assert "differs from camera_id" in reasons["key differs from camera_id"]
    # Reasons are specific: no single catch-all message for different faults.
    assert len(set(reasons.values())) >= 20, reasons

    assert totals["frames_dead_lettered"] == len(sent_bad)
    assert totals["frames_ok"] == len(valid_seqs)


def test_a_detector_that_does_not_load_stops_the_job_instead_of_dead_lettering_frames(
    spark, cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken environment is no record's fault. At start: the job refuses, naming the
    cascade (exit code 5), before any query runs. On an executor that lost it after the
    start (a misdeployed machine): the task fails and the query stops with that cause in
    one line, and no frame is dead-lettered (they all used to be, the job looking healthy)."""
    cascade = tmp_path / "cascade.xml"
    fast = DETECTION_PRESETS["fast"]
    monkeypatch.setitem(DETECTION_PRESETS, "fast", replace(fast, cascade=str(cascade)))
    job = cfg.replace(detection_preset="fast")
    with pytest.raises(DetectorUnavailableError, match="cannot load Haar cascade") as refused:
        build_query(spark, job)
    assert refused.value.exit_code == 5 and not spark.streams.active

    shutil.copy(cascade_path(fast.cascade), cascade)
    producer = make_producer(cfg)
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    for seq in range(3):
        meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
        producer.send(cfg.input_topic, key=CAMERA.encode(), value=jpeg, headers=meta.to_headers())
    producer.close()
    query = build_query(spark, job)  # the driver loads it
    cascade.unlink()  # and the executors cannot
    try:
        with pytest.raises(StreamingQueryException) as stopped:
            query.awaitTermination(120)
    finally:
        query.stop()
    assert describe_failure(stopped.value).startswith(
        "a Python worker raised camstream.errors.EnvironmentFailure: this executor cannot"
        f" process frames (DetectorUnavailableError: cannot load Haar cascade '{cascade}')"
    )
    consumer = make_consumer(cfg)
    try:
        dlq = cfg.dead_letter_topic
        ends = consumer.end_offsets(
            [TopicPartition(dlq, p) for p in consumer.partitions_for_topic(dlq) or ()]
        )
    finally:
        consumer.close()
    assert ends and sum(ends.values()) == 0, f"frames were dead-lettered: {ends}"
