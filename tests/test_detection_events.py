"""Detection events are parsed strictly: a bad one is a FrameError, counted and skipped by
the events' readers (`camstream events`, the station), never another error that stops them."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from camstream.config import Config
from camstream.core.contract import (
    MAX_EVENT_NESTING,
    DetectionEvent,
    FrameError,
    FrameMeta,
    analytics_headers,
    detection_event,
)
from camstream.kafka.clients import make_producer
from camstream.kafka.consume import ReadOptions
from camstream.viewers.console import run_event_printer
from camstream.viewers.station.server import StationConsumer
from camstream.viewers.station.store import FrameStore


def _event(camera_id: str = "cam-1", seq: int = 7, boxes: list | None = None) -> bytes:
    now = time.time_ns()
    boxes = [[10, 20, 30, 40]] if boxes is None else boxes
    headers = analytics_headers(FrameMeta(camera_id, seq, now, 640, 480).to_headers(), boxes, now)
    return detection_event(headers, "camera-analytics-stream", 1 << 20)


def _with(**fields: Any) -> bytes:
    return json.dumps({**json.loads(_event()), **fields}).encode()


# The two events that stopped the readers: `topic` of the wrong type (`camstream events`
# died with AttributeError printing it) and nesting past the parser's recursion limit (an
# uncaught RecursionError: the station's events reader restarted from "latest").
WRONG_TYPE_TOPIC = _with(topic=12345)
DEEPLY_NESTED = _with(extra=[]).replace(b"[]", b"[" * 100_000 + b"]" * 100_000)


def test_a_valid_event_parses_back_to_what_the_job_wrote() -> None:
    event = DetectionEvent.from_json(_event(boxes=[[1, 2, 3, 4], [5, 6, 7, 8]]))
    assert (event.camera_id, event.seq, event.faces, event.topic) == (
        "cam-1", 7, 2, "camera-analytics-stream"
    )  # fmt: skip
    assert event.boxes_xyxy == [[1, 2, 3, 4], [5, 6, 7, 8]] and event.carried is False


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (WRONG_TYPE_TOPIC, "'topic' must be a string"),
        (DEEPLY_NESTED, f"nests deeper than {MAX_EVENT_NESTING} levels"),
        (_with(extra=json.loads("[" * 50 + "]" * 50)), "nests deeper"),  # parses, still too deep
        (_with(camera_id=["cam-1"]), "'camera_id' must be a string"),
        (_with(camera_id=""), "'camera_id' must be a string of 1-255"),
        (_with(seq=True), "'seq' must be an integer"),
        (_with(seq=-1), "'seq' must be an integer"),
        (_with(capture_ts_ns=2**64), "'capture_ts_ns' must be an integer"),
        (_with(width=1.5), "'width' must be an integer"),
        (_with(faces=3), "3 faces but 1 boxes"),
        (_with(boxes_xyxy=[[1, 2, 3]]), "'boxes_xyxy' must be null or a list"),
        (_with(boxes_xyxy=[[1, 2, 3, False]]), "'boxes_xyxy' must be null or a list"),
        (_with(boxes_xyxy={"a": 1}), "'boxes_xyxy' must be null or a list"),
        (_with(carried="no"), "'carried' must be true or false"),
        (_with(carried=True), "carried if and only if"),
        (_with(carried_from_seq="3", carried=True), "'carried_from_seq' must be an integer"),
        (_with(boxes_left_out=1), "'boxes_left_out' must be true or false"),
        (_with(schema_version=1), "not a detection event of schema_version 1"),
        (b'{"schema_version": "1"}', "lacks 'camera_id'"),
        (b"\xff\xfe", "not JSON"),
        (b"1" * 5000, "not JSON"),  # past Python's digits limit for int()
        (None, "not JSON"),
    ],
)
def test_a_bad_event_is_a_frame_error_saying_what_is_wrong(
    value: bytes | None, reason: str
) -> None:
    with pytest.raises(FrameError, match=reason.replace("(", r"\(")):
        DetectionEvent.from_json(value)


def _record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("events", 0, None, offset, 0, 0, None, value, [], None, 0,
                          len(value), 0)  # fmt: skip


def test_the_station_skips_bad_events_and_reads_on() -> None:
    """Through the station's per-record path (what its poll loop calls for each record)."""
    store = FrameStore()
    detections = StationConsumer(Config(), store, events=True)
    for offset, value in enumerate([WRONG_TYPE_TOPIC, DEEPLY_NESTED, _event("cam-ok")]):
        detections.ingest(_record(offset, value))  # raises nothing
    assert detections.stats.bad_records == 2 and detections.stats.frames == 1
    assert [e.camera_id for e in store.events(now=time.time() + 10)] == ["cam-ok"]


def test_camstream_events_prints_past_bad_events(cfg: Config) -> None:
    """The two events that stopped `camstream events`, through a real broker."""
    producer = make_producer(cfg)
    for value in (WRONG_TYPE_TOPIC, DEEPLY_NESTED, _event("cam-ok")):
        producer.send(cfg.events_topic, key=b"cam", value=value)
    producer.flush()
    producer.close()
    out = io.StringIO()
    options = ReadOptions(max_items=1, from_beginning=True, idle_timeout_s=30)
    stats = run_event_printer(cfg, options, out=out)
    assert stats.bad_records == 2 and stats.frames == 1
    printed = out.getvalue().splitlines()
    assert printed[1].strip().startswith("cam-ok  seq")  # after the "events of ..." line
    assert "2 bad records skipped" in printed[-1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
EVENT_FIELDS = list(json.loads(_event()))


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """A valid event with some fields replaced, removed or added; or any JSON; or bytes."""
    kind = draw(st.sampled_from(["mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    boxes = draw(st.lists(st.lists(st.integers(), min_size=4, max_size=4), max_size=3))
    event = json.loads(_event(boxes=boxes))
    for name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=3)):
        if draw(st.booleans()):
            event[name] = draw(json_values)
        else:
            event.pop(name, None)
    event.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return json.dumps(event).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=event_like())
def test_parsing_any_event_raises_nothing_but_frame_error(value: bytes) -> None:
    try:
        event = DetectionEvent.from_json(value)
    except FrameError:
        return
    # What parses is what the readers may print and show: every field of its type.
    assert type(event.camera_id) is str and type(event.topic) is str
    ints = (event.seq, event.capture_ts_ns, event.analyzed_ts_ns, event.faces, event.width,
            event.height)  # fmt: skip
    assert all(type(v) is int and v >= 0 for v in ints) and type(event.carried) is bool
    assert event.boxes_xyxy is None or (
        len(event.boxes_xyxy) == event.faces
        and all(len(b) == 4 and all(type(v) is int for v in b) for b in event.boxes_xyxy)
    )
