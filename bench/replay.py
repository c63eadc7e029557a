"""Looking back at the demo's load: seek, event clips and the live view while a replay runs.

`camstream demo --cameras N` (faithful, 4 frames/s a camera: its broker, Spark job and
station, and a headless browser on the wall; 2 cameras, then 6, past the job's capacity on
2 cores, as the wall benchmark runs them) gets 30 minutes of two recorded cameras
(`rec-1`, `rec-2`, 4 frames/s each: 14,400 frames) written into its output and events
topics as the job writes them: Kafka timestamps a little after the capture times. Then, in
interleaved rounds, each round in a rotated order:

- **seek**: a WebSocket client asks the station to replay a recorded camera from a random
  moment; the time from the request to the first replayed frame received;
- **clip**: `GET /api/clip` of 20 s of a recorded camera; the time to the whole file;
- **live delay**: a client of the live view (the demo's two cameras) records each frame's
  delay (the station's send time minus its capture time) for a window, without a replay,
  with a replay at 1x, and with one at 4x, running in another client.
"""

from __future__ import annotations

import json
import random
import statistics
import struct
import threading
import time
from typing import Any

from registry import say, spread
from stack import RunningDemo, demo_running, open_wall, percentile

from camstream.cameras.simulate import camera_ids, load_sample_frames, sample_labels
from camstream.config import Config
from camstream.core.annotation import annotate
from camstream.core.contract import FrameMeta, analytics_headers, detection_event
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_producer
from camstream.kafka.topics import ensure_topics

RECORDED = ("rec-1", "rec-2")
FPS = 4
WRITE_DELAY_MS = 700  # a recorded frame's Kafka timestamp after its capture: the demo's delay
CLIP_S = 20.0
SEEKS_PER_ROUND = 10
CONDITIONS = ("none", "replay 1x", "replay 4x")


def annotated_frames() -> list[tuple[bytes, list[list[int]]]]:
    """(annotated JPEG, its face boxes) for each frame of the sample video."""
    labels = sample_labels()["frames"]
    return [
        (encode_jpeg(annotate(image, label["faces"]), 80), label["faces"])
        for image, label in zip(load_sample_frames(), labels, strict=True)
    ]


def write_recorded_past(cfg: Config, start_ns: int, seconds: float) -> int:
    """RECORDED cameras' annotated frames (and their detection events) captured from
    `start_ns` for `seconds` at FPS, into the output and events topics; frames written."""
    frames = annotated_frames()
    ensure_topics(cfg, [cfg.output_topic, cfg.events_topic])
    producer = make_producer(cfg)
    count = round(seconds * FPS)
    shown = time.monotonic()
    try:
        for index in range(count):
            for offset, camera in enumerate(RECORDED):
                jpeg, boxes = frames[(index + 37 * offset) % len(frames)]
                capture_ns = start_ns + index * 1_000_000_000 // FPS + offset
                written_ms = capture_ns // 1_000_000 + WRITE_DELAY_MS
                meta = FrameMeta(camera, index, capture_ns, 640, 480)
                headers = analytics_headers(meta.to_headers(), boxes, written_ms * 1_000_000)
                key = camera.encode()
                producer.send(
                    cfg.output_topic, key=key, value=jpeg, headers=headers, timestamp_ms=written_ms
                )
                if boxes:
                    event = detection_event(headers, cfg.output_topic, 1 << 20)
                    producer.send(cfg.events_topic, key=key, value=event, timestamp_ms=written_ms)
            if time.monotonic() - shown > 5:
                shown = time.monotonic()
                say(f"  recorded past: {index * len(RECORDED)} of {count * len(RECORDED)} frames")
        producer.flush()
    finally:
        producer.close()
    return count * len(RECORDED)


class StationClient:
    """One WebSocket to the station, as the page opens it (the station's own Origin)."""

    def __init__(self, demo: RunningDemo, subscribe: list[str]) -> None:
        from websockets.sync.client import connect
        from websockets.typing import Origin

        self.socket = connect(
            f"ws://127.0.0.1:{demo.port}/ws",
            origin=Origin(f"http://127.0.0.1:{demo.port}"),
            max_size=None,
        )
        self.socket.send(json.dumps({"subscribe": subscribe}))

    def receive(self, timeout_s: float) -> tuple[dict[str, Any] | None, bool]:
        """(a frame's metadata, or a text message, and whether it is a frame)."""
        message = self.socket.recv(timeout=timeout_s)
        if isinstance(message, str):
            return json.loads(message), False
        (length,) = struct.unpack(">I", message[:4])
        return json.loads(message[4 : 4 + length]), True

    def close(self) -> None:
        self.socket.close()


def seek_ms(client: StationClient, replay_id: int, at_ns: int, speed: float = 1.0) -> float:
    """The time from asking for a replay to its first frame."""
    request = {"replay": {"camera_id": RECORDED[0], "at_ns": at_ns, "speed": speed,
                          "id": replay_id}}  # fmt: skip
    started = time.perf_counter()
    client.socket.send(json.dumps(request))
    deadline = started + 30
    while time.perf_counter() < deadline:
        meta, is_frame = client.receive(timeout_s=max(0.01, deadline - time.perf_counter()))
        if is_frame and meta is not None and meta.get("replay_id") == replay_id:
            return (time.perf_counter() - started) * 1000
        if not is_frame and meta is not None and meta.get("state") == "error":
            raise RuntimeError(f"replay failed: {meta}")
    raise TimeoutError("no replayed frame within 30 s")


class BackgroundReplay(threading.Thread):
    """A client replaying a recorded camera at `speed` (and reading every frame) until
    stopped: the load a replaying operator puts on the station and the broker."""

    def __init__(self, demo: RunningDemo, at_ns: int, speed: float) -> None:
        super().__init__(daemon=True)
        self.client = StationClient(demo, subscribe=[])
        self.at_ns, self.speed = at_ns, speed
        self.frames = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        request = {"replay": {"camera_id": RECORDED[1], "at_ns": self.at_ns,
                              "speed": self.speed, "id": 1}}  # fmt: skip
        self.client.socket.send(json.dumps(request))
        while not self.stop_event.is_set():
            try:
                meta, is_frame = self.client.receive(timeout_s=0.5)
            except TimeoutError:
                continue
            self.frames += is_frame and meta is not None and bool(meta.get("replay"))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
        self.client.close()


def live_delays(demo: RunningDemo, cameras: list[str], seconds: float) -> list[float]:
    """The delays of the demo's live frames as a client of the live view receives them."""
    client = StationClient(demo, subscribe=cameras)
    delays: list[float] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                meta, is_frame = client.receive(timeout_s=max(0.01, end - time.monotonic()))
            except TimeoutError:
                break
            if is_frame and meta is not None and not meta.get("replay"):
                delays.append(float(meta["delay_ms"]))
    finally:
        client.close()
    return delays


def clip_seconds(demo: RunningDemo, from_ns: int) -> tuple[float, int]:
    """(seconds to receive a CLIP_S clip of a recorded camera, its bytes)."""
    import httpx

    span = {"from_ns": from_ns, "to_ns": from_ns + int(CLIP_S * 1e9)}
    started = time.perf_counter()
    response = httpx.get(f"{demo.station}/api/clip/{RECORDED[0]}", params=span, timeout=60)
    response.raise_for_status()
    return time.perf_counter() - started, len(response.content)


def measure(quick: bool, rounds: int, live_cameras: int = 2) -> dict[str, Any]:
    """The figures with `live_cameras` live (the demo's at 4 frames/s, faithful)."""
    recorded_s = 120.0 if quick else 30 * 60.0
    window_s = 8.0 if quick else 30.0
    warmup_s = 30.0 if quick else 90.0
    rng = random.Random(24)
    live = camera_ids(live_cameras)
    with demo_running({}, cameras=live_cameras) as demo:
        viewer = open_wall(f"{demo.station}/")
        try:
            cfg = Config(kafka_bootstrap=demo.kafka_bootstrap)
            start_ns = time.time_ns() - int((recorded_s + 60) * 1e9)
            say(f"replay: writing {recorded_s / 60:.0f} min of {len(RECORDED)} recorded cameras")
            started = time.monotonic()
            frames = write_recorded_past(cfg, start_ns, recorded_s)
            say(f"  {frames} frames in {time.monotonic() - started:.0f} s; warming up")
            time.sleep(max(0.0, warmup_s - (time.monotonic() - started)))

            def moment(margin_s: float = 0.0) -> int:
                """A random capture time of the recording, `margin_s` before its end."""
                return start_ns + int(rng.uniform(0, recorded_s - margin_s) * 1e9)

            seeks: list[float] = []
            clips: list[float] = []
            clip_bytes: list[int] = []
            delays: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
            for round_index in range(rounds):
                order = CONDITIONS[round_index % 3 :] + CONDITIONS[: round_index % 3]
                say(f"replay: round {round_index + 1} of {rounds} ({', '.join(order)})")
                for condition in order:
                    replay = None
                    if condition != "none":
                        speed = 1.0 if condition == "replay 1x" else 4.0
                        # Far enough from the end not to catch up within the window.
                        replay = BackgroundReplay(demo, moment(window_s * speed + 60), speed)
                        replay.start()
                    try:
                        window = live_delays(demo, live, window_s)
                    finally:
                        if replay is not None:
                            replay.stop()
                    delays[condition].append(
                        {
                            "p50": round(percentile(window, 50), 1),
                            "p95": round(percentile(window, 95), 1),
                            "frames": len(window),
                            "replayed_frames": 0 if replay is None else replay.frames,
                        }
                    )
                client = StationClient(demo, subscribe=[])
                try:
                    for seek in range(SEEKS_PER_ROUND):
                        seeks.append(seek_ms(client, 100 * round_index + seek + 1, moment(60)))
                finally:
                    client.close()
                for _ in range(2):
                    took, size = clip_seconds(demo, moment(CLIP_S))
                    clips.append(took)
                    clip_bytes.append(size)
                say(
                    f"  seek p50 {percentile(seeks, 50):.0f} ms; clip {clips[-1]:.2f} s;"
                    + "".join(f" {c}: delay p50 {delays[c][-1]['p50']} ms;" for c in CONDITIONS)
                )
        finally:
            if viewer is not None:
                viewer.quit()
    ratios = {
        condition: [
            with_replay["p50"] / without["p50"]
            for with_replay, without in zip(delays[condition], delays["none"], strict=True)
        ]
        for condition in CONDITIONS[1:]
    }
    return {
        "recorded": {
            "cameras": len(RECORDED),
            "fps": FPS,
            "seconds": recorded_s,
            "frames": frames,
        },
        "live": {"cameras": live_cameras, "fps": 4.0, "preset": "faithful", "window_s": window_s},
        "rounds": rounds,
        "browser": viewer is not None,
        "seek_ms": {**spread(seeks), "p95": round(percentile(seeks, 95), 1)},
        "clip_s": {
            **spread(clips, 3),
            "seconds_of_video": CLIP_S,
            "bytes_median": statistics.median(clip_bytes),
        },
        "live_delay_ms": delays,
        "live_delay_ratio": {c: spread(r, 3) for c, r in ratios.items()},
    }
