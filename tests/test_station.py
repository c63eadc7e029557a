"""The browser station's server over real HTTP and WebSocket, against the real broker."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import camstream.viewers.station.store as station_store
from camstream.config import Config
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    H_SKIPPED,
    AnnotatedFrame,
    DetectionEvent,
    FrameMeta,
    analytics_headers,
)
from camstream.viewers.station.app import unpack_frame
from camstream.viewers.station.guard import SECURITY_HEADERS
from camstream.viewers.station.store import (
    DELAY_WINDOW,
    FACE_FRAMES_KEPT,
    GAP_WINDOW_S,
    SHED_WINDOW_S,
    FrameStore,
)
from helpers import wait_until
from station_helpers import AnnotatedFramePublisher, annotated_sample_frames, served_station

# Sample frame 0 has a face, frame 35 has none.
FACE, NO_FACE = 0, 35


def publish_three_cameras(cfg: Config, frames_each: int = 6) -> AnnotatedFramePublisher:
    publisher = AnnotatedFramePublisher(cfg)
    for i in range(frames_each):
        publisher.send("cam-a", FACE + i)
        publisher.send("cam-b", NO_FACE)
        publisher.send("cam-c", FACE)
    publisher.flush()
    return publisher


def test_three_cameras_become_three_live_streams(cfg: Config) -> None:
    publisher = publish_three_cameras(cfg)
    with served_station(cfg) as (address, _store):
        seen: dict[str, list[dict]] = {}
        statuses = []
        cameras: dict[str, dict] = {}  # each camera's stats as of its latest change
        with connect(f"ws://{address}/ws") as ws:
            ws.send(json.dumps({"subscribe": "*"}))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                len(seen) < 3 or sum(c["frames"] for c in cameras.values()) < 18
            ):
                message = ws.recv(timeout=10)
                if isinstance(message, bytes):
                    meta, jpeg = unpack_frame(message)
                    assert jpeg[:3] == b"\xff\xd8\xff"
                    seen.setdefault(meta["camera_id"], []).append(meta)
                else:
                    statuses.append(json.loads(message))
                    # A status names only what changed since the one before.
                    cameras.update((c["camera_id"], c) for c in statuses[-1]["cameras"])
        assert sorted(seen) == ["cam-a", "cam-b", "cam-c"]
        for metas in seen.values():
            seqs = [m["seq"] for m in metas]
            assert seqs == sorted(set(seqs))  # newest only: never an older frame after a newer
            assert all(m["delay_ms"] >= 0 for m in metas)
        assert all(m["faces"] == 0 for m in seen["cam-b"])
        assert seen["cam-c"][-1]["faces"] == 1
        # Every frame analysed: no load shed, analysed frames/s is frames/s.
        status = statuses[-1]
        assert status["shedding"]["active"] is False and status["shedding"]["share"] == 0
        assert status["camera_count"] == 3 and not any(s["removed"] for s in statuses)
        for camera in cameras.values():
            assert camera["analysed_fps"] == camera["fps"] and camera["frames_skipped"] == 0
            assert camera["analysed_gap_s"] == 0

        # The stats endpoint matches what was sent.
        def all_counted() -> dict | None:
            body = httpx.get(f"http://{address}/api/stats").json()
            done = all(c["frames"] == 6 for c in body["cameras"]) and body["camera_count"] == 3
            return body if done else None

        body = wait_until(all_counted, 30, what="stats for 18 frames")
        by_id = {c["camera_id"]: c for c in body["cameras"]}
        assert by_id["cam-b"]["faces"] == 0 and by_id["cam-c"]["faces"] == 1
        assert all(c["seq"] == 5 and not c["stale"] for c in by_id.values())
        assert all(0 <= c["delay_ms_p50"] <= c["delay_ms_p95"] for c in by_id.values())
        assert body["frames_total"] == 18 == sum(publisher.sent.values())
        assert all(
            c["analysed_fps"] == c["fps"] and c["frames_skipped"] == 0 for c in by_id.values()
        )
        # Sent back to back: analysed frames a few ms apart, the latest one analysed.
        assert all(
            c["analysed_gap_s"] == 0 and 0 <= c["analysed_gap_max_s"] < 1 for c in by_id.values()
        )
        assert body["shedding"] == {"active": False, "share": 0.0, "frames_skipped": 0,
                                    "frames": 18, "window_s": SHED_WINDOW_S}  # fmt: skip

        # Detections, from the events topic: on the face cameras, with their pictures.
        def detections() -> list[dict] | None:
            events = httpx.get(f"http://{address}/api/events").json()["events"]
            return events if {e["camera_id"] for e in events} == {"cam-a", "cam-c"} else None

        events = wait_until(detections, 30, what="detections of cam-a and cam-c")
        assert all(e["thumbnail"].startswith("data:image/jpeg;base64,") for e in events)
        assert all(not e["carried"] for e in events)
        # The latest frame of a camera, straight from memory.
        latest = httpx.get(f"http://{address}/api/frame/cam-c")
        assert latest.status_code == 200 and latest.content[:3] == b"\xff\xd8\xff"
        publisher.close()


def test_token_is_enforced_when_set(cfg: Config) -> None:
    token = "s3cret-token-for-tests"
    with served_station(cfg, token=token) as (address, _store):
        base = f"http://{address}"
        for path in ("/", "/static/app.js", "/api/stats", "/api/events", "/api/frame/x",
                     "/api/timeline/x", "/api/clip/x"):  # fmt: skip
            assert httpx.get(base + path).status_code == 401, path
            assert httpx.get(base + path + "?token=wrong").status_code == 401, path
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(base + "/api/stats", headers=bearer).is_success
        # Replay's timeline and clips with the token: read from Kafka (nothing kept of x).
        assert httpx.get(base + "/api/timeline/x", headers=bearer, timeout=30).is_success
        clip = httpx.get(base + "/api/clip/x?from_ns=1&to_ns=2", headers=bearer, timeout=30)
        assert clip.status_code == 404
        visit = httpx.get(f"{base}/?token={token}")  # a cookie, and the address without it
        assert visit.status_code == 303 and visit.cookies.get("camstream_token") == token
        page = httpx.get(f"{base}/", cookies={"camstream_token": token})
        assert page.status_code == 200 and "camstream station" in page.text
        assert httpx.get(base + "/api/stats", cookies={"camstream_token": token}).is_success
        # The WebSocket is refused without the token.
        with pytest.raises(InvalidStatus), connect(f"ws://{address}/ws") as ws:
            ws.recv(timeout=5)
        with connect(f"ws://{address}/ws?token={token}") as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "status"
        # Health stays open for probes and says nothing secret.
        assert set(httpx.get(base + "/healthz").json()) == {"status", "kafka_connected", "cameras"}


def test_security_headers_and_no_file_reads(cfg: Config) -> None:
    with served_station(cfg) as (address, _store):
        response = httpx.get(f"http://{address}/")
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        for path in (
            "/api/frame/..%2F..%2Fetc%2Fpasswd",
            "/static/../pyproject.toml",
            "/static/station.py",
            "/etc/passwd",
        ):
            assert httpx.get(f"http://{address}{path}").status_code == 404, path


def _frame(camera_id: str, seq: int, jpeg: bytes, faces: int = 0) -> AnnotatedFrame:
    boxes = [[1, 1, 10, 10]] * faces
    headers = analytics_headers(
        FrameMeta(camera_id, seq, time.time_ns(), 640, 480).to_headers(), boxes, time.time_ns()
    )
    return AnnotatedFrame.from_record(jpeg, headers)


def test_memory_holds_only_the_latest_frame_per_camera() -> None:
    jpegs = [jpeg for jpeg, _ in annotated_sample_frames()[:20]]
    store = FrameStore()
    cameras = [f"cam-{i:03d}" for i in range(100)]

    def feed(rounds: int, start: int) -> None:
        for r in range(start, start + rounds):
            for i, camera_id in enumerate(cameras):
                # A fresh copy per frame, as from Kafka: a kept frame would show as growth.
                jpeg = bytes(bytearray(jpegs[(i + r) % len(jpegs)]))
                frame = _frame(camera_id, r, jpeg, faces=r % 2)
                store.update(frame)
                if frame.faces:  # and its detection event, as from the events topic
                    store.add_detection(DetectionEvent(
                        camera_id, r, frame.capture_ts_ns, frame.analyzed_ts_ns, 1,
                        frame.boxes_xyxy, 640, 480, False, None, "out",
                    ))  # fmt: skip

    feed(300, 0)  # past every bounded window (256 delays per camera)
    tracemalloc.start()
    feed(100, 300)
    before, _ = tracemalloc.get_traced_memory()
    feed(100, 400)  # 10,000 more frames, about 250 MB of JPEG passing through
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.camera_count() == 100 and store.frames_total == 500 * 100
    largest = max(len(j) for j in jpegs)
    # Frame data held: per camera its latest JPEG and its last few with faces (the pictures
    # of detections), plus at most 50 small event thumbnails.
    assert store.memory_bytes() <= 100 * largest * (1 + FACE_FRAMES_KEPT) + 50 * 20_000
    # Steady state: 10,000 frames (about 250 MB) later the store holds no more than before,
    # within a frame per camera (frames differ in size) plus the event list, whose 50
    # thumbnails change size as events replace each other (when they fire depends on the clock).
    assert after - before < 100 * largest + 50 * 20_000


def test_each_frame_is_shown_once_however_often_kafka_delivers_it() -> None:
    """A job restarted from its checkpoint rewrites frames: the station hides the repeats."""
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore()
    frames = [_frame("cam-dup", seq, jpeg, faces=0) for seq in range(5)]
    shown = [store.update(f) for f in frames]
    replayed = [store.update(f) for f in frames[2:]]  # at-least-once: the tail again
    assert shown == [True] * 5 and replayed == [False] * 3
    assert store.frames_total == 5 and store.duplicates_hidden == 3
    latest = store.latest("cam-dup")
    assert latest is not None and latest[1].seq == 4
    # A camera that restarted (seq from 0 again, later capture time) is not a duplicate.
    restarted = _frame("cam-dup", 0, jpeg, faces=0)
    assert store.update(restarted) and store.frames_total == 6


def test_frames_per_second_come_from_capture_times_not_bursty_arrivals() -> None:
    """A camera sends 4 frames/s; micro-batches deliver them in bursts of 12 every 3 s."""
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore()
    start = time.time()
    seq = 0
    for burst in range(5):
        arrival = start + 3.0 * (burst + 1)
        for _ in range(12):
            capture_ns = int((start + seq * 0.25) * 1e9)
            headers = analytics_headers(
                FrameMeta("cam-4fps", seq, capture_ns, 640, 480).to_headers(), [], capture_ns
            )
            store.update(AnnotatedFrame.from_record(jpeg, headers), now=arrival)
            seq += 1
        (stats,) = store.camera_stats(now=arrival + 0.5)
        assert abs(stats["fps"] - 4.0) <= 0.4, stats  # within 10% of what the camera sends
    # A camera that stopped sending shows no rate.
    (stats,) = store.camera_stats(now=start + 60)
    assert stats["fps"] == 0.0 and stats["stale"]


def test_detections_are_limited_per_camera_even_before_its_frames_arrive() -> None:
    """Frames and events come from two topics through two consumers, in no fixed order: a
    camera that keeps seeing faces shows a detection at most every few seconds either way,
    and a detection shows the picture of its own frame once that arrives."""
    jpeg, boxes = annotated_sample_frames()[0]
    store = FrameStore()
    now = 1_000.0

    def detection(seq: int) -> DetectionEvent:
        return DetectionEvent(
            "cam-e", seq, 10**18 + seq, 10**18 + seq, 1, boxes, 640, 480, False, None, "out"
        )

    shown = [store.add_detection(detection(seq), now=now + seq * 0.25) for seq in range(20)]
    assert shown == [seq % 12 == 0 for seq in range(20)]  # every 3 s at 4 frames/s
    assert store.add_detection(detection(3), now=now + 10) is False  # a repeat, or older
    # Held back until its frame arrives (at most 2 s), then shown with its picture.
    assert store.events(now=now + 1) == []
    store.update(_frame("cam-e", 0, jpeg, faces=1), now=now + 1)
    first = store.events(now=now + 1)
    assert [e.seq for e in first] == [0] and first[0].thumbnail_jpeg[:3] == b"\xff\xd8\xff"
    later = store.events(now=now + 10)  # seq 12's frame never came: shown without picture
    assert [e.seq for e in later] == [0, 12] and later[1].thumbnail_jpeg == b""


def test_a_detection_behind_the_frames_still_gets_a_picture() -> None:
    """The frames' consumer ran ahead: the event's own frame is no longer held, so the
    camera's nearest frame with faces stands in for it."""
    jpeg, boxes = annotated_sample_frames()[0]
    store = FrameStore()
    for seq in range(10):
        store.update(_frame("cam-f", seq, jpeg, faces=1))
    late = DetectionEvent("cam-f", 0, 10**18, 10**18, 1, boxes, 640, 480, False, None, "out")
    assert store.add_detection(late)
    (event,) = store.events()
    assert event.seq == 0 and event.thumbnail_jpeg[:3] == b"\xff\xd8\xff"


BASE_NS = 1_000 * 10**9  # a capture clock for the tests below, in ns
QUARTER_S_NS = 250_000_000  # 4 frames/s


def _captured(
    camera_id: str,
    seq: int,
    capture_ns: int,
    jpeg: bytes,
    skipped: str | None = None,
    carried_from_seq: int | None = None,
) -> AnnotatedFrame:
    """A frame as the job writes it: analysed, carried by the motion gate, or skipped."""
    extra = [] if skipped is None else [(H_SKIPPED, skipped.encode())]
    if carried_from_seq is not None:
        extra.append((H_CARRIED_FROM_SEQ, str(carried_from_seq).encode()))
    headers = analytics_headers(
        FrameMeta(camera_id, seq, capture_ns, 640, 480).to_headers(), [], capture_ns, extra=extra
    )
    return AnnotatedFrame.from_record(jpeg, headers)


def test_frames_without_detection_count_apart_and_show_as_shedding() -> None:
    """A camera sends 4 frames/s; the job analyses one in four (every other one carried by
    the motion gate), then none for 5 s, then every frame again."""
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore()

    def feed(seqs: range, analysed: object) -> float:
        arrival = 0.0
        for seq in seqs:
            capture_ns = BASE_NS + seq * QUARTER_S_NS
            arrival = capture_ns / 1e9 + 0.1
            if not analysed(seq):  # type: ignore[operator]
                frame = _captured("cam-s", seq, capture_ns, jpeg, skipped="shed: over capacity")
            elif seq % 8 == 4:  # the motion gate carried the boxes: analysed all the same
                frame = _captured("cam-s", seq, capture_ns, jpeg, carried_from_seq=seq - 4)
            else:
                frame = _captured("cam-s", seq, capture_ns, jpeg)
            assert store.update(frame, now=arrival)
        return arrival

    now = feed(range(40), lambda seq: seq % 4 == 0)  # 10 s: analysed at 0, 1, ... 9 s
    (stats,) = store.camera_stats(now=now)
    assert stats["fps"] == 4.0 and stats["analysed_fps"] == 1.0
    assert stats["frames"] == 40 and stats["frames_skipped"] == 30
    assert stats["analysed_gap_s"] == 0.75  # latest frame at 9.75 s, last analysed at 9 s
    assert stats["analysed_gap_max_s"] == 1.0
    assert store.shedding(now=now) == {"active": True, "share": 0.75, "frames_skipped": 30,
                                       "frames": 40, "window_s": SHED_WINDOW_S}  # fmt: skip

    now = feed(range(40, 60), lambda seq: False)  # nothing analysed from 10 s to 14.75 s
    (stats,) = store.camera_stats(now=now)
    assert stats["fps"] == 4.0 and stats["analysed_fps"] == 0.0  # its window: 9.75-14.75 s
    assert stats["analysed_gap_s"] == stats["analysed_gap_max_s"] == 5.75
    now = feed(range(60, 61), lambda seq: True)  # analysed again at 15 s: a gap of 6 s
    (stats,) = store.camera_stats(now=now)
    assert stats["analysed_gap_s"] == 0 and stats["analysed_gap_max_s"] == 6.0
    assert stats["frames_skipped"] == 50

    # Every frame analysed from 15 s on: the 6 s gap leaves the window GAP_WINDOW_S after it
    # (counted in whole seconds), the shedding SHED_WINDOW_S after the last skipped frame.
    now = feed(range(61, 61 + 4 * 11), lambda seq: True)  # to 26 s
    shedding = store.shedding(now=now)
    assert shedding["active"] is False and shedding["share"] == 0 and shedding["frames"] >= 40
    (stats,) = store.camera_stats(now=now)
    assert stats["analysed_fps"] == stats["fps"] == 4.0
    assert stats["analysed_gap_max_s"] == 6.0
    now = feed(range(105, 61 + 4 * (GAP_WINDOW_S + 1)), lambda seq: True)  # to 46 s
    (stats,) = store.camera_stats(now=now)
    assert stats["analysed_gap_s"] == 0 and stats["analysed_gap_max_s"] == 0.25
    assert stats["frames_skipped"] == 50


def test_a_camera_never_analysed_has_no_gaps_and_no_analysed_rate() -> None:
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore()
    for seq in range(12):
        capture_ns = BASE_NS + seq * QUARTER_S_NS
        store.update(
            _captured("cam-n", seq, capture_ns, jpeg, skipped="stale: 900 ms old"),
            now=capture_ns / 1e9,
        )
    (stats,) = store.camera_stats(now=BASE_NS / 1e9 + 3)
    assert stats["fps"] == 4.0 and stats["analysed_fps"] == 0.0
    assert stats["analysed_gap_s"] is None and stats["analysed_gap_max_s"] is None
    assert stats["frames_skipped"] == 12
    shedding = store.shedding(now=BASE_NS / 1e9 + 3)
    assert shedding["active"] and shedding["share"] == 1.0 and shedding["frames"] == 12
    # Another camera, all analysed, halves the share; the window is over all cameras.
    for seq in range(12):
        capture_ns = BASE_NS + seq * QUARTER_S_NS
        store.update(_captured("cam-m", seq, capture_ns, jpeg), now=capture_ns / 1e9)
    shedding = store.shedding(now=BASE_NS / 1e9 + 3)
    assert shedding["share"] == 0.5 and shedding["frames_skipped"] == 12
    # Repeats (at-least-once delivery) are hidden, and counted nowhere.
    repeat = _captured("cam-n", 11, BASE_NS + 11 * QUARTER_S_NS, jpeg, skipped="stale")
    assert not store.update(repeat, now=BASE_NS / 1e9 + 3)
    assert store.shedding(now=BASE_NS / 1e9 + 3)["frames"] == 24
    # Long after: nothing arrived in the window, nothing shed.
    assert store.shedding(now=BASE_NS / 1e9 + 3 + SHED_WINDOW_S + 1) == {
        "active": False,
        "share": 0.0,
        "frames_skipped": 0,
        "frames": 0,
        "window_s": SHED_WINDOW_S,
    }


def test_carried_frames_count_as_analysed() -> None:
    """The motion gate carried the boxes of the last analysed frame: not shed."""
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore()
    for seq in range(20):
        capture_ns = BASE_NS + seq * QUARTER_S_NS
        carried = None if seq == 0 else 0
        store.update(
            _captured("cam-c", seq, capture_ns, jpeg, carried_from_seq=carried),
            now=capture_ns / 1e9,
        )
    (stats,) = store.camera_stats(now=BASE_NS / 1e9 + 5)
    assert stats["analysed_fps"] == stats["fps"] == 4.0 and stats["frames_skipped"] == 0
    assert stats["analysed_gap_s"] == 0 and stats["analysed_gap_max_s"] == 0.25
    assert store.shedding(now=BASE_NS / 1e9 + 5)["active"] is False


def test_the_page_keeps_as_many_shown_delays_as_the_station_keeps_delays() -> None:
    """One window for the delays a camera's figures come from, on the page and the server."""
    script = (Path(station_store.__file__).parent / "web" / "app.js").read_text()
    (window,) = re.findall(r"const SHOWN_WINDOW = (\d+);", script)
    assert int(window) == DELAY_WINDOW
