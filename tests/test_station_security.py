"""The station is closed to other sites, and no client can make its memory grow.

Real HTTP and WebSocket clients against the station served on a real port.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from camstream.config import Config, ConfigError
from camstream.core.contract import AnnotatedFrame, FrameMeta, analytics_headers
from camstream.viewers.console import format_frame, printable
from camstream.viewers.station.guard import check_exposure
from camstream.viewers.station.store import FrameStore
from station_helpers import annotated_sample_frames, served_station


def test_websocket_from_another_site_is_refused(cfg: Config) -> None:
    with served_station(cfg) as (address, _store):
        url = f"ws://{address}/ws"
        for origin in ("http://evil.example", "null", f"http://{address}.evil.example"):
            with pytest.raises(InvalidStatus) as refused, connect(url, origin=origin) as ws:
                ws.recv(timeout=5)
            assert refused.value.response.status_code == 403, origin
        # The station's own page, and clients that are not browsers (no Origin), get in.
        for origin in (f"http://{address}", None):
            with connect(url, origin=origin) as ws:
                assert b'"type": "status"' in ws.recv(timeout=5).encode()


def test_a_configured_origin_may_open_the_websocket(cfg: Config) -> None:
    with served_station(cfg, allowed_origins=("https://wall.example.org",)) as (address, _):
        with connect(f"ws://{address}/ws", origin="https://wall.example.org") as ws:
            assert "status" in ws.recv(timeout=5)
        with pytest.raises(InvalidStatus), connect(f"ws://{address}/ws", origin="https://x.org"):
            pass


def test_dns_rebinding_is_refused_without_a_token(cfg: Config) -> None:
    """A foreign name that resolves to 127.0.0.1 still says its own name in Host."""
    with served_station(cfg) as (address, _store):
        port = address.rsplit(":", 1)[1]
        base = f"http://{address}"
        for host in (f"attacker.example:{port}", "192.168.1.20", f"localhost.evil:{port}"):
            for path in ("/", "/api/stats", "/api/frame/cam-1", "/static/app.js"):
                response = httpx.get(base + path, headers={"Host": host})
                assert response.status_code == 403, (host, path)
            with (
                pytest.raises(InvalidStatus),
                connect(f"ws://{address}/ws", additional_headers={"Host": host}),
            ):
                pass
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"cam.localhost:{port}"):
            assert httpx.get(base + "/api/stats", headers={"Host": host}).status_code == 200
        # Probes keep working whatever name they use.
        assert httpx.get(base + "/healthz", headers={"Host": "10.0.0.7"}).status_code in (200, 503)
    with served_station(cfg, allowed_hosts=("wall.lan",)) as (address, _store):
        assert httpx.get(f"http://{address}/", headers={"Host": "wall.lan"}).status_code == 200


def test_with_a_token_any_host_name_may_be_used(cfg: Config) -> None:
    token = "t0ken-for-the-host-test"
    with served_station(cfg, token=token) as (address, _store):
        response = httpx.get(
            f"http://{address}/api/stats",
            headers={"Host": "wall.example.com", "Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        # Still no WebSocket from another site, token or not.
        with (
            pytest.raises(InvalidStatus),
            connect(f"ws://{address}/ws?token={token}", origin="http://evil.example"),
        ):
            pass


def test_exposed_without_a_token_refuses_to_start() -> None:
    exposed = Config(station_host="0.0.0.0")
    with pytest.raises(ConfigError, match="--insecure-no-token"):
        check_exposure(exposed)
    check_exposure(exposed.replace(station_token="a-long-random-token"))
    check_exposure(exposed.replace(insecure_no_token=True))
    check_exposure(Config(station_host="127.0.0.1"))
    check_exposure(Config(station_host="localhost"))
    # The command says so in one line and exits with the usage code, before any Kafka work.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSTREAM_STATION")}
    done = subprocess.run(
        [sys.executable, "-m", "camstream", "station", "--station-host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "CAMSTREAM_STATION_TOKEN" in done.stderr and "Traceback" not in done.stderr


def _frame(camera_id: str, seq: int, jpeg: bytes) -> AnnotatedFrame:
    now = time.time_ns()
    headers = analytics_headers(FrameMeta(camera_id, seq, now, 640, 480).to_headers(), [], now)
    return AnnotatedFrame.from_record(jpeg, headers)


def _stuck_websocket(address: str) -> socket.socket:
    """A client that opens the WebSocket, subscribes to every camera, then reads nothing."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n", 1)[0], response
    payload = b'{"subscribe": "*"}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def test_a_client_that_reads_nothing_cannot_make_memory_grow(cfg: Config) -> None:
    """100 cameras x 5 frames/s into the station while one client reads nothing."""
    jpegs = [jpeg for jpeg, _ in annotated_sample_frames()[:10]]
    cameras = [f"cam-{i:03d}" for i in range(100)]
    stop = threading.Event()
    fed = {"frames": 0}

    def feed(store: FrameStore) -> None:
        seq = 0
        next_round = time.monotonic()
        while not stop.is_set():
            for i, camera_id in enumerate(cameras):
                jpeg = bytes(bytearray(jpegs[(i + seq) % len(jpegs)]))  # a fresh copy each time
                store.update(_frame(camera_id, seq, jpeg))
                fed["frames"] += 1
            seq += 1
            next_round += 0.2  # 5 frames/s per camera
            stop.wait(max(0.0, next_round - time.monotonic()))

    with served_station(cfg) as (address, store):
        feeder = threading.Thread(target=feed, args=(store,), daemon=True)
        tracemalloc.start()
        feeder.start()
        stuck = _stuck_websocket(address)
        try:
            time.sleep(6)  # the stuck client's socket and the server's buffer fill up
            before, _ = tracemalloc.get_traced_memory()
            frames_before = fed["frames"]
            # A client that reads still gets fresh frames meanwhile: nobody waits for the stuck one.
            with connect(f"ws://{address}/ws") as reader:
                reader.send('{"subscribe": ["cam-042"]}')
                deadline = time.monotonic() + 10
                fresh = 0
                while time.monotonic() < deadline and fresh < 5:
                    if isinstance(reader.recv(timeout=5), bytes):
                        fresh += 1
                assert fresh >= 5
            time.sleep(8)
            after, peak = tracemalloc.get_traced_memory()
            frames_during = fed["frames"] - frames_before
        finally:
            stop.set()
            feeder.join(timeout=5)
            tracemalloc.stop()
            stuck.close()
        largest = max(len(j) for j in jpegs)
        print(
            f"non-reading client: {frames_during} frames fed in between,"
            f" traced memory {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (peak {peak / 1e6:.1f})"
        )
        assert frames_during >= 0.8 * 100 * 5 * 8  # about 5 frames/s per camera for 8+ s
        # Flat: about 300 MB of frames passed through; what is held grew by less than a few
        # frames (the store keeps one per camera, the stuck client at most one message).
        assert after - before < 8 * largest + 512 * 1024, (before, after)


def test_cameras_silent_for_long_are_forgotten() -> None:
    jpeg = annotated_sample_frames()[0][0]
    store = FrameStore(stale_after_s=5, forget_after_s=60)
    start = time.time()
    store.update(_frame("cam-old", 1, jpeg), now=start)
    store.update(_frame("cam-live", 1, jpeg), now=start)
    store.update(_frame("cam-live", 2, jpeg), now=start + 50)
    assert store.camera_count() == 2
    stats = {c["camera_id"]: c for c in store.camera_stats(now=start + 55)}
    assert stats["cam-old"]["stale"] and not stats["cam-live"]["stale"]
    assert store.camera_count() == 2  # stale, still shown
    store.camera_stats(now=start + 61)
    assert store.camera_count() == 1 and store.latest("cam-old") is None
    assert store.cameras_forgotten == 1
    # A forgotten camera that comes back starts afresh (its old dedup position is gone).
    assert store.update(_frame("cam-old", 1, jpeg), now=start + 70)


def test_camera_ids_are_escaped_wherever_they_are_shown() -> None:
    jpeg = annotated_sample_frames()[0][0]
    hostile = '<img src=x onerror="alert(1)">\x1b[2J\x1b]0;owned\x07\u202emoc.evil'
    frame = _frame(hostile, 3, jpeg)
    # (The Jupyter monitor's HTML: tests/test_notebooks.py runs it with such a camera id.)
    line = format_frame(frame)  # the console monitor
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b[2J" in line and "\\u202e" in line
    assert printable("caméra-7 東京") == "caméra-7 東京"  # printable text is left alone
