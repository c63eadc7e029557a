"""The motion gate: when it analyses, what it carries, how much it keeps, and what it costs.

The gate may only ever save work: these tests hold it to analysing whenever it has no model
of a camera, at every keyframe, whenever the scene moved, and whenever the boxes it would
carry are unknown. Frames come from the labelled still scenes (`camstream.cameras.still_scenes`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camstream.cameras import still_scenes
from camstream.core import batch as batch_module
from camstream.core.batch import process_batch
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    DetectionEvent,
    FrameMeta,
    analytics_headers,
    detection_event,
    headers_to_dict,
    record_bytes,
)
from camstream.core.jpeg import check_jpeg, decode_jpeg, encode_jpeg, scan_jpeg
from camstream.core.motion import MotionGate, motion_thumbnail, thumbnail_size
from camstream.core.records import ProcessedRecord
from camstream.core.settings import DETECTION_PRESETS, MotionSettings, RecordSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from gating import clip_records, evaluate, iou

MOTION = MotionSettings(enabled=True, keyframe_s=30.0)
FAST = RecordSettings(detection=DETECTION_PRESETS["fast"], motion=MOTION, events_max_bytes=1 << 20)


def thumb(jpeg: bytes) -> np.ndarray:
    return motion_thumbnail(jpeg, check_jpeg(jpeg), MOTION.thumb_width)


def test_the_labels_are_those_the_scenes_make() -> None:
    """The committed labels are what the generator draws (no silent drift of either)."""
    assert still_scenes.committed_labels() == json.loads(json.dumps(still_scenes.all_labels()))


def test_a_camera_without_a_model_is_analysed() -> None:
    jpegs = still_scenes.clip_jpegs("empty-corridor")
    gate = MotionGate(MOTION)
    first = gate.decide("cam-a", 0, 0, (640, 480), thumb(jpegs[0]))
    assert first.analyse and first.reason == "new"
    # The same scene a second later, new sensor noise: still.
    second = gate.decide("cam-a", 1, 10**9, (640, 480), thumb(jpegs[1]))
    assert not second.analyse and second.reason == "still" and second.reference.seq == 0
    # Another camera showing the same scene has no model of its own yet.
    assert gate.decide("cam-b", 0, 10**9, (640, 480), thumb(jpegs[1])).reason == "new"
    # A new worker (a new gate) knows no camera.
    assert MotionGate(MOTION).decide("cam-a", 2, 2 * 10**9, (640, 480), thumb(jpegs[2])).analyse
    # A camera that changed resolution, or whose clock went back (restarted, replayed).
    assert gate.decide("cam-a", 2, 2 * 10**9, (1280, 720), thumb(jpegs[2])).reason == "size"
    assert gate.decide("cam-b", 1, 10**9 // 2, (640, 480), thumb(jpegs[3])).reason == "clock"


def test_a_keyframe_runs_the_detector_on_a_still_scene() -> None:
    jpegs = still_scenes.clip_jpegs("empty-brick")
    gate = MotionGate(dataclasses.replace(MOTION, keyframe_s=10.0))
    reasons = [
        gate.decide("cam", seq, seq * 10**9, (640, 480), thumb(jpegs[seq])).reason
        for seq in range(25)
    ]
    assert reasons[0] == "new"
    # The first interval is a fixed share of it per camera (so that cameras that appear
    # together spread their keyframes), then every 10 s.
    keyframes = [i for i, r in enumerate(reasons) if r == "keyframe"]
    assert len(keyframes) == 2 and 1 <= keyframes[0] <= 10 and keyframes[1] == keyframes[0] + 10
    assert all(r == "still" for i, r in enumerate(reasons) if i not in (0, *keyframes))
    # Cameras that appear together have their first keyframes spread over the interval.
    firsts = []
    for camera in range(40):
        gate.decide(f"cam-{camera}", 0, 0, (640, 480), thumb(jpegs[0]))
        for second in range(1, 11):
            if (
                gate.decide(
                    f"cam-{camera}", second, second * 10**9, (640, 480), thumb(jpegs[second])
                ).reason
                == "keyframe"
            ):
                firsts.append(second)
                break
    # Evenly over the whole interval: as many in its first half as in its second (a spread
    # over half of it would double the keyframe load every other half interval).
    assert len(firsts) == 40 and len(set(firsts)) >= 8
    assert 12 <= sum(second <= 5 for second in firsts) <= 28


def test_motion_is_analysed_and_a_still_person_is_carried() -> None:
    """The lobby: a person walks in, stands, moves, stands, leaves."""
    labels = still_scenes.labels(still_scenes.clip_named("lobby"))
    results = process_batch(clip_records("lobby", "cam-lobby"), FAST, MotionGate(MOTION))
    assert all(r.ok for r in results)
    last_analysed = None
    for label, result in zip(labels, results, strict=True):
        values = headers_to_dict(result.headers)
        if label["moved"]:  # every frame where the person moved is analysed
            assert result.analysed, label
        if result.analysed:
            last_analysed = (label["index"], values["boxes_xyxy"])
            assert H_CARRIED_FROM_SEQ not in values
            continue
        # Carried: the boxes and seq of the camera's last analysed frame, drawn on this one.
        assert result.carried and values[H_CARRIED_FROM_SEQ] == str(last_analysed[0])
        assert values["boxes_xyxy"] == last_analysed[1]
        boxes = json.loads(values["boxes_xyxy"])
        for face in label["faces"]:
            assert any(iou(face, box) >= 0.5 for box in boxes), label
        if boxes:  # drawn: the box's red edge is in the output picture
            x1, y1, _, _ = boxes[0]
            b, g, r = decode_jpeg(result.value)[y1 + 1, x1 + 1].tolist()
            assert r > 150 and g < 100 and b < 100
    assert sum(r.carried for r in results) >= 40  # most of the minute is still


def test_carried_boxes_wait_for_their_detection_and_a_failed_one_is_not_carried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames gated against a frame whose detection failed are analysed themselves."""
    records = clip_records("lobby", "cam-lobby")[20:30]
    real_detect, real_regions = batch_module.detect_frame, batch_module.detect_in_regions

    def failing(frame, settings):  # type: ignore[no-untyped-def]
        if frame.meta.seq == 24:  # the person has just stood still here
            raise RuntimeError("detector crashed")
        return real_detect(frame, settings)

    def failing_regions(jpeg, info, detection, regions):  # type: ignore[no-untyped-def]
        if jpeg == records[4][1]:  # seq 24 again, analysed on its moving regions
            raise RuntimeError("detector crashed")
        return real_regions(jpeg, info, detection, regions)

    monkeypatch.setattr(batch_module, "detect_frame", failing)
    monkeypatch.setattr(batch_module, "detect_in_regions", failing_regions)
    gate = MotionGate(MOTION)
    with ThreadPoolExecutor(4) as pool:
        results = process_batch(records, FAST, gate, pool.map)
    by_seq = {int(headers_to_dict(r.headers)["seq"]): r for r in results}
    assert not by_seq[24].ok and by_seq[24].error == "RuntimeError: detector crashed"
    # Seqs 25-29 were to be carried from 24: each was analysed instead, and none carried.
    for seq in range(25, 30):
        assert by_seq[seq].ok and by_seq[seq].analysed and by_seq[seq].faces == 1
        assert H_CARRIED_FROM_SEQ not in headers_to_dict(by_seq[seq].headers)
    # The failed model was dropped: the camera's next frame is analysed, then carried from.
    after = process_batch(clip_records("lobby", "cam-lobby")[30:33], FAST, gate)
    assert [r.analysed for r in after] == [True, False, False]
    assert {headers_to_dict(r.headers).get(H_CARRIED_FROM_SEQ) for r in after[1:]} == {"30"}


def test_the_gate_keeps_each_cameras_order_with_threads() -> None:
    """Frames of several cameras interleaved, analysed by four threads: same results as one."""
    records = []
    clips = ("lobby", "gravel-guard", "empty-corridor")
    per_clip = [clip_records(name, f"cam-{name}")[15:35] for name in clips]
    for group in zip(*per_clip, strict=True):
        records.extend(group)
    one = process_batch(records, FAST, MotionGate(MOTION))
    with ThreadPoolExecutor(4) as pool:
        four = process_batch(records, FAST, MotionGate(MOTION), pool.map)
    assert [r.headers[:2] for r in one] == [r.headers[:2] for r in four]
    for a, b in zip(one, four, strict=True):
        assert (a.carried, a.faces) == (b.carried, b.faces)
        assert headers_to_dict(a.headers)["boxes_xyxy"] == headers_to_dict(b.headers)["boxes_xyxy"]


def test_state_is_bounded_by_count_and_by_silence() -> None:
    jpeg = still_scenes.clip_jpegs("empty-corridor")[0]
    small = thumb(jpeg)
    now = [0.0]
    gate = MotionGate(dataclasses.replace(MOTION, max_cameras=100, forget_s=60.0), lambda: now[0])
    for i in range(1000):  # a thousand cameras pass by: the least recently seen go
        gate.decide(f"cam-{i}", 0, 0, (640, 480), small)
    assert len(gate) == 100 and "cam-999" in gate and "cam-0" not in gate
    now[0] = 30.0
    gate.decide("cam-999", 1, 10**9, (640, 480), small)  # seen again: kept
    now[0] = 61.0
    assert gate.decide("cam-new", 0, 0, (640, 480), small).reason == "new"
    assert len(gate) == 2 and "cam-999" in gate and "cam-998" not in gate
    assert gate.forgotten == 900 + 99  # by count, then by silence
    # Forgotten means no model: its next frame is analysed.
    assert gate.decide("cam-5", 1, 10**9, (640, 480), small).reason == "new"


def strip_jpeg(width: int = 80, height: int = 65_000) -> bytes:
    """A JPEG of a long thin strip (80x65,000: the review's frame, a few hundred KB)."""
    rows = np.random.default_rng(3).integers(0, 255, (height // 50, 8), dtype=np.uint8)
    strip = cv2.resize(rows, (width, height), interpolation=cv2.INTER_LINEAR)
    return encode_jpeg(cv2.cvtColor(strip, cv2.COLOR_GRAY2BGR), 75)


def test_gate_memory_is_bounded_in_bytes_whatever_the_frames_shape() -> None:
    """80x65,000 frames under fresh camera ids: the contract dead-letters them (their
    aspect ratio), and fed to the gate anyway each model is at most an 80x60 thumbnail
    (it was 5.2 MB: 20,000 cameras, 100 GB), the gate evicts by bytes, and what it holds
    stays flat."""
    jpeg = strip_jpeg()
    info = scan_jpeg(jpeg)
    records = [
        (f"strip-{i}".encode(), jpeg, FrameMeta(f"strip-{i}", 0, 1, 80, 65_000).to_headers())
        for i in range(3)
    ]
    gate = MotionGate(MOTION)
    results = process_batch(records, FAST, gate)
    assert all(not r.ok and "aspect-ratio limit" in r.error for r in results)
    assert len(gate) == 0 and gate.nbytes == 0

    cap = 64 * 1024
    gate = MotionGate(dataclasses.replace(MOTION, max_bytes=cap))
    held = np.zeros(150, np.int64)  # allocated before tracing starts
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(150):
            small = motion_thumbnail(jpeg, info, MOTION.thumb_width)
            assert small.nbytes <= 80 * 60
            decision = gate.decide(f"strip-{i:06d}", 0, 0, (80, 65_000), small)
            decision.reference.boxes_xyxy = np.zeros((3, 4), np.int32)  # boxes count too
            assert gate.nbytes <= cap
            held[i] = tracemalloc.get_traced_memory()[0] - base
        del small, decision
        holding = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert 10 <= len(gate) < 20 and gate.forgotten == 150 - len(gate)
    # Flat once full: from the 50th camera on, within one model of where it was.
    assert max(held[50:]) - min(held[50:]) < 8 * 1024
    # What the gate counts covers what it holds.
    assert holding <= gate.nbytes


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 65535), st.integers(1, 65535))
def test_a_thumbnail_has_a_fixed_pixel_budget_in_the_frames_shape(width: int, height: int) -> None:
    thumb_w, thumb_h = thumbnail_size(width, height, 80)
    assert 1 <= thumb_w <= width and 1 <= thumb_h <= height and thumb_w * thumb_h <= 80 * 60
    if width * height <= 80 * 60:
        assert (thumb_w, thumb_h) == (width, height)
    assert thumbnail_size(640, 480, 80) == (80, 60)  # what 4:3 cameras always had


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["cam-a", "cam-b", "cam-c"]),
            st.integers(0, 59),  # which frame of the scene
            st.integers(-5_000, 40_000),  # ms since the camera's previous frame
        ),
        min_size=1,
        max_size=40,
    ),
    keyframe_s=st.floats(0.5, 60.0),
)
def test_the_gate_only_ever_saves_work(steps: list, keyframe_s: float) -> None:
    """Any sequence of frames (jumps, repeats, clocks that go back): a frame is carried only
    when its camera has a model younger than the keyframe interval that looks like it, and
    is looked at on its moving regions only when its camera's last look at the whole frame
    is younger than the interval (regions seen on every frame do not put keyframes off)."""
    motion = dataclasses.replace(MOTION, keyframe_s=keyframe_s)
    gate = MotionGate(motion)
    jpegs = still_scenes.clip_jpegs("lobby")
    clock: dict[str, int] = {}
    models: dict[str, tuple[int, np.ndarray]] = {}
    whole_frame: dict[str, int] = {}  # camera -> capture time of its last whole-frame look
    for camera_id, index, step_ms in steps:
        ts = clock[camera_id] = clock.get(camera_id, 10**15) + step_ms * 10**6
        small = thumb(jpegs[index])
        decision = gate.decide(camera_id, index, ts, (640, 480), small)
        model = models.get(camera_id)
        if model is None or not 0 <= ts - model[0] < keyframe_s * 1e9:
            assert decision.analyse
        if camera_id not in whole_frame or ts - whole_frame[camera_id] >= keyframe_s * 1e9:
            assert decision.analyse and not decision.regions
        if not decision.analyse:
            moved = np.count_nonzero(np.abs(small.astype(int) - model[1].astype(int)) > 25)
            assert moved <= motion.min_changed * small.size
        else:
            models[camera_id] = (ts, small)
            if not decision.regions:
                whole_frame[camera_id] = ts


def test_recall_with_the_gate_is_that_without_it() -> None:
    """Two clips of the labelled set, fast preset (the bench runs all of them, both presets)."""
    result = evaluate("fast", clips=("lobby", "gravel-guard"))
    assert result["totals"]["faces"] > 80
    assert result["recall_gated"] >= 0.99 * result["recall_ungated"] > 0.9
    assert result["share_gated"] > 0.7


def test_an_event_is_the_output_frame_in_json() -> None:
    results = process_batch(clip_records("lobby", "cam-lobby")[22:26], FAST, MotionGate(MOTION))
    with_faces = [r for r in results if r.faces]
    assert with_faces and all(r.event is not None for r in with_faces)
    assert all(r.event is None for r in results if not r.faces)
    for result in with_faces:
        event = DetectionEvent.from_json(result.event)
        values = headers_to_dict(result.headers)
        assert (event.camera_id, str(event.seq), event.faces) == ("cam-lobby", values["seq"], 1)
        assert json.dumps(event.boxes_xyxy, separators=(",", ":")) == values["boxes_xyxy"]
        assert event.carried == result.carried and event.topic == FAST.output_topic
        assert event.carried_from_seq == (
            int(values[H_CARRIED_FROM_SEQ]) if result.carried else None
        )
    # An event too large for its topic keeps its count but leaves the boxes out.
    many = [[x, y, x + 30, y + 30] for x in range(0, 600, 20) for y in range(0, 440, 20)]
    headers = analytics_headers(with_faces[0].headers, many, 1)
    event = detection_event(headers, "out", 4096)
    assert record_bytes(b"cam-lobby", event, []) <= 4096
    parsed = DetectionEvent.from_json(event)
    assert parsed.faces == len(many) and parsed.boxes_xyxy is None
    assert DetectionEvent.from_json(detection_event(headers, "out", 1 << 20)).boxes_xyxy == many


def test_a_frame_that_moved_is_analysed_on_its_moving_regions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A guard stands the whole minute while someone walks past: the detector looks only
    where the walker is, and the guard's box (outside that region) is kept, not lost."""
    calls = {"whole": 0, "regions": 0}
    real_detect, real_regions = batch_module.detect_frame, batch_module.detect_in_regions

    def whole(frame, settings):  # type: ignore[no-untyped-def]
        calls["whole"] += 1
        return real_detect(frame, settings)

    def regions(jpeg, info, detection, boxes):  # type: ignore[no-untyped-def]
        calls["regions"] += 1
        assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) <= 0.6 * 640 * 480
        return real_regions(jpeg, info, detection, boxes)

    monkeypatch.setattr(batch_module, "detect_frame", whole)
    monkeypatch.setattr(batch_module, "detect_in_regions", regions)
    truth = still_scenes.labels(still_scenes.clip_named("gravel-guard"))
    results = process_batch(clip_records("gravel-guard", "cam-g"), FAST, MotionGate(MOTION))
    guard = truth[0]["faces"][0]
    # The first frame and the keyframes (every 30 s) on the whole frame; the walker on regions.
    assert 2 <= calls["whole"] <= 3 and calls["regions"] >= 5
    ungated = process_batch(clip_records("gravel-guard", "cam-g"), FAST)

    def finds_guard(result: ProcessedRecord) -> bool:
        boxes = json.loads(headers_to_dict(result.headers)["boxes_xyxy"])
        return any(iou(guard, box) >= 0.5 for box in boxes)

    # Wherever the detector finds the guard on the whole frame, the gated job has the box.
    found = [i for i, result in enumerate(ungated) if finds_guard(result)]
    assert len(found) > 50 and all(finds_guard(results[i]) for i in found)
    # The same clip with the whole frame analysed on motion (the bench compares the two
    # over the whole labelled set).
    whole_frame = dataclasses.replace(MOTION, regions=False)
    plain = process_batch(
        clip_records("gravel-guard", "cam-g"),
        dataclasses.replace(FAST, motion=whole_frame),
        MotionGate(whole_frame),
    )
    for label, a, b in zip(truth, plain, results, strict=True):
        boxes_a = json.loads(headers_to_dict(a.headers)["boxes_xyxy"])
        boxes_b = json.loads(headers_to_dict(b.headers)["boxes_xyxy"])
        for face in label["faces"]:  # what the whole-frame gate finds, the regions find
            if any(iou(face, box) >= 0.5 for box in boxes_a):
                assert any(iou(face, box) >= 0.5 for box in boxes_b), label["index"]


def test_a_frame_is_judged_fresh_or_stale_when_its_turn_comes_newest_first() -> None:
    """Under the `live` policy a frame's age is taken right before its detection, and the
    newest frames go first: the time a batch has goes to what the wall will show."""
    clip = clip_records("lobby", "cam-late")[24:28]
    newest_capture = int(headers_to_dict(clip[-1][2])["capture_ts_ns"])
    # 4 frames/s: none is older than max_age at the batch's start (nothing goes out early).
    records = [
        (
            key,
            jpeg,
            [
                (
                    name,
                    str(newest_capture - (3 - i) * 250 * 10**6).encode()
                    if name == "capture_ts_ns"
                    else value,
                )
                for name, value in headers
            ],
        )
        for i, (key, jpeg, headers) in enumerate(clip)
    ]
    calls = [0]

    def clock() -> int:  # the batch's start and the newest frame's turn, then 5 s later
        calls[0] += 1
        return newest_capture + (0 if calls[0] <= 2 else 5 * 10**9)

    live = dataclasses.replace(FAST, max_age_ms=1000, motion=MotionSettings())
    results = process_batch(records, live, None, map, clock)
    assert results[-1].ok and not results[-1].skipped and results[-1].faces == 1
    assert all(r.ok and r.skipped and r.faces == 0 for r in results[:-1])
    assert all(headers_to_dict(r.headers)["skipped"].startswith("stale: ") for r in results[:-1])
    # Without the wait, the same frames are analysed.
    first_capture = int(headers_to_dict(records[0][2])["capture_ts_ns"])
    fresh = process_batch(records, live, None, map, lambda: first_capture)
    assert all(r.ok and not r.skipped and r.faces == 1 for r in fresh)


def test_a_face_a_moving_region_cuts_through_is_looked_at_whole() -> None:
    """A headlight sweeping past a person still in view: the moving region's edge ran
    through their face, which a detection on the region could not find, so the face was
    lost (the bench's headlight scenes: 17 of 28 faces on this clip, against 25 without the
    gate). Such a face is now looked at whole: the gate finds as many as no gate does."""
    from gating import GATE_MODES, RecordingGate, kind_frames, run_frames, score_run

    settings = RecordSettings(detection=DETECTION_PRESETS["fast"])
    jpegs, truth = kind_frames("headlights", "lobby")
    ungated = score_run(run_frames(jpegs, settings, None), truth)
    motion = GATE_MODES["gated, regions"]
    assert motion is not None
    gate = RecordingGate(motion)
    regions = score_run(run_frames(jpegs, settings, gate), truth)
    assert regions.found >= ungated.found > 20, (regions, ungated)
    assert regions.false_boxes == 0 and regions.stale == 0, regions
