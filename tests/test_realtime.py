"""Real-time Mode: the Java per-record function against the Python one, and the mode end to end.

The Java function (src/camstream/spark/realtime) is a second implementation of the
per-record path the micro-batch job runs (`process_batch`); these tests keep the two equal on
one shared set of records: the sample video and harder copies of it, the poison records, and
records spoilt at random (seeded). Equal means every header, its place and its value, the
times included (both sides read one fixed clock), and a dead letter's whole reason.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from typing import Any

import cv2
import numpy as np
import pytest

from camstream.cameras.simulate import load_sample_frames
from camstream.config import DETECTION_PRESETS, Config, RecordSettings
from camstream.core.batch import process_batch
from camstream.core.contract import FrameMeta, RecordSource, headers_to_dict, record_bytes
from camstream.core.freshness import FreshnessGuard
from camstream.core.jpeg import encode_jpeg
from camstream.core.records import ProcessedRecord, check_record
from camstream.core.shedding import Shedding
from camstream.errors import ConfigError
from camstream.kafka.clients import make_producer
from camstream.spark.job import SINK_ROW_TYPE, build_query, realtime_rows, realtime_settings_text
from camstream.spark.progress import describe_failure
from helpers import astronaut_bgr, consume, iou
from poison import CAMERA, GIANT_BYTES, bad_records, poison_records

pytestmark = pytest.mark.spark

Headers = list[tuple[str, bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers | None]
OUT, DLQ = "out-topic", "dead-letter-topic"
INPUT_SCHEMA = "key binary, value binary, headers array<struct<key: string, value: binary>>"
# With where each record was read, as the Kafka source has it (the timestamp in ms here).
SOURCE_SCHEMA = f"{INPUT_SCHEMA}, topic string, partition int, offset long, timestamp_ms long"
FRAME_LIMIT = 1_000_000
GIANT_FRAME = "poison: 3200x2400 face frame that annotated exceeds its topic"


def frame_record(
    camera_id: str, seq: int, image: np.ndarray, quality: int = 80, capture_ts_ns: int = 0
) -> Record:
    captured = capture_ts_ns or time.time_ns()
    meta = FrameMeta(camera_id, seq, captured, image.shape[1], image.shape[0])
    return camera_id.encode(), encode_jpeg(image, quality), meta.to_headers()


def spoilt(record: Record, rng: random.Random) -> Record:
    """A valid record spoilt one random way: bytes flipped, cut, appended; a header changed,
    dropped or doubled."""
    key, value, headers = record
    assert value is not None and headers is not None
    kind = rng.randrange(7)
    if kind == 0:  # bytes flipped anywhere, the markers included
        data = bytearray(value)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return key, bytes(data), headers
    if kind == 1:
        return key, value[: rng.randrange(len(value))], headers
    if kind == 2:
        return key, value + rng.randbytes(rng.randint(1, 500)), headers
    name = rng.choice([n for n, _ in headers])
    if kind == 3:
        junk = rng.choice([b"", b"-1", b"0", b"9" * 25, b"\xff", "١".encode(), b" 7", b"1e3"])
        return key, value, [(n, junk if n == name else v) for n, v in headers]
    if kind == 4:
        return key, value, [(n, v) for n, v in headers if n != name]
    if kind == 5:
        return key, value, [*headers, (name, dict(headers)[name])]
    return key, value, [*headers, ("extra", rng.randbytes(rng.randint(0, 40)))]


def shared_records() -> dict[str, Record]:
    """What both implementations must treat alike, by name."""
    frames = load_sample_frames()
    records: dict[str, Record] = {}
    for index in range(0, len(frames), 3):
        frame = frames[index]
        records[f"sample {index}"] = frame_record("cam-a", index, frame)
        records[f"sample {index}, darker"] = frame_record(
            "cam-b", index, cv2.convertScaleAbs(frame, alpha=0.45)
        )
        records[f"sample {index}, half size"] = frame_record(
            "cam-c", index, cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
        )
    records["astronaut"] = frame_record("cam-d", 0, astronaut_bgr())
    # Input headers named like the job's results are not passed on (the contract's
    # RESULT_NAMES, the source headers of dead letters and carried_from_seq among them).
    key, value, headers = frame_record("cam-e", 0, frames[0])
    results = ("carried_from_seq", "source_topic", "source_offset", "value_bytes",
               "headers_dropped", "value_dropped", "skipped")  # fmt: skip
    records["sample 0, result headers in"] = (
        key, value, [*(headers or []), *((name, b"7") for name in results)]
    )  # fmt: skip
    records["astronaut at 1280x1280"] = frame_record(
        "cam-d", 1, cv2.resize(astronaut_bgr(), (1280, 1280), interpolation=cv2.INTER_LINEAR)
    )
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    bad, tricky = poison_records(jpeg)
    for kind, record in {**bad_records(jpeg, 20_000), **bad, **tricky}.items():
        records[f"poison: {kind}"] = record
    records["poison: null headers"] = (CAMERA.encode(), jpeg, None)
    rng = random.Random(20261130)
    valid = [r for name, r in records.items() if name.startswith("sample")]
    for number in range(60):
        records[f"spoilt {number}"] = spoilt(rng.choice(valid), rng)
    return records


def settings_for(preset: str, output_max_bytes: int = 1_048_588) -> RecordSettings:
    # A frame limit that the 3200x2400 frame passes and the 1 MB record does not; the latest
    # policy with a generous age (only the hour-old records take its path).
    return RecordSettings(
        detection=DETECTION_PRESETS[preset],
        max_frame_bytes=FRAME_LIMIT,
        max_age_ms=600_000,
        output_max_bytes=output_max_bytes,
    )


def fixed_clock_function(spark: Any, now_ns: int) -> str:
    """The Java function made with a clock fixed at `now_ns` and registered under a name of
    its own, which it returns.

    Through the constructor that takes a java.time.Clock (made here by the JDK, no test code
    in the jar): the query's function, registered from its class by `realtime_rows`, keeps
    the system clock whatever a test does, and no setting can stop a user's clock.
    """
    jvm = spark._jvm
    instant = jvm.java.time.Instant.ofEpochSecond(now_ns // 10**9, now_ns % 10**9)
    clock = jvm.java.time.Clock.fixed(instant, jvm.java.time.ZoneOffset.UTC)
    name = f"camstream_process_record_at_{now_ns}"
    returns = jvm.org.apache.spark.sql.types.DataType.fromDDL(SINK_ROW_TYPE)
    spark._jsparkSession.udf().register(name, jvm.camstream.realtime.ProcessRecord(clock), returns)
    return name


def run_python(
    records: list[Record], settings: RecordSettings, now_ns: int
) -> list[ProcessedRecord]:
    """The records through the micro-batch job's path, each a batch of its own as the Java
    function takes them (no motion gate, no guard: nothing carried between records)."""
    return [process_batch([record], settings, clock=lambda: now_ns)[0] for record in records]


def run_java(
    spark: Any, records: list[Record], settings_text: str, udf_name: str | None = None
) -> list[dict[str, Any]]:
    rows = [
        (key, value, None if headers is None else [(n, v) for n, v in headers])
        for key, value, headers in records
    ]
    frames = spark.createDataFrame(rows, INPUT_SCHEMA).coalesce(1)  # in order, one task
    named = {} if udf_name is None else {"udf_name": udf_name}
    return [
        row.asDict(recursive=True)
        for row in realtime_rows(spark, frames, settings_text, **named).collect()
    ]


def run_java_with_source(
    spark: Any,
    records: list[tuple[Record, RecordSource | None]],
    settings_text: str,
    udf_name: str,
) -> list[dict[str, Any]]:
    """As run_java, from a DataFrame with the Kafka source's topic, partition, offset and
    timestamp columns (null ones: the source is unknown)."""
    from pyspark.sql import functions as F

    rows = [
        (
            key, value, None if headers is None else [(n, v) for n, v in headers],
            *((None,) * 4 if s is None else (s.topic, s.partition, s.offset, s.timestamp_ms)),
        )
        for (key, value, headers), s in records
    ]  # fmt: skip
    frames = spark.createDataFrame(rows, SOURCE_SCHEMA).coalesce(1)
    frames = frames.withColumn("timestamp", F.timestamp_millis("timestamp_ms"))
    return [
        row.asDict(recursive=True)
        for row in realtime_rows(spark, frames, settings_text, udf_name).collect()
    ]


def java_headers(row: dict[str, Any]) -> Headers:
    return [(h["key"], None if h["value"] is None else bytes(h["value"])) for h in row["headers"]]


def matched_ious(python_boxes: list[list[int]], java_boxes: list[list[int]]) -> list[float]:
    """Each Python box's best IoU with a Java box."""
    return [max((iou(p, j) for j in java_boxes), default=0.0) for p in python_boxes]


def drawn_line_widths(
    jpeg: bytes, boxes: list[list[int]], colour_bgr: tuple[int, ...]
) -> list[int]:
    """Per box, how many pixels across its sides (the median of the four midpoints) are the
    box colour, as decoded: 0 when drawn in another colour, more when drawn thicker."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    # JPEG blurs a line's colour into its neighbours: 80 levels a channel tells it apart.
    near = np.abs(image - np.array(colour_bgr, np.int16)).max(axis=2) < 80
    reach = 8 + min(near.shape) // 240  # past the thickest line the frame's size gives
    widths = []
    for x1, y1, x2, y2 in boxes:
        xm, ym = (x1 + x2) // 2, (y1 + y2) // 2
        across = [near[max(0, y - reach) : y + reach + 1, xm] for y in (y1, y2)]
        across += [near[ym, max(0, x - reach) : x + reach + 1] for x in (x1, x2)]
        widths.append(int(np.median([int(line.sum()) for line in across])))
    return widths


def compare(
    name: str, python: ProcessedRecord, java: dict[str, Any], colour_bgr: tuple[int, ...]
) -> list[str]:
    """How the two outcomes of one record differ (empty: they agree).

    Every header in its place with its value, but for two allowances: boxes match at
    IoU >= 0.95 (the two OpenCV builds' detectors differ by a pixel now and then), and an
    annotated frame fitted to its topic may have another JPEG quality, and so size (the
    quality is found by trying, and the two libjpeg builds make different bytes).
    """
    problems: list[str] = []
    topic = OUT if python.ok else DLQ
    if java["topic"] != topic:
        reason = headers_to_dict(java_headers(java)).get("error")
        return [f"{name}: Python sent it to {topic}, Java to {java['topic']} ({reason})"]
    py_headers, j_headers = python.headers, java_headers(java)
    if [n for n, _ in py_headers] != [n for n, _ in j_headers]:
        return [f"{name}: header names {py_headers} (Python) vs {j_headers} (Java)"]
    allowed = {"boxes_xyxy"}
    if python.ok:
        py, jv = dict(py_headers), dict(j_headers)
        py_boxes = json.loads(py["boxes_xyxy"] or b"")
        j_boxes = json.loads(jv["boxes_xyxy"] or b"")
        if len(py_boxes) != len(j_boxes) or min(matched_ious(py_boxes, j_boxes), default=1) < 0.95:
            problems.append(f"{name}: boxes {py_boxes} (Python) vs {j_boxes} (Java)")
        # The boxes as drawn: the preset's colour and thickness on both sides (but on spoilt
        # bytes, which the two libjpeg builds decode to different pixels).
        elif py_boxes and not name.startswith("spoilt"):
            py_lines = drawn_line_widths(python.value or b"", py_boxes, colour_bgr)
            j_lines = drawn_line_widths(java["value"] or b"", j_boxes, colour_bgr)
            close = all(abs(p - j) <= 1 for p, j in zip(py_lines, j_lines, strict=True))
            if not close or min(py_lines) == 0:
                problems.append(f"{name}: box lines {py_lines} px (Python) vs {j_lines} (Java)")
        if "fitted" in py:
            py_fit, j_fit = json.loads(py["fitted"] or b""), json.loads(jv["fitted"] or b"")
            py_fit.pop("jpeg_quality"), j_fit.pop("jpeg_quality")
            if py_fit != j_fit:  # the size it came at: the same
                problems.append(f"{name}: fitted {py['fitted']!r} vs {jv['fitted']!r}")
            allowed |= {"fitted", "width", "height"}
        if not (java["value"] or b"").startswith(b"\xff\xd8\xff"):
            problems.append(f"{name}: Java's output value is not a JPEG")
    elif (java["key"], java["value"]) != (python.key, python.value):
        problems.append(f"{name}: the dead letter does not carry the record as it came")
    for (header, py_value), (_, j_value) in zip(py_headers, j_headers, strict=True):
        if header not in allowed and py_value != j_value:
            problems.append(f"{name}: {header} {py_value!r} (Python) vs {j_value!r} (Java)")
    if java["key"] != python.key:
        problems.append(f"{name}: key {python.key!r} vs {java['key']!r}")
    return problems


# `equalized` is faithful's detector with fast's equalisation, minimum size and boxes:
# each of its paths runs in one of these two.
@pytest.mark.parametrize("preset", ["faithful", "fast"])
def test_the_java_function_decides_and_draws_as_the_python_one(spark: Any, preset: str) -> None:
    records = shared_records()
    if preset == "faithful":
        # With no minimum face size, 7.7 megapixels cost faithful 20 s a side; that frame's
        # path (an annotated frame fitted to its topic) runs with fast.
        del records[GIANT_FRAME]
    settings = settings_for(preset)
    now_ns = time.time_ns()  # one fixed clock for both sides
    text = realtime_settings_text(settings, OUT, DLQ)
    java = run_java(spark, list(records.values()), text, fixed_clock_function(spark, now_ns))
    python = run_python(list(records.values()), settings, now_ns)
    problems = [
        problem
        for name, py, jv in zip(records, python, java, strict=True)
        for problem in compare(name, py, jv, settings.detection.box_colour_bgr)
    ]
    faces = sum(p.faces for p in python)
    dead = sum(not p.ok for p in python)
    print(f"{preset}: {len(records)} records, {dead} dead letters, {faces} faces; {problems}")
    assert not problems, "\n".join(problems)
    assert faces > 20 and dead > 40  # the set exercises both paths


def test_the_java_function_fits_an_annotated_frame_to_a_small_output_topic(spark: Any) -> None:
    """An output topic of 60 KB: the annotated 3200x2400 frame is re-encoded until it fits,
    as in Python, and every record written fits; each frame fitted is as Python's (but for
    the allowance of `compare`)."""
    records = shared_records()
    limit = 60_000
    settings = settings_for("fast", output_max_bytes=limit)
    now_ns = time.time_ns()
    text = realtime_settings_text(settings, OUT, DLQ)
    java = run_java(spark, list(records.values()), text, fixed_clock_function(spark, now_ns))
    fitted = {}
    for name, row in zip(records, java, strict=True):
        if row["topic"] != OUT:
            continue
        headers = java_headers(row)
        size = record_bytes(row["key"], row["value"], headers)
        assert size <= limit, f"{name}: {size} bytes for a {limit}-byte topic"
        if "fitted" in dict(headers):
            fitted[name] = row
    assert GIANT_FRAME in fitted
    python = run_python([records[name] for name in fitted], settings, now_ns)
    colour = settings.detection.box_colour_bgr
    problems = [
        problem
        for name, py in zip(fitted, python, strict=True)
        for problem in compare(name, py, fitted[name], colour)
    ]
    assert not problems, "\n".join(problems)
    assert all(py.fitted for py in python)


def test_a_broken_environment_in_java_fails_the_task_instead_of_dead_lettering_frames(
    spark: Any,
) -> None:
    """A cascade that is not in the jar is no record's fault: every frame would fail alike.
    It used to make every frame a dead letter while the job looked healthy; now the task
    fails, and the one-line root cause says why (a record's own failure still makes a
    dead letter: the poison records above)."""
    key, value, headers = frame_record("cam-x", 0, astronaut_bgr())
    text = realtime_settings_text(settings_for("fast"), OUT, DLQ).replace(
        "haarcascade_frontalface_default.xml", "haarcascade_missing.xml"
    )
    with pytest.raises(Exception) as failure:  # Spark's, whatever its class
        run_java(spark, [(key, value, headers)], text)
    line = describe_failure(failure.value)
    assert (
        "EnvironmentFailure: no Haar cascade haarcascade_missing.xml in camstream-realtime" in line
    )


def test_java_dead_letters_name_their_source_and_fit_a_small_topic_as_python_ones(
    spark: Any,
) -> None:
    """Dead letters with and without the record's source (topic, partition, offset,
    timestamp), of a null value, and for a dead-letter topic too small for some: the value
    left out (value_dropped), the largest original headers too (headers_dropped); and giants
    that only compression lets in: a key hashed (key_hashed), headers cut with the value kept.
    Every header, its value and its place as in Python, the reason and time included."""
    limit = 8000
    settings = dataclasses.replace(settings_for("fast"), dead_letter_max_bytes=limit)
    meta = FrameMeta("cam-s", 3, time.time_ns(), 512, 512).to_headers()
    key = b"cam-s"
    big = b"not a jpeg" + bytes(range(256)) * 80  # 20 KB: more than the topic takes
    spoof: Headers = [("source_topic", b"spoofed"), ("error", None), ("extra", b"x" * 10_000)]
    source = RecordSource("frames-in", 2, 12345, 1_700_000_000_123)
    cases: dict[str, tuple[Record, RecordSource | None]] = {
        "whole": ((key, b"not a jpeg", meta), source),
        "whole, source unknown": ((key, b"not a jpeg", meta), None),
        "null value": ((key, None, meta), RecordSource("t", 0, 0, 0)),
        "null key, value and headers": ((None, None, None), source),
        "value dropped": ((key, big, meta), source),
        "value dropped, source unknown": ((key, big, [*meta, ("extra", None)]), None),
        "headers dropped": ((key, big, [*meta, *spoof]), source),
        "headers dropped, null value, source unknown": ((key, None, [*meta, *spoof]), None),
        "2 MB key hashed": ((b"\x00" * GIANT_BYTES, b"not a jpeg", meta), source),
        "2 MB header cut, value kept": (
            (key, b"not a jpeg", [*meta, ("note", b"\x00" * GIANT_BYTES), ("tag", b"t")]),
            source,
        ),
        "2 MB camera_id cut": (
            (key, b"not a jpeg", [("camera_id", b"x" * GIANT_BYTES), *meta[1:]]),
            None,
        ),
        "2 MB header name cut": ((key, b"not a jpeg", [*meta, ("n" * GIANT_BYTES, b"1")]), None),
        "2,000 headers cut": ((key, big, [*meta, *[("seq", b"1" * 50)] * 2_000]), source),
    }
    text = realtime_settings_text(settings, OUT, DLQ)
    now_ns = time.time_ns()
    java = run_java_with_source(
        spark, list(cases.values()), text, fixed_clock_function(spark, now_ns)
    )
    python = process_batch(
        [(k, v, h, s) if s is not None else (k, v, h) for (k, v, h), s in cases.values()],
        settings,
        clock=lambda: now_ns,
    )

    markers = {}
    for name, py, row in zip(cases, python, java, strict=True):
        assert not py.ok and row["topic"] == DLQ, name
        j_headers = java_headers(row)
        assert j_headers == py.headers, name
        assert (row["key"], row["value"]) == (py.key, py.value), name
        assert record_bytes(row["key"], row["value"], j_headers) <= limit, name
        names = [n for n, _ in py.headers]
        flags = {"s": "source_topic", "v": "value_dropped", "h": "headers_dropped",
                 "k": "key_hashed"}  # fmt: skip
        markers[name] = "".join(flag for flag, header in flags.items() if header in names)
    # The cases are what they say (s: a source_topic header, v: value_dropped, h:
    # headers_dropped, k: key_hashed; a spoofed source_topic goes with the originals).
    assert markers == {
        "whole": "s",
        "whole, source unknown": "",
        "null value": "s",
        "null key, value and headers": "s",
        "value dropped": "sv",
        "value dropped, source unknown": "v",
        "headers dropped": "svh",
        # Only the largest header goes: the small spoofed source_topic stays; no value to drop.
        "headers dropped, null value, source unknown": "sh",
        "2 MB key hashed": "sk",
        "2 MB header cut, value kept": "sh",
        "2 MB camera_id cut": "h",
        "2 MB header name cut": "h",
        "2,000 headers cut": "svh",
    }
    # The contract's headers stay when others can go instead; the tag stays beside them.
    kept = [n for n, _ in python[list(cases).index("2 MB header cut, value kept")].headers]
    assert kept[:7] == [*(n for n, _ in meta), "tag"]


def test_java_keeps_a_starving_camera_analysed_under_the_live_policy_as_python(
    spark: Any,
) -> None:
    """An hour-old backlog under `live`: a camera's frame is analysed however old when the
    camera had none analysed for min_analysis_interval_ms of its capture time (or none yet),
    the others skip detection; the decisions equal the Python guard's, frame by frame."""
    settings = dataclasses.replace(
        settings_for("fast"), max_age_ms=1000, min_analysis_interval_ms=1000
    )
    image = cv2.resize(astronaut_bgr(), (160, 160), interpolation=cv2.INTER_AREA)
    hour_ago = time.time_ns() - 3600 * 10**9
    cameras = [f"guard-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]  # unknown to the JVM
    offsets_ms = [(0, 0), (0, 100), (0, 600), (1, 50), (0, 1200), (0, 1300), (0, 2200),
                  (1, 900), (1, 1050), (0, 2100)]  # fmt: skip
    records = [
        frame_record(cameras[c], seq, image, capture_ts_ns=hour_ago + ms * 10**6)
        for seq, (c, ms) in enumerate(offsets_ms)
    ]
    # Captured "in a minute" (a camera clock ahead): fresh on both sides however slow the run.
    records.append(frame_record(cameras[0], 99, image, capture_ts_ns=time.time_ns() + 60 * 10**9))
    text = realtime_settings_text(settings, OUT, DLQ)
    java = run_java(spark, records, text)
    shedding = Shedding(settings, past_capacity=True, guard=FreshnessGuard(1000))
    metas = [check_record(k, v, h or [], settings).meta for k, v, h in records]
    expected = [
        shedding.skip_reason(meta.camera_id, meta.capture_ts_ns, time.time_ns()) is not None
        for meta in metas
    ]
    skipped = [row["topic"] == OUT and "skipped" in dict(java_headers(row)) for row in java]
    assert skipped == expected
    assert expected == [False, True, True, False, False, True, False, True, False, True, False]


def test_real_time_mode_refuses_a_cascade_its_jar_does_not_carry() -> None:
    settings = RecordSettings(detection=DETECTION_PRESETS["fast"].__class__(cascade="my.xml"))
    with pytest.raises(ConfigError, match="use micro-batches"):
        realtime_settings_text(settings, OUT, DLQ)


def test_real_time_mode_carries_frames_as_they_come_in_order(spark: Any, cfg: Config) -> None:
    """Frames come out while the query's first batch is still running (a micro-batch query
    would write them only at its end), each camera's in order, bad ones dead-lettered."""
    jpeg = encode_jpeg(astronaut_bgr(), 80)
    producer = make_producer(cfg)
    sent: dict[str, list[int]] = {"cam-1": [], "cam-2": [], "cam-3": []}
    for seq in range(8):
        for camera_id in sent:
            meta = FrameMeta(camera_id, seq, time.time_ns(), 512, 512)
            value = b"not a jpeg" if (seq, camera_id) == (5, "cam-2") else jpeg
            producer.send(cfg.input_topic, key=camera_id.encode(), value=value,
                          headers=meta.to_headers())  # fmt: skip
            sent[camera_id].append(seq)
    producer.flush()
    producer.close()
    query = build_query(spark, cfg.replace(detection_preset="fast",
                                           trigger_interval="realtime:10 minutes"))  # fmt: skip
    try:
        out = consume(cfg, cfg.output_topic, 23, timeout_s=180)
        dead = consume(cfg, cfg.dead_letter_topic, 1, timeout_s=30)
        # Still in the first (ten-minute) batch: nothing was committed yet.
        assert query.isActive and query.lastProgress is None
    finally:
        query.stop()
    order: dict[str, list[int]] = {}
    for record in out:
        values = headers_to_dict(record.headers)
        assert values["faces"] == "1" and record.key == values["camera_id"].encode()
        order.setdefault(values["camera_id"], []).append(int(values["seq"]))
    assert order == {c: [s for s in seqs if (s, c) != (5, "cam-2")] for c, seqs in sent.items()}
    reason = headers_to_dict(dead[0].headers)["error"]
    assert reason == "FrameError: value is not a JPEG (missing FF D8 FF start marker)"


def test_real_time_mode_refuses_more_partitions_than_cores(spark: Any, cfg: Config) -> None:
    wide = cfg.replace(
        input_topic=f"{cfg.input_topic}-wide", partitions=4, trigger_interval="realtime"
    )
    with pytest.raises(ConfigError, match=r"Real-time Mode needs a core per Kafka partition"):
        build_query(spark, wide)
    assert not spark.streams.active
