"""Replay in the station: a camera's recorded frames read back from Kafka by capture time and
paced over the page's own WebSocket; its timeline; a detection's clip span. A real broker,
the station served by uvicorn, a real WebSocket client; the frames are a recorded past
(published with explicit capture times), not waited for in real time."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition
from websockets.sync.client import ClientConnection, connect

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, FrameMeta, analytics_headers
from camstream.kafka.clients import make_admin
from camstream.kafka.recorder import camera_partition, frame_recording
from camstream.local.ports import free_port
from camstream.viewers import camera_clip
from camstream.viewers.station import replay, timeline
from camstream.viewers.station.app import unpack_frame
from camstream.viewers.station.store import event_clip_span
from helpers import config_with_topics, wait_until
from station_helpers import WRITE_DELAY_MS, AnnotatedFramePublisher, record_past, served_station

FACE, NO_FACE = 0, 35  # sample frames with and without a face
INTERVAL_NS = 250_000_000  # 4 frames/s
S = 1_000_000_000
CAMERA = "cam-r"
# The recorded past: 30 s of frames (every 10th with a face), no frames for 8 s, then 4 s.
BEFORE_GAP = 120
AFTER_GAP = 16
GAP_NS = 8 * S


@dataclass
class Past:
    cfg: Config
    address: str
    captured: list[int]  # capture times of CAMERA's frames, in order
    faces: list[int]  # capture times of those with a face (each has a detection event)


@pytest.fixture(scope="module")
def past(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Past]:
    cfg = config_with_topics(kafka_bootstrap, tmp_path_factory.mktemp("replay"), partitions=2)
    start_ns = time.time_ns() - 10 * 60 * S
    captures = [start_ns + i * INTERVAL_NS for i in range(BEFORE_GAP)]
    captures += [captures[-1] + GAP_NS + i * INTERVAL_NS for i in range(AFTER_GAP)]
    publisher = AnnotatedFramePublisher(cfg)
    faces = []
    try:
        for index, capture_ns in enumerate(captures):
            face = index % 10 == 0
            publisher.send(CAMERA, FACE if face else NO_FACE, capture_ns=capture_ns)
            if face:
                faces.append(capture_ns)
        publisher.flush()
    finally:
        publisher.close()
    with served_station(cfg) as (address, _store):
        yield Past(cfg, address, captures, faces)


@dataclass
class Received:
    arrived: float  # time.monotonic()
    frame: dict[str, Any] | None = None  # a replayed frame's metadata
    state: dict[str, Any] | None = None  # a replay message

    @property
    def meta(self) -> dict[str, Any]:
        assert self.frame is not None, self.state
        return self.frame


def receive(ws: ClientConnection, timeout_s: float = 10.0) -> Received | None:
    """The next replayed frame or replay message (live frames and status are skipped);
    None when nothing comes within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = ws.recv(timeout=left)
        except TimeoutError:
            return None
        if isinstance(message, bytes):
            meta, jpeg = unpack_frame(message)
            if meta.get("replay"):
                assert jpeg[:3] == b"\xff\xd8\xff"
                return Received(time.monotonic(), frame=meta)
            continue
        body = json.loads(message)
        if body["type"] == "replay":
            return Received(time.monotonic(), state=body)
    return None


def state(ws: ClientConnection, expected: str, timeout_s: float = 10.0) -> dict[str, Any]:
    got = receive(ws, timeout_s)
    assert got is not None and got.state is not None, got
    assert got.state["state"] == expected, got.state
    return got.state


def frame(ws: ClientConnection, timeout_s: float = 10.0) -> Received:
    got = receive(ws, timeout_s)
    assert got is not None and got.frame is not None, got
    return got


def quiet(ws: ClientConnection, seconds: float) -> list[Received]:
    """What arrives over the next `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        item = receive(ws, left)
        if item is not None:
            got.append(item)
    return got


@contextmanager
def opened(address: str) -> Iterator[ClientConnection]:
    with connect(f"ws://{address}/ws") as ws:
        ws.send(json.dumps({"subscribe": []}))  # no live frames: only the replay's
        yield ws


def ask(ws: ClientConnection, **request: Any) -> None:
    ws.send(json.dumps({"replay": {"camera_id": CAMERA, **request}}))


def test_a_replay_starts_at_the_first_frame_at_or_after_the_moment_and_keeps_its_pace(
    past: Past,
) -> None:
    moment = past.captured[0] + 12_300_000_000  # between two frames: the next one's
    first = next(i for i, t in enumerate(past.captured) if t >= moment)
    with opened(past.address) as ws:
        ask(ws, at_ns=moment, speed=4, id=1)
        started = state(ws, "started")
        assert started["replay_id"] == 1 and started["requested_ns"] == moment
        assert started["first_capture_ns"] == past.captured[first]
        assert started["before_retention"] is False and started["oldest_ns"] is None
        frames = [frame(ws) for _ in range(17)]
        captures = [f.meta["capture_ts_ns"] for f in frames]
        assert captures == past.captured[first : first + 17]  # exactly, in order
        assert all(f.meta["camera_id"] == CAMERA for f in frames)
        # At 4x, frames captured 250 ms apart arrive about 62 ms apart.
        intervals = [b.arrived - a.arrived for a, b in itertools.pairwise(frames)]
        mean = sum(intervals) / len(intervals)
        assert 0.045 < mean < 0.1, intervals
        assert max(intervals) < 0.25, intervals

        # Paused: nothing more (what was on its way aside), then one frame per step.
        ws.send(json.dumps({"replay_speed": 0}))
        in_flight = [r.frame["capture_ts_ns"] for r in quiet(ws, 0.3) if r.frame]
        assert len(in_flight) <= 2
        assert quiet(ws, 0.5) == []
        shown = captures[-1] if not in_flight else in_flight[-1]
        for _ in range(3):
            ws.send(json.dumps({"replay_step": 1}))
            stepped = frame(ws, 2).frame
            assert stepped is not None
            assert stepped["capture_ts_ns"] == past.captured[past.captured.index(shown) + 1]
            shown = stepped["capture_ts_ns"]
            assert quiet(ws, 0.3) == []  # exactly one per step
        # Playing again: paced from now on, at the new speed.
        ws.send(json.dumps({"replay_speed": 2}))
        resumed = [frame(ws, 2) for _ in range(4)]
        pace = (resumed[-1].arrived - resumed[0].arrived) / 3
        assert 0.08 < pace < 0.2, pace  # 125 ms at 2x
        # Live: the replay ends, its frames stop.
        ws.send(json.dumps({"live": True}))
        late = quiet(ws, 0.4)
        assert len(late) <= 2 and quiet(ws, 0.3) == []


def test_a_gap_is_shown_once_and_not_waited_out_and_the_end_is_live(past: Past) -> None:
    before = BEFORE_GAP - 3
    with opened(past.address) as ws:
        ask(ws, at_ns=past.captured[before], speed=4, id=7)
        assert state(ws, "started")["first_capture_ns"] == past.captured[before]
        got: list[Received] = []
        while (item := receive(ws, 10)) is not None:
            got.append(item)
            if item.state and item.state["state"] in ("live", "ended", "error"):
                break
    frames = [g.frame["capture_ts_ns"] for g in got if g.frame]
    assert frames == past.captured[before:]  # every frame to the end of the recording
    gaps = [g for g in got if g.state and g.state["state"] == "gap"]
    assert len(gaps) == 1
    (gap,) = gaps
    assert gap.state is not None
    assert gap.state["from_ns"] == past.captured[BEFORE_GAP - 1]
    assert gap.state["to_ns"] == past.captured[BEFORE_GAP]
    assert gap.state["gap_s"] == pytest.approx(8.0)
    # The frame after it follows about a second later: not the 2 s the gap takes at 4x.
    after = got[got.index(gap) + 1]
    assert after.frame is not None and after.frame["capture_ts_ns"] == past.captured[BEFORE_GAP]
    assert 0.8 < after.arrived - gap.arrived < 1.5
    # The end of the recording: the page is told to go live, and the session ends.
    end = got[-1].state
    assert end is not None and end["state"] == "live" and end["replay_id"] == 7


class Recordings:
    """Every recording the station's replay opens, and which of them it closed."""

    def __init__(self) -> None:
        self.opened: list[Any] = []
        self.closed: list[Any] = []
        self.lock = threading.Lock()

    def open(self, cfg: Config, camera_id: str, topic: str | None = None) -> Any:
        recording = frame_recording(cfg, camera_id, topic)
        close = recording.close

        def closing() -> None:
            close()
            with self.lock:
                self.closed.append(recording)

        recording.close = closing  # an instance attribute over the method: counted
        with self.lock:
            self.opened.append(recording)
        return recording

    def all_closed(self) -> bool:
        with self.lock:
            return len(self.closed) == len(self.opened) and all(
                r._consumer._closed for r in self.opened
            )


def replay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("station-replay-")]


def test_a_new_request_replaces_the_old_and_closing_the_socket_ends_it(
    past: Past, monkeypatch: pytest.MonkeyPatch
) -> None:
    recordings = Recordings()
    monkeypatch.setattr(replay, "frame_recording", recordings.open)
    with opened(past.address) as ws:
        ask(ws, at_ns=past.captured[10], speed=0, id=1)  # paused: it waits for steps
        state(ws, "started")
        assert frame(ws).meta["replay_id"] == 1
        ask(ws, at_ns=past.captured[60], speed=0, id=2)
        started = state(ws, "started")
        assert started["replay_id"] == 2 and started["first_capture_ns"] == past.captured[60]
        assert frame(ws).meta["replay_id"] == 2
        # The first session's reader stopped and closed its consumer before the second began.
        assert len(recordings.opened) == 2 and recordings.closed == recordings.opened[:1]
        assert len(replay_threads()) == 1
    wait_until(lambda: not replay_threads(), 10, 0.05, what="the replay's reader to stop")
    assert recordings.all_closed()


def test_a_camera_without_frames_and_bad_requests_get_clear_answers(past: Past) -> None:
    with opened(past.address) as ws:
        ws.send(json.dumps({"replay": {"camera_id": "cam-nobody", "at_ns": past.captured[0]}}))
        error = state(ws, "error")
        assert error["reason"] == "no_frames" and "'cam-nobody'" in error["error"]
        # After the camera's last frame: nothing recorded from then on either.
        ask(ws, at_ns=past.captured[-1] + S, id=3)
        assert state(ws, "error")["reason"] == "no_frames"
        for bad in ({"camera_id": ""}, {"camera_id": CAMERA, "at_ns": "soon"},
                    {"camera_id": CAMERA, "at_ns": 1, "speed": 100}):  # fmt: skip
            ws.send(json.dumps({"replay": {**bad, "id": 9}}))
            refused = state(ws, "error")
            assert refused["reason"] == "bad_request" and refused["replay_id"] == 9
        # The connection serves on: a replay after all that still plays.
        ask(ws, at_ns=past.captured[5], speed=1, id=4)
        assert state(ws, "started")["first_capture_ns"] == past.captured[5]


def test_kafka_down_is_an_error_message_not_a_dropped_connection(cfg: Config) -> None:
    down = cfg.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_connect_timeout_s=1.0)
    with served_station(down) as (address, _store), opened(address) as ws:
        ask(ws, at_ns=time.time_ns() - 60 * S, id=1)
        error = state(ws, "error")
        assert error["reason"] == "failed" and "cannot reach Kafka" in error["error"]
        ws.send(json.dumps({"subscribe": "*"}))
        assert "status" in ws.recv(timeout=5)  # still connected
        # The timeline says so too, as a 503 with the reason.
        answer = httpx.get(f"http://{address}/api/timeline/{CAMERA}", timeout=30)
        assert answer.status_code == 503 and "cannot reach Kafka" in answer.json()["error"]


def test_a_time_before_retention_plays_from_the_oldest_frame_kept(cfg: Config) -> None:
    """Retention removed the camera's first 20 frames (delete_records moves the log start
    offset as retention does): a moment before them starts at the oldest kept, and says so."""
    start_ns = time.time_ns() - 10 * 60 * S
    captured = record_past(cfg, "cam-old", NO_FACE, 40, start_ns, INTERVAL_NS)
    admin: KafkaAdminClient = make_admin(cfg)
    try:
        partition = camera_partition("cam-old", 2)  # alone in its partition
        admin.delete_records({TopicPartition(cfg.output_topic, partition): 20})
    finally:
        admin.close()
    with served_station(cfg) as (address, _store), opened(address) as ws:
        ws.send(json.dumps({"replay": {"camera_id": "cam-old", "at_ns": start_ns - 60 * S}}))
        started = state(ws, "started")
        assert started["before_retention"] is True
        assert started["oldest_ns"] == started["first_capture_ns"] == captured[20]
        assert frame(ws).meta["capture_ts_ns"] == captured[20]
        kept = httpx.get(f"http://{address}/api/timeline/cam-old", timeout=30).json()
        assert kept["oldest_ns"] == (captured[20] // 1_000_000 + WRITE_DELAY_MS) * 1_000_000
        assert kept["newest_ns"] == (captured[-1] // 1_000_000 + WRITE_DELAY_MS) * 1_000_000


def test_the_timeline_marks_the_detections_and_events_carry_their_clip(
    past: Past, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"http://{past.address}"
    body = httpx.get(f"{base}/api/timeline/{CAMERA}", timeout=30).json()
    assert body["oldest_ns"] == (past.captured[0] // 1_000_000 + WRITE_DELAY_MS) * 1_000_000
    assert [d["capture_ns"] for d in body["detections"]] == past.faces
    assert body["truncated"] is False and body["now_ns"] > body["newest_ns"]
    monkeypatch.setattr(timeline, "MAX_MARKS", 3)
    body = httpx.get(f"{base}/api/timeline/{CAMERA}", timeout=30).json()
    assert len(body["detections"]) == 3 and body["truncated"] is True
    # A camera nothing was recorded of: an empty timeline of its partition.
    assert httpx.get(f"{base}/api/timeline/cam-x", timeout=30).json()["detections"] == []

    # The detections list: each event with its frame's capture time and its clip's span
    # (clip_before_s before it to clip_after_s after it), and where to download the clip.
    def events() -> list[dict[str, Any]]:
        return httpx.get(f"{base}/api/events").json()["events"]

    (event,) = wait_until(events, 20, what="the detection in the list")
    assert event["capture_ts_ns"] == past.faces[0]
    from_ns, to_ns = event_clip_span(past.faces[0], 5.0, 5.0)
    assert (from_ns, to_ns) == (past.faces[0] - 5 * S, past.faces[0] + 5 * S)
    assert event["clip"] == {
        "from_ns": from_ns,
        "to_ns": to_ns,
        "download": f"/api/clip/{CAMERA}?from_ns={from_ns}&to_ns={to_ns}",
    }


def test_a_clip_plays_its_span_at_capture_speed_and_ends(past: Past) -> None:
    """The page's replay of a detection's clip: from `at_ns` to `until_ns`, then "ended"."""
    at_ns, until_ns = past.captured[40], past.captured[40] + 2 * S  # 9 frames, 2 s at 1x
    with opened(past.address) as ws:
        ask(ws, at_ns=at_ns, until_ns=until_ns, speed=1, id=5)
        assert state(ws, "started")["until_ns"] == until_ns
        frames = [frame(ws, 3) for _ in range(9)]
        assert [f.meta["capture_ts_ns"] for f in frames] == past.captured[40:49]
        assert 1.7 < frames[-1].arrived - frames[0].arrived < 2.5
        ended = state(ws, "ended")
        assert ended["frames"] == 9 and ended["last_capture_ns"] == past.captured[48]


def _frame_of(size: int, seq: int) -> AnnotatedFrame:
    headers = analytics_headers(FrameMeta("cam-b", seq, S + seq, 640, 480).to_headers(), [], S)
    return AnnotatedFrame.from_record(b"\xff\xd8\xff" + bytes(size - 3), headers)


def test_a_replays_buffer_is_bounded_in_frames_and_bytes() -> None:
    """The reader blocks while the buffer is full (by bytes, or by frames), and gives up once
    told to stop; the pacer takes the frames in order."""

    async def scenario() -> None:
        buffer = replay.ReplayBuffer(asyncio.get_running_loop(), max_frames=4, max_bytes=10_000)
        stop = threading.Event()
        put: list[bool] = []
        frames = [_frame_of(3_000, seq) for seq in range(4)]
        frames += [_frame_of(100, seq) for seq in range(4, 10)]
        reader = threading.Thread(
            target=lambda: put.extend(buffer.put(f, stop) for f in frames), daemon=True
        )
        reader.start()
        try:
            await asyncio.sleep(0.3)
            assert put == [True] * 3  # 3 x 3,000 bytes: a fourth would pass 10,000
            taken = [await buffer.get() for _ in range(2)]
            await asyncio.sleep(0.3)
            assert put == [True] * 6  # then small frames: 4 frames at most
            assert buffer.peak_bytes <= 10_000 and buffer.peak_frames == 4
        finally:
            stop.set()
        await asyncio.to_thread(reader.join, 2)
        assert not reader.is_alive() and put == [True] * 6 + [False] * 4
        taken += [await buffer.get() for _ in range(4)]
        assert [f.seq for f in taken if isinstance(f, AnnotatedFrame)] == list(range(6))
        assert buffer.empty()

    asyncio.run(scenario())


def _clip_url(past: Past, from_ns: int, to_ns: int, camera: str = CAMERA) -> str:
    return f"http://{past.address}/api/clip/{camera}?from_ns={from_ns}&to_ns={to_ns}"


def test_a_clip_downloads_as_a_video_file_of_the_frames_in_its_span(
    past: Past, tmp_path: Path
) -> None:
    from_ns, to_ns = past.captured[40] - 1, past.captured[48]
    answer = httpx.get(_clip_url(past, from_ns, to_ns), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/webm"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(past.captured[40] // S))
    assert answer.headers["content-disposition"] == f'attachment; filename="{CAMERA}_{stamp}.webm"'
    path = tmp_path / "clip.webm"
    path.write_bytes(answer.content)
    assert video_frames(path) == 9
    # Nothing captured in the span (the gap): 404, saying what is kept.
    gap = httpx.get(_clip_url(past, past.captured[119] + 1, past.captured[120] - 1), timeout=30)
    assert gap.status_code == 404 and "the oldest available: " in gap.json()["error"]
    assert httpx.get(_clip_url(past, 0, 0), timeout=30).status_code == 400
    assert httpx.get(f"http://{past.address}/api/clip/{CAMERA}", timeout=30).status_code == 400
    # Longer than clip_max_s: refused, and why.
    with served_station(past.cfg.replace(clip_max_s=5.0)) as (address, _store):
        url = f"http://{address}/api/clip/{CAMERA}?from_ns={from_ns}&to_ns={from_ns + 6 * S}"
        long = httpx.get(url, timeout=30)
        assert long.status_code == 400 and "clip_max_s" in long.json()["error"]


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.read()[0]:
            count += 1
        return count
    finally:
        capture.release()


def test_at_most_two_clips_are_written_at_once(past: Past, monkeypatch: pytest.MonkeyPatch) -> None:
    writing = threading.Semaphore(0)
    release = threading.Event()
    write_clip = camera_clip.write_clip

    def held(path: Path, frames: Any) -> Any:
        writing.release()
        release.wait(20)
        return write_clip(path, frames)

    monkeypatch.setattr(camera_clip, "write_clip", held)
    url = _clip_url(past, past.captured[0], past.captured[4])
    answers: list[httpx.Response] = []
    clients = [threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=30)))]
    clients.append(threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=30))))
    for client in clients:
        client.start()
    try:
        assert writing.acquire(timeout=20) and writing.acquire(timeout=20)  # both writing
        third = httpx.get(url, timeout=30)
        assert third.status_code == 503 and third.headers["retry-after"] == "2"
        assert "at most 2 clips" in third.text
    finally:
        release.set()
        for client in clients:
            client.join(timeout=30)
    assert [a.status_code for a in answers] == [200, 200]
