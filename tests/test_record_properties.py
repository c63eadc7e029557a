"""Property-based: the function Spark runs never raises, whatever the records are.

Hypothesis generates arbitrary keys, values and headers, and structured mutations of valid
frames (cut, spliced and re-sized JPEGs, trailers, EXIF orientation, numbers of any length
and sign, non-ASCII digits, duplicate, missing and null headers, huge and empty values),
and giants that only compression lets into a topic (a 2 MB key, header value or header
name, 20,000 headers: a broker checks a batch's compressed size, and they gzip to a few KB).
They go through the job's own Arrow batch function (`make_batch_processor`), exactly as
Spark hands them over. For every record: no exception, exactly one outcome (an output
record or a dead letter), and that record fits its topic's size limit, which is set from
the input topic's limit, not from the records' uncompressed sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from functools import cache
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camstream.config import DETECTION_PRESETS, RecordSettings
from camstream.core.contract import (
    DEAD_LETTER_HEADROOM_BYTES,
    H_FITTED,
    INPUT_HEADERS,
    MAX_KEY_BYTES,
    AnnotatedFrame,
    DetectionEvent,
    FrameMeta,
    headers_to_dict,
    record_bytes,
)
from camstream.core.jpeg import decode_jpeg, encode_jpeg, scan_jpeg
from camstream.core.settings import MotionSettings
from camstream.spark.worker import WorkerSettings, make_batch_processor
from helpers import astronaut_bgr
from poison import large_face_frame, with_exif_orientation

OUTPUT, DEAD_LETTERS, EVENTS = "out", "dlq", "events"
# The input topic's max.message.bytes (the broker's default): a record larger than this
# uncompressed got in compressed.
INPUT_LIMIT = 1_048_588
# The smallest dead-letter topic tried: a longest key kept and a dead letter's own headers.
SMALLEST_DEAD_LETTER = MAX_KEY_BYTES + DEAD_LETTER_HEADROOM_BYTES
GIANT = 2_000_000
RECORDS_PER_EXAMPLE = 25
EXAMPLES = 300  # 7,500 records a run
INPUT_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ]
)

Headers = list[tuple[str, bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers]


# ---- valid frames to start from ---------------------------------------------------------
@cache
def base_jpegs() -> tuple[bytes, ...]:
    """Small frames (cheap to analyse thousands of times), with and without faces, in the
    encodings cameras produce: baseline, progressive, restart markers, EXIF, trailers."""
    face = astronaut_bgr()
    noise = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    small_face = cv2.resize(face, (160, 160), interpolation=cv2.INTER_AREA)
    wide_face = cv2.resize(face, (200, 150), interpolation=cv2.INTER_AREA)
    grey = np.full((32, 40, 3), 128, np.uint8)
    baseline = encode_jpeg(small_face, 80)
    # One the detector finds a face in at either preset: events and carried boxes.
    found_face = encode_jpeg(cv2.resize(face, (320, 320), interpolation=cv2.INTER_AREA), 80)
    progressive = cv2.imencode(
        ".jpg", wide_face, [cv2.IMWRITE_JPEG_QUALITY, 70, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    )[1].tobytes()
    restarts = cv2.imencode(
        ".jpg", small_face, [cv2.IMWRITE_JPEG_QUALITY, 60, cv2.IMWRITE_JPEG_RST_INTERVAL, 4]
    )[1].tobytes()
    return (
        baseline,
        progressive,
        restarts,
        encode_jpeg(noise, 90),
        encode_jpeg(grey, 50),
        with_exif_orientation(encode_jpeg(wide_face, 75), 6),
        baseline + b"\x00\x00trailer: camera firmware 1.2" + os.urandom(64),
        found_face,
    )


@cache
def huge_values() -> tuple[bytes, ...]:
    return (
        b"\xff\xd8\xff" + os.urandom(1_200_000),
        encode_jpeg(np.random.default_rng(5).integers(0, 255, (700, 900, 3), np.uint8), 95),
        b"\x00" * 2_000_000,
    )


camera_ids = st.one_of(
    st.from_regex(r"cam-[0-9]{1,4}", fullmatch=True),
    st.text(min_size=0, max_size=300),  # control characters, markup, any script
)
number_text = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.integers(min_value=0, max_value=2**64).map(str),
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=30),
    st.sampled_from([" 7", "7 ", "+7", "1_000", "0x10", "1e3", "-0", "", "٣", "NaN", "inf"]),
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=64),
    number_text.map(str.encode),
    st.sampled_from([b"\xff\xfe", b"x" * 100_000]),
)
contract_names = st.sampled_from(
    [*INPUT_HEADERS, "faces", "boxes_xyxy", "analyzed_ts_ns", "error", "failed_ts_ns", "skipped"]
)


@st.composite
def mutated_jpeg(draw: st.DrawFn, jpeg: bytes) -> bytes:
    kind = draw(st.sampled_from(["as is", "cut", "splice", "flip", "trailer", "sof", "empty"]))
    if kind == "as is":
        return jpeg
    if kind == "cut":
        return jpeg[: draw(st.integers(0, len(jpeg)))]
    if kind == "splice":
        other = draw(st.sampled_from(base_jpegs()))
        return jpeg[: draw(st.integers(0, len(jpeg)))] + other[draw(st.integers(0, len(other))) :]
    if kind == "flip":
        data = bytearray(jpeg)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "trailer":
        return jpeg + draw(st.binary(max_size=200))
    if kind == "sof":
        pos = jpeg.find(b"\xff\xc0")
        if pos < 0:
            pos = jpeg.find(b"\xff\xc2")
        if pos < 0:
            return jpeg
        height, width = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
        return (
            jpeg[: pos + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[pos + 9 :]
        )
    return b""


@st.composite
def mutated_headers(draw: st.DrawFn, headers: Headers) -> Headers:
    headers = list(headers)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop", "duplicate", "extra", "null"]))
        name = draw(contract_names)
        if action == "set":
            headers = [(n, draw(header_values) if n == name else v) for n, v in headers]
        elif action == "drop":
            headers = [(n, v) for n, v in headers if n != name]
        elif action == "duplicate":
            headers.insert(draw(st.integers(0, len(headers))), (name, draw(header_values)))
        elif action == "extra":
            headers.append((draw(st.text(max_size=20)), draw(header_values)))
        else:
            headers = [(n, None if n == name else v) for n, v in headers]
    return headers


@st.composite
def structured_record(draw: st.DrawFn) -> Record:
    """A valid frame, then (most of the time) spoilt in its key, value or headers."""
    jpeg = draw(st.sampled_from(base_jpegs()))
    info = scan_jpeg(jpeg)
    camera_id = draw(camera_ids)
    ts = draw(st.integers(0, 2**63 - 1))
    meta = FrameMeta(camera_id, draw(st.integers(0, 2**63 - 1)), ts, info.width, info.height)
    key: bytes | None = camera_id.encode()
    headers: Headers = list(meta.to_headers())
    value: bytes | None = jpeg
    if draw(st.booleans()):
        value = draw(mutated_jpeg(jpeg))
    if draw(st.booleans()):
        headers = draw(mutated_headers(headers))
    key_kind = draw(st.sampled_from(["camera", "camera", "camera", "null", "other", "upper"]))
    if key_kind == "null":
        key = None
    elif key_kind == "other":
        key = draw(st.binary(max_size=40))
    elif key_kind == "upper":
        key = camera_id.upper().encode()
    if draw(st.integers(0, 40)) == 0:
        value = draw(st.sampled_from(huge_values()))
    if draw(st.integers(0, 60)) == 0:
        key, headers = draw(compressed_giant(key, headers))
    return key, value, headers


@st.composite
def compressed_giant(draw: st.DrawFn, key: bytes | None, headers: Headers) -> tuple[Any, Headers]:
    """The key or headers grown past the input topic's limit, as only compression lets in."""
    kind = draw(st.sampled_from(["key", "contract header", "extra header", "name", "many"]))
    if kind == "key":
        return b"\x00" * GIANT, headers
    if kind == "contract header":
        name = draw(st.sampled_from(INPUT_HEADERS))
        return key, [(n, b"9" * GIANT if n == name else v) for n, v in headers]
    if kind == "extra header":
        return key, [*headers, ("trace", b"\x00" * GIANT)]
    if kind == "name":
        return key, [*headers, ("n" * GIANT, b"1")]
    return key, [*headers, *[("seq", b"1" * 50)] * 20_000]


arbitrary_record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=300)),
    st.one_of(st.none(), st.binary(max_size=2000)),
    st.lists(st.tuples(st.text(max_size=30), header_values), max_size=10),
)
records = st.one_of(structured_record(), structured_record(), arbitrary_record)


@st.composite
def record_settings(draw: st.DrawFn) -> RecordSettings:
    return RecordSettings(
        detection=DETECTION_PRESETS[draw(st.sampled_from(sorted(DETECTION_PRESETS)))],
        jpeg_quality=draw(st.integers(40, 95)),
        min_jpeg_quality=draw(st.integers(5, 40)),
        min_frame_width=draw(st.integers(16, 400)),
        max_frame_bytes=draw(st.one_of(st.none(), st.integers(1024, 3_000_000))),
        max_age_ms=draw(st.one_of(st.none(), st.integers(1, 10**12))),
        # Small output limits make the job re-encode frames to fit, or dead-letter them.
        output_max_bytes=draw(st.integers(2_000, 2_000_000)),
        # The motion gate (its models kept between examples, as a worker keeps them), and
        # detection events (a topic refuses to start below 64 KiB).
        motion=MotionSettings(
            enabled=draw(st.booleans()),
            regions=draw(st.booleans()),
            keyframe_s=draw(st.floats(0.001, 100.0)),
        ),
        events_max_bytes=draw(st.one_of(st.none(), st.integers(65_536, 2_000_000))),
    )


def to_arrow(batch: list[Record]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "key": [k for k, _, _ in batch],
            "value": [v for _, v, _ in batch],
            "headers": [[{"key": n, "value": x} for n, x in h] for _, _, h in batch],
        },
        schema=INPUT_SCHEMA,
    )


def in_records_order(
    rows: list[dict[str, Any]], batch: list[Record], dead_letter_limit: int
) -> list[dict[str, Any] | None]:
    """The outcome rows (events left out) in their records' order. Past capacity the
    outcomes known before detection (frames that skip it anyway, each camera's oldest, and
    records that failed their check) come first, ended by a row with no topic; each part
    keeps the records' order."""
    flush = [index for index, row in enumerate(rows) if row["topic"] is None]
    assert len(flush) <= 1, "one early part at most"
    early = rows[: flush[0]] if flush else []
    rest = [row for row in rows[flush[0] + 1 if flush else 0 :] if row["topic"] != EVENTS]
    ordered: list[dict[str, Any] | None] = []
    for record in batch:  # each record's row is the next of one part or the other
        if early and is_row_of(early[0], record, dead_letter_limit):
            ordered.append(early.pop(0))
        else:
            ordered.append(rest.pop(0) if rest else None)
    assert not early and not rest, "rows without a record"
    return ordered


def is_row_of(row: dict[str, Any], record: Record, dead_letter_limit: int) -> bool:
    """Whether this outcome row can be that of this record."""
    key, value, headers = record
    if not row["ok"]:
        try:
            check_dead_letter(row, record, dead_letter_limit)
        except AssertionError:
            return False
        return True
    if value is None or row["key"] != key:
        return False
    out = headers_to_dict([(h["key"], h["value"]) for h in row["headers"]])
    sent = dict(headers)
    fits = value.startswith(row["value"]) or H_FITTED in out  # as sent, or re-encoded to fit
    return fits and all(sent.get(name) == out[name].encode() for name in ("seq", "capture_ts_ns"))


def check_output(row: dict[str, Any], limit: int) -> None:
    assert row["error"] is None
    headers = [(h["key"], h["value"]) for h in row["headers"]]
    frame = AnnotatedFrame.from_record(row["value"], headers)  # the output contract holds
    assert row["key"] == frame.camera_id.encode()
    info = scan_jpeg(row["value"])
    assert (info.width, info.height) == (frame.width, frame.height)
    assert info.end == len(row["value"])  # no trailer passed on
    assert frame.faces == len(frame.boxes_xyxy) == row["faces"]
    for x1, y1, x2, y2 in frame.boxes_xyxy:
        assert 0 <= x1 <= x2 <= frame.width and 0 <= y1 <= y2 <= frame.height
    if frame.skipped is not None:
        assert row["skipped"] and frame.faces == 0
    values = headers_to_dict(headers)
    if H_FITTED in values:
        assert json.loads(values[H_FITTED])["jpeg_quality"] >= 1
    assert record_bytes(row["key"], row["value"], headers) <= limit


def check_dead_letter(row: dict[str, Any], sent: Record, limit: int) -> None:
    key, value, headers = sent
    assert row["error"], "a dead letter without a reason"
    out_headers = [(h["key"], h["value"]) for h in row["headers"]]
    names = [name for name, _ in out_headers]
    values = dict(out_headers)
    hashed = key is not None and len(key) > MAX_KEY_BYTES
    if hashed:  # a key longer than any camera id: its SHA-256, and its length
        assert row["key"] == hashlib.sha256(key or b"").hexdigest().encode()
        assert values["key_hashed"].startswith(f"{len(key or b'')} bytes replaced".encode())
    else:
        assert row["key"] == key
    own = ["error", "failed_ts_ns"] + ([] if value is None else ["value_bytes"])
    own += ["key_hashed"] if hashed else []
    if value is not None:  # the value's size is kept, whatever else had to go
        assert values["value_bytes"] == str(len(value)).encode()
    # From the end: the note on the headers cut, the note on the value left out, the dead
    # letter's own headers; before them the original headers, all or those kept.
    cut = names[-1] == "headers_dropped"
    value_dropped = names[-1 - cut] == "value_dropped"
    tail = len(own) + cut + value_dropped
    assert names[len(names) - tail :][: len(own)] == own
    kept = out_headers[: len(out_headers) - tail]
    if value_dropped:  # too large for the dead-letter topic: the value is left out, and says so
        assert row["value"] is None
        assert values["value_dropped"].startswith(f"{len(value or b'')} bytes left out".encode())
    else:
        assert row["value"] == value
    if cut:  # the original headers that did not fit, the largest first: the rest in order
        gone = len(headers) - len(kept)
        assert values["headers_dropped"].startswith(f"{gone} original headers left out".encode())
        remaining = iter(headers)
        assert all(header in remaining for header in kept), "kept headers out of order"
        assert record_bytes(row["key"], None, [*headers, *out_headers[len(kept) :]]) > limit
    else:
        assert kept == headers  # as it came, null values included
    assert record_bytes(row["key"], row["value"], out_headers) <= limit


def test_the_spark_function_never_raises_and_every_record_fits_its_topic() -> None:
    processed = {"records": 0, "output": 0, "dead": 0, "fitted": 0, "events": 0, "cut": 0,
                 "hashed": 0, "headers cut": 0, "output headers cut": 0}  # fmt: skip

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        batch=st.lists(records, min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE),
        base=record_settings(),
        dead_letter_extra=st.integers(0, 100_000),
        dead_letter_share=st.sampled_from([None, None, 0.7, 0.2, 0.05, 0.0]),
    )
    def check(
        batch: list[Record],
        base: RecordSettings,
        dead_letter_extra: int,
        dead_letter_share: float | None,
    ) -> None:
        # A dead-letter topic that takes whatever the input topic takes, plus the room for
        # the reason; or one made by someone else, smaller than the input topic (down to
        # one that holds a longest key kept and the dead letter's own headers only). From
        # the input topic's limit, not the records: compression let in larger ones.
        limit = INPUT_LIMIT + DEAD_LETTER_HEADROOM_BYTES + dead_letter_extra
        if dead_letter_share is not None:
            limit = max(SMALLEST_DEAD_LETTER, int(INPUT_LIMIT * dead_letter_share))
        cfg = replace(base, dead_letter_max_bytes=limit)
        process = make_batch_processor(cfg, WorkerSettings(OUTPUT, DEAD_LETTERS, EVENTS))
        out_batches = list(process(iter([to_arrow(batch)])))  # must not raise
        # Past capacity a row with no topic follows an early part: the job drops it.
        all_rows = [row for b in out_batches for row in b.to_pylist() if row["topic"] is not None]
        rows = in_records_order([row for b in out_batches for row in b.to_pylist()], batch, limit)
        assert len(rows) == len(batch), "every record has exactly one outcome"
        # Each frame with faces is followed by its event (when events are on), and only those.
        for before, row in zip([None, *all_rows], all_rows, strict=False):
            if row["topic"] != EVENTS:
                continue
            assert before is not None and before["topic"] == OUTPUT and before["faces"] > 0
            assert cfg.events_max_bytes is not None
            assert record_bytes(row["key"], row["value"], []) <= cfg.events_max_bytes
            event = DetectionEvent.from_json(row["value"])
            frame = headers_to_dict([(h["key"], h["value"]) for h in before["headers"]])
            assert (event.camera_id, str(event.seq)) == (frame["camera_id"], frame["seq"])
            assert event.carried == before["carried"] and event.faces == before["faces"]
            processed["events"] += 1
        with_faces = sum(1 for row in rows if row and row["topic"] == OUTPUT and row["faces"])
        events = sum(1 for row in all_rows if row["topic"] == EVENTS)
        assert events == (with_faces if cfg.events_max_bytes is not None else 0)
        for row, sent in zip(rows, batch, strict=True):
            assert row is not None and row["topic"] in (OUTPUT, DEAD_LETTERS)
            assert row["ok"] == (row["topic"] == OUTPUT)
            names = [h["key"] for h in row["headers"]]
            if row["ok"]:
                check_output(row, cfg.output_max_bytes)
                processed["output"] += 1
                processed["fitted"] += H_FITTED in names
                processed["output headers cut"] += "headers_dropped" in names
            else:
                check_dead_letter(row, sent, cfg.dead_letter_max_bytes)
                processed["dead"] += 1
                processed["cut"] += "value_dropped" in names
                processed["hashed"] += "key_hashed" in names
                processed["headers cut"] += names[-1] == "headers_dropped"
        processed["records"] += len(batch)

    check()
    print(f"property test: {processed}")
    assert processed["records"] >= 0.95 * EXAMPLES * RECORDS_PER_EXAMPLE  # Hypothesis ran them
    # The generator is not degenerate: both outcomes, and re-encoding to fit, occur.
    assert processed["output"] >= 500 and processed["dead"] >= 2_000 and processed["fitted"] > 0
    assert processed["events"] > 0
    assert processed["cut"] > 0  # dead letters too large for their topic occur, and fit cut
    # Giants occur, on both topics, and are cut to fit.
    assert processed["hashed"] > 0 and processed["headers cut"] > 0
    assert processed["output headers cut"] > 0


def test_exif_orientation_is_ignored_pixels_and_boxes_stay_as_stored() -> None:
    from camstream.core.batch import process_record

    jpeg = with_exif_orientation(encode_jpeg(astronaut_bgr(), 85), 6)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (512, 512)
    wide = with_exif_orientation(
        encode_jpeg(cv2.resize(astronaut_bgr(), (640, 480), interpolation=cv2.INTER_AREA), 85), 6
    )
    # OpenCV alone would rotate it to 480x640.
    assert cv2.imdecode(np.frombuffer(wide, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (640, 480)
    assert decode_jpeg(wide).shape[:2] == (480, 640)
    meta = FrameMeta("cam-exif", 1, 1, 640, 480)
    result = process_record(b"cam-exif", wide, meta.to_headers(), RecordSettings())
    assert result.ok, result.error
    frame = AnnotatedFrame.from_record(result.value, result.headers)
    assert (frame.width, frame.height) == (640, 480) and frame.faces == 1
    assert decode_jpeg(result.value).shape[:2] == (480, 640)
    ((x1, _y1, x2, y2),) = frame.boxes_xyxy
    assert x2 <= 640 and y2 <= 480 and x1 > 200  # the face, where it is in the stored pixels


def test_trailing_bytes_are_accepted_and_truncation_still_caught() -> None:
    from camstream.core.batch import process_record

    jpeg = encode_jpeg(astronaut_bgr(), 80)
    headers = FrameMeta("cam-t", 1, 1, 512, 512).to_headers()
    trailer = jpeg + b"MOTION_PHOTO" + os.urandom(5000)
    result = process_record(b"cam-t", trailer, headers, RecordSettings())
    assert result.ok and result.faces == 1, result.error
    cut = process_record(b"cam-t", jpeg[:-2], headers, RecordSettings())
    assert not cut.ok and "truncated" in (cut.error or "")
    for size in (100, len(jpeg) // 2, len(jpeg) - 100):
        result = process_record(b"cam-t", jpeg[:size], headers, RecordSettings())
        assert not result.ok and "truncated" in (result.error or ""), size


def test_a_large_face_frame_is_re_encoded_to_fit_its_topic() -> None:
    """Under the frame limit at quality 30; annotated at quality 80 it would not fit."""
    from camstream.core.batch import process_record

    scene = large_face_frame()
    jpeg = encode_jpeg(scene, 30)
    limit = 1_000_000 + 16 * 1024  # what camstream creates its topics with
    assert len(jpeg) < 1_000_000 < limit < len(encode_jpeg(scene, 80))
    meta = FrameMeta("cam-big", 1, 1, 3200, 2400)
    cfg = RecordSettings(max_frame_bytes=1_000_000, output_max_bytes=limit)
    result = process_record(b"cam-big", jpeg, meta.to_headers(), cfg)
    assert result.ok and result.fitted and result.faces >= 1, result.error
    assert record_bytes(result.key, result.value, result.headers) <= limit
    fitted = json.loads(headers_to_dict(result.headers)[H_FITTED])
    assert fitted["source_width"] == 3200 and fitted["jpeg_quality"] < 80
    frame = AnnotatedFrame.from_record(result.value, result.headers)
    assert (frame.width, frame.height) == (
        scan_jpeg(result.value).width,
        scan_jpeg(result.value).height,
    )
    # Nothing fits within the bounds: dead-lettered with the reason, never written too large.
    tight = replace(
        cfg,
        detection=DETECTION_PRESETS["fast"],
        output_max_bytes=70_000,
        min_jpeg_quality=70,
        min_frame_width=3000,
    )
    refused = process_record(b"cam-big", jpeg, meta.to_headers(), tight)
    assert not refused.ok and "does not fit the output topic" in (refused.error or "")


def test_a_dead_letter_too_large_for_its_topic_drops_only_the_value() -> None:
    from camstream.core.batch import process_record

    headers = FrameMeta("cam-d", 1, 1, 8, 8).to_headers()
    value = b"not a jpeg" * 20_000
    result = process_record(b"cam-d", value, headers, RecordSettings(dead_letter_max_bytes=70_000))
    assert not result.ok and result.value is None
    names = [name for name, _ in result.headers]
    assert names[:6] == list(INPUT_HEADERS) and "value_dropped" in names
    assert record_bytes(result.key, result.value, result.headers) <= 70_000


def test_the_latest_policy_validates_stale_frames_like_fresh_ones() -> None:
    from camstream.core.batch import process_record

    jpeg = encode_jpeg(astronaut_bgr(), 80)
    stale = RecordSettings(max_age_ms=1000, max_frame_bytes=200_000)
    old = FrameMeta("cam-s", 1, 1, 512, 512).to_headers()
    passed = process_record(b"cam-s", jpeg, old, stale)
    assert passed.ok and passed.skipped and passed.faces == 0
    for value, reason in [
        (jpeg[: len(jpeg) // 2], "truncated"),
        (jpeg + os.urandom(300_000), "over the 200000-byte limit"),
    ]:
        result = process_record(b"cam-s", value, old, stale)
        assert not result.ok and reason in (result.error or "")
    wrong_size = FrameMeta("cam-s", 1, 1, 640, 480).to_headers()
    assert "JPEG is 512x512" in (process_record(b"cam-s", jpeg, wrong_size, stale).error or "")
    assert not process_record(None, jpeg, old, stale).ok
