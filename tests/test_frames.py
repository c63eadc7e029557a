from __future__ import annotations

import json

import pytest

from camstream.core.contract import (
    INPUT_HEADERS,
    OUTPUT_HEADERS,
    AnnotatedFrame,
    FrameError,
    FrameMeta,
    analytics_headers,
    dead_letter_headers,
    headers_to_dict,
)


def _set(headers: list[tuple[str, bytes]], **values: bytes) -> list[tuple[str, bytes]]:
    return [(name, values.get(name, value)) for name, value in headers]


def meta() -> FrameMeta:
    return FrameMeta("cam-01", 7, 1_700_000_000_123_456_789, 640, 480)


def test_input_headers_round_trip() -> None:
    headers = meta().to_headers()
    assert [name for name, _ in headers] == list(INPUT_HEADERS)
    assert all(isinstance(value, bytes) for _, value in headers)
    assert headers_to_dict(headers)["schema_version"] == "1"
    assert FrameMeta.from_headers(headers) == meta()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: [x for x in h if x[0] != "seq"], "missing header"),
        (lambda h: _set(h, seq=b"-1"), "must be >= 0"),
        (lambda h: _set(h, width=b"wide"), "not an ASCII decimal integer"),
        (lambda h: _set(h, schema_version=b"2"), "unsupported schema_version"),
        (lambda h: _set(h, camera_id=b"\xff\xfe"), "not valid UTF-8"),
        (lambda h: _set(h, width=b"8000", height=b"9000"), "exceeds"),
        (lambda h: _set(h, width=b"100000"), "must be <= 65535"),
        (lambda h: _set(h, capture_ts_ns=b"9" * 400), "must be <= 9223372036854775807"),
        (lambda h: _set(h, seq="١٢٣".encode()), "not an ASCII decimal integer"),
        (lambda h: _set(h, seq=b" 7"), "not an ASCII decimal integer"),
        (lambda h: _set(h, seq=b"1_000"), "not an ASCII decimal integer"),
        (lambda h: [*h, ("seq", b"8")], "'seq' appears 2 times"),
        (lambda h: [], "missing header"),
    ],
)
def test_bad_headers_are_reported(change, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        FrameMeta.from_headers(change(meta().to_headers()))


def test_analytics_headers_keep_input_and_add_results() -> None:
    headers = analytics_headers(meta().to_headers(), [[1, 2, 30, 40]], 99)
    assert [name for name, _ in headers] == list(OUTPUT_HEADERS)
    values = headers_to_dict(headers)
    assert values["faces"] == "1"
    assert json.loads(values["boxes_xyxy"]) == [[1, 2, 30, 40]]
    frame = AnnotatedFrame.from_record(b"\xff\xd8", headers)
    assert (frame.camera_id, frame.seq, frame.faces, frame.analyzed_ts_ns) == ("cam-01", 7, 1, 99)
    assert frame.delay_ms(now_ns=frame.capture_ts_ns + 250_000_000) == 250.0


def test_annotated_frame_rejects_bad_boxes() -> None:
    headers = [*analytics_headers(meta().to_headers(), [], 1), ("boxes_xyxy", b"[[1,2]]")]
    with pytest.raises(FrameError, match="boxes_xyxy"):
        AnnotatedFrame.from_record(b"", headers)


def test_dead_letter_headers_keep_originals() -> None:
    original = [("camera_id", b"cam-01"), ("seq", None)]
    headers = dead_letter_headers(original, "not a JPEG", 5)
    assert headers == [
        ("camera_id", b"cam-01"),
        ("seq", None),  # a null header value stays null: the original, untouched
        ("error", b"not a JPEG"),
        ("failed_ts_ns", b"5"),
    ]


def test_nothing_is_pickled() -> None:
    """The contract's parsers are UTF-8, integers and JSON: no pickle anywhere in the package."""
    import pathlib

    import camstream

    package = pathlib.Path(camstream.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "import pickle" not in text and "pickle.loads" not in text, source


def test_monitor_shows_each_frame_once_and_follows_a_restarted_camera() -> None:
    from camstream.kafka.consume import Deduplicator

    def frame(seq: int, capture_ts_ns: int) -> AnnotatedFrame:
        headers = analytics_headers(
            FrameMeta("cam-1", seq, capture_ts_ns, 4, 4).to_headers(), [], 1
        )
        return AnnotatedFrame.from_record(b"", headers)

    dedup = Deduplicator()
    assert dedup.is_new(frame(0, 100)) and dedup.is_new(frame(1, 200))
    assert not dedup.is_new(frame(1, 200))  # an at-least-once duplicate
    assert not dedup.is_new(frame(0, 100))  # an older frame delivered late
    assert dedup.is_new(frame(0, 300))  # the camera restarted: seq back at 0, newer capture
