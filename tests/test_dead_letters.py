"""Fuzz-style: many kinds of bad records, interleaved with valid frames, through the real job.

Every bad record must reach the dead-letter topic with its original key, value and headers
plus a reason (`error`) and `failed_ts_ns`; every valid frame around them must reach the
output; the job must still be running afterwards.
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from camstream.analysis import encode_jpeg
from camstream.config import Config
from camstream.frames import FrameMeta, headers_to_dict
from camstream.kafka_io import make_producer
from camstream.spark_job import build_query, observed_totals
from conftest import astronaut_bgr, consume, wait_until

pytestmark = pytest.mark.spark

CAMERA = "cam-fuzz"
# The job's frame-size limit in this test; the topics accept up to 1 MB, so an
# oversized frame reaches the job and must be dead-lettered there, not lost.
JOB_MAX_FRAME_BYTES = 150_000

Headers = list[tuple[str, bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers]


def _sof_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its start-of-frame segment claiming another size."""
    pos = jpeg.index(b"\xff\xc0")
    return jpeg[: pos + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[pos + 9 :]


def bad_records(jpeg: bytes, seq: int) -> dict[str, Record]:
    """Every kind of bad record; a valid frame's key, value and headers, each spoilt one way."""
    meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
    good: Headers = list(meta.to_headers())
    key = CAMERA.encode()

    def with_header(name: str, value: bytes | None) -> Headers:
        return [(n, value if n == name else v) for n, v in good]

    def without(name: str) -> Headers:
        return [(n, v) for n, v in good if n != name]

    noise = np.random.default_rng(7).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    oversized = encode_jpeg(noise, 95)
    assert JOB_MAX_FRAME_BYTES < len(oversized) < 1_000_000
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    records: dict[str, Record] = {
        "empty value": (key, b"", good),
        "null value": (key, None, good),
        "text, not a JPEG": (key, b"hello, this is not an image", good),
        "a PNG image": (key, png, good),
        "truncated JPEG": (key, jpeg[: len(jpeg) // 2], good),
        "JPEG header only": (key, jpeg[:24], good),
        "JPEG start and end markers only": (key, b"\xff\xd8\xff\xd9", good),
        "JPEG magic then random bytes": (key, b"\xff\xd8\xff" + os.urandom(2000), good),
        "zero-size JPEG": (key, _sof_with_size(jpeg, 0, 512), good),
        "absurdly large JPEG (65000x65000)": (key, _sof_with_size(jpeg, 65000, 65000), good),
        "oversized frame value": (key, oversized, good),
        "no headers at all": (b"fuzz-no-headers", jpeg, []),
        "missing camera_id": (key, jpeg, without("camera_id")),
        "missing seq": (key, jpeg, without("seq")),
        "missing capture_ts_ns": (key, jpeg, without("capture_ts_ns")),
        "missing width": (key, jpeg, without("width")),
        "missing schema_version": (key, jpeg, without("schema_version")),
        "camera_id not UTF-8": (key, jpeg, with_header("camera_id", b"cam-\xff\xfe")),
        "empty camera_id": (b"", jpeg, with_header("camera_id", b"")),
        "camera_id of 300 characters": (b"x" * 300, jpeg, with_header("camera_id", b"x" * 300)),
        "seq not an integer": (key, jpeg, with_header("seq", b"abc")),
        "negative seq": (key, jpeg, with_header("seq", b"-5")),
        "capture_ts_ns not an integer": (key, jpeg, with_header("capture_ts_ns", b"yesterday")),
        "zero width header": (key, jpeg, with_header("width", b"0")),
        "width header over the pixel limit": (key, jpeg, with_header("width", b"1000000")),
        "unknown schema_version": (key, jpeg, with_header("schema_version", b"99")),
        "schema_version not UTF-8": (key, jpeg, with_header("schema_version", b"\xff\xfe")),
        "headers disagree with the JPEG's size": (key, jpeg, with_header("height", b"480")),
        "key differs from camera_id": (b"somebody-else", jpeg, good),
    }
    # Tag each bad record (an extra header, which the contract allows and the dead-letter
    # topic must keep) so that the test can tell them apart there.
    return {kind: (k, v, [*h, ("fuzz_kind", kind.encode())]) for kind, (k, v, h) in records.items()}


def test_every_bad_record_is_dead_lettered_and_every_frame_around_it_processed(
    spark, cfg: Config
) -> None:
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    sent_bad: dict[str, Record] = {}
    valid_seqs: list[int] = []
    producer = make_producer(cfg)
    seq = 0

    def send(key: bytes | None, value: bytes | None, headers: Headers) -> None:
        producer.send(cfg.input_topic, key=key, value=value, headers=headers)

    for kind, record in bad_records(jpeg, 10_000).items():
        meta = FrameMeta(CAMERA, seq, time.time_ns(), 512, 512)
        send(CAMERA.encode(), jpeg, meta.to_headers())  # a valid frame before each bad one
        valid_seqs.append(seq)
        seq += 1
        send(*record)
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
        assert set(extra) == {"error", "failed_ts_ns"}, kind
        assert int(extra["failed_ts_ns"]) > 0
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
