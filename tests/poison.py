"""Records that break the frame contract in every known way, and valid frames that look odd.

Shared by the tests that send them through the per-record function and the real job.
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np

from camstream.core.contract import FrameMeta
from camstream.core.jpeg import encode_jpeg
from helpers import astronaut_bgr

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
        "JPEG of an 80x65000 strip": (key, _sof_with_size(jpeg, 80, 65000), good),
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
        "headers of an 80x65000 strip": (
            key,
            jpeg,
            [(n, {"width": b"80", "height": b"65000"}.get(n, v)) for n, v in good],
        ),
        "unknown schema_version": (key, jpeg, with_header("schema_version", b"99")),
        "schema_version not UTF-8": (key, jpeg, with_header("schema_version", b"\xff\xfe")),
        "headers disagree with the JPEG's size": (key, jpeg, with_header("height", b"480")),
        "key differs from camera_id": (b"somebody-else", jpeg, good),
    }
    # Tag each bad record (an extra header, which the contract allows and the dead-letter
    # topic must keep) so that the test can tell them apart there.
    return {kind: (k, v, [*h, ("fuzz_kind", kind.encode())]) for kind, (k, v, h) in records.items()}


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 Exif segment whose IFD0 holds one Orientation entry."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"  # big-endian TIFF header, IFD0 at offset 8
        + b"\x00\x01"  # one entry
        + b"\x01\x12\x00\x03\x00\x00\x00\x01"  # tag 0x0112 Orientation, SHORT, count 1
        + orientation.to_bytes(2, "big")
        + b"\x00\x00"
        + b"\x00\x00\x00\x00"  # no next IFD
    )
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def large_face_frame() -> np.ndarray:
    """3200x2400: a textured scene with a large face in it."""
    texture = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    scene = cv2.resize(texture, (3200, 2400), interpolation=cv2.INTER_LINEAR)
    scene[700:1724, 1100:2124] = cv2.resize(astronaut_bgr(), (1024, 1024))
    return scene


HOUR_NS = 3600 * 10**9
# Past every topic's limit uncompressed; gzip makes them about 2 KB, which a topic accepts
# (a broker checks the compressed size): only a compressing producer can send them.
GIANT_BYTES = 2_000_000
GIANTS = (
    "2 MB key (gzip let it in)",
    "2 MB camera_id header (gzip let it in)",
    "2 MB extra header (gzip let it in)",
)


def poison_records(jpeg: bytes) -> tuple[dict[str, Record], dict[str, Record]]:
    """(bad records that must be dead-lettered, tricky valid ones that must come out)."""
    now = time.time_ns()

    def headers(number: int, width: int = 512, height: int = 512, ts: int = now, **changes: bytes):
        base = FrameMeta(CAMERA, number, ts, width, height).to_headers()
        return [(name, changes.get(name, value)) for name, value in base]

    key = CAMERA.encode()
    bad = {
        kind: record
        for kind, record in bad_records(jpeg, 20_000).items()
        if kind != "oversized frame value"  # this job runs with the default frame limit
    }
    bad |= {
        "capture_ts_ns of 400 digits": (key, jpeg, headers(20_100, capture_ts_ns=b"9" * 400)),
        "null key": (None, jpeg, headers(20_101)),
        "seq header twice": (key, jpeg, [*headers(20_102), ("seq", b"7")]),
        "seq in Arabic-Indic digits": (key, jpeg, headers(20_103, seq="١٢٣".encode())),
        "stale and truncated": (key, jpeg[: len(jpeg) // 2], headers(20_104, ts=now - HOUR_NS)),
        "over the frame limit (1 MB)": (
            key,
            b"\xff\xd8\xff" + os.urandom(1_005_000),
            headers(20_105),
        ),
        GIANTS[0]: (b"\x00" * GIANT_BYTES, jpeg, headers(20_106)),
        GIANTS[1]: (key, jpeg, headers(20_107, camera_id=b"x" * GIANT_BYTES)),
    }
    wide = cv2.resize(astronaut_bgr(), (640, 480), interpolation=cv2.INTER_AREA)
    big = encode_jpeg(large_face_frame(), 30)
    valid = {
        "3200x2400 face frame that annotated exceeds its topic": (
            key,
            big,
            headers(30_000, 3200, 2400),
        ),
        "EXIF orientation 6": (
            key,
            with_exif_orientation(encode_jpeg(wide, 80), 6),
            headers(30_001, 640, 480),
        ),
        "bytes after the end-of-image marker": (key, jpeg + os.urandom(3000), headers(30_002)),
        "stale but valid (the latest policy)": (key, jpeg, headers(30_003, ts=now - HOUR_NS)),
        GIANTS[2]: (key, jpeg, [*headers(30_004), ("note", b"\x00" * GIANT_BYTES)]),
    }
    return bad, valid
