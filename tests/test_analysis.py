"""The per-record function: valid frames are annotated, bad ones come back with a reason."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from camstream.config import DETECTION_PRESETS, RecordSettings
from camstream.core.batch import process_record
from camstream.core.contract import OUTPUT_HEADERS, FrameMeta, headers_to_dict
from camstream.core.jpeg import encode_jpeg
from helpers import analyse_jpeg, astronaut_bgr, jpeg_size

SETTINGS = RecordSettings(detection=DETECTION_PRESETS["faithful"])
LATEST = replace(SETTINGS, max_age_ms=1000)


def good_record() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    jpeg = encode_jpeg(astronaut_bgr(), 85)
    headers = FrameMeta("cam-07", 3, 1_000, 512, 512).to_headers()
    return b"cam-07", jpeg, headers


def test_valid_frame_is_annotated_with_contract_headers() -> None:
    key, value, headers = good_record()
    result = process_record(key, value, headers, SETTINGS)
    assert result.ok and result.error is None
    assert result.key == b"cam-07"
    assert [name for name, _ in result.headers] == list(OUTPUT_HEADERS)
    values = headers_to_dict(result.headers)
    assert values["seq"] == "3" and values["faces"] == "1"
    assert len(json.loads(values["boxes_xyxy"])) == 1
    assert int(values["analyzed_ts_ns"]) > 0
    assert jpeg_size(result.value) == (512, 512)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda k, v, h: (k, b"", h), "empty frame value"),
        (lambda k, v, h: (k, b"not a jpeg at all", h), "not a JPEG"),
        (lambda k, v, h: (k, v[: len(v) // 2], h), "truncated"),
        (lambda k, v, h: (k, v[:200], h), "truncated"),
        (lambda k, v, h: (k, v, h[:-1]), "missing header"),
        (
            lambda k, v, h: (k, v, [(n, b"640" if n == "width" else x) for n, x in h]),
            "JPEG is 512x512",
        ),
        (lambda k, v, h: (None, v, h), "record key is null"),
        (lambda k, v, h: (b"cam-99", v, h), "differs from camera_id"),
        (lambda k, v, h: (k, v, []), "missing header"),
        (lambda k, v, h: (k, None, h), "frame value is null"),
    ],
)
def test_bad_records_are_dead_lettered_with_a_reason(mutate, reason: str) -> None:
    key, value, headers = mutate(*good_record())
    result = process_record(key, value, headers, SETTINGS)
    assert not result.ok
    assert reason in (result.error or "")
    # The original key, value and headers are kept, plus the reason, the time and the
    # value's size.
    assert result.key == key and result.value == value
    names = [name for name, _ in result.headers]
    own = ["error", "failed_ts_ns"] + ([] if value is None else ["value_bytes"])
    assert names[len(headers) :] == own and result.headers[: len(headers)] == headers
    if value is not None:
        assert headers_to_dict(result.headers)["value_bytes"] == str(len(value))
    assert headers_to_dict(result.headers)["error"] == result.error


def test_forged_huge_dimensions_are_refused_before_decoding() -> None:
    key, value, headers = good_record()
    # Rewrite the SOF segment to claim 60000x60000 pixels.
    sof = value.index(b"\xff\xc0")
    forged = value[: sof + 5] + (60000).to_bytes(2, "big") * 2 + value[sof + 9 :]
    result = process_record(key, forged, headers, SETTINGS)
    assert not result.ok and "exceeds" in (result.error or "")


def test_latest_policy_passes_stale_frames_through_marked() -> None:
    key, value, _ = good_record()
    old = FrameMeta("cam-07", 9, time.time_ns() - 5_000_000_000, 512, 512).to_headers()
    skipped = process_record(key, value, old, LATEST)
    assert skipped.ok and skipped.skipped and skipped.value == value  # unanalysed, as sent
    values = headers_to_dict(skipped.headers)
    assert values["skipped"].startswith("stale: ") and values["faces"] == "0"
    # A fresh frame is analysed as usual under the same policy.
    fresh = FrameMeta("cam-07", 10, time.time_ns(), 512, 512).to_headers()
    analysed = process_record(key, value, fresh, LATEST)
    assert analysed.ok and not analysed.skipped and analysed.faces == 1
    # The `all` policy analyses the old frame too.
    assert process_record(key, value, old, SETTINGS).faces == 1
    # A stale record that is not a JPEG is still dead-lettered, not passed through.
    assert not process_record(key, b"junk", old, LATEST).ok


def test_a_frame_without_faces_is_passed_on_unchanged() -> None:
    import numpy as np

    blank = encode_jpeg(np.full((480, 640, 3), 90, dtype=np.uint8), 75)
    for settings in DETECTION_PRESETS.values():
        result = analyse_jpeg(blank, settings)
        assert result.value == blank and result.faces == 0
