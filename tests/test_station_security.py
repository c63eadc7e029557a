"""The station is closed to other sites, and no client can make its memory grow.

Real HTTP and WebSocket clients against the station served on a real port.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.sync.client import ClientConnection, connect

from camstream.config import Config, ConfigError
from camstream.core.contract import AnnotatedFrame, FrameMeta, analytics_headers
from camstream.viewers.console import format_frame, printable
from camstream.viewers.station.guard import SECURITY_HEADERS, SameSiteGuard, check_exposure
from camstream.viewers.station.server import WS_MAX_MESSAGE_BYTES
from camstream.viewers.station.store import FrameStore
from helpers import wait_until
from station_helpers import annotated_sample_frames, served_station

# Every path of the station but /healthz (open to probes): the page, its assets, the API.
STATION_PATHS = (
    "/",
    "/static/app.js",
    "/api/stats",
    "/api/events",
    "/api/frame/cam-1",
    "/api/timeline/cam-1",
    "/api/clip/cam-1?from_ns=1&to_ns=2",
)
# Names a rebinding page lives on: each resolves to 127.0.0.1 when its owner says so.
REBINDING_NAMES = (
    "127.attacker.example",
    "127.0.0.1.nip.io",
    "127.evil.com",
    "127.1.attacker.example",
    "localhost.attacker.example",
    "localhost.evil",
    "attacker.example",
)
# Names that are loopback whatever DNS says (the port is added where a test serves).
LOOPBACK_NAMES = (
    "localhost",
    "127.0.0.1",
    "127.0.0.2",
    "cam.localhost",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
)


def _open_handshake(
    address: str, host: str, headers: Iterable[str] = ()
) -> tuple[socket.socket, bytes]:
    """A WebSocket upgrade sent as raw bytes, so that `Host` is exactly `host`; returns the
    socket and the response head."""
    ip, port = address.rsplit(":", 1)
    sock = socket.create_connection((ip, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        assert chunk, response
        response += chunk
    return sock, response


def _handshake_status(address: str, host: str, headers: Iterable[str] = ()) -> int:
    sock, response = _open_handshake(address, host, headers)
    sock.close()
    return int(response.split(b" ", 2)[1])


def _assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.status_code, name)


def _closed_with(ws: ClientConnection) -> Close:
    """How the station closed `ws` (within 10 s; status messages meanwhile are skipped)."""
    deadline = time.monotonic() + 10
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd


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
        # A browser says the page is of another site: this one is allowed all the same.
        with connect(
            f"ws://{address}/ws",
            origin="https://wall.example.org",
            additional_headers={"Sec-Fetch-Site": "cross-site"},
        ) as ws:
            assert "status" in ws.recv(timeout=5)
        with pytest.raises(InvalidStatus), connect(f"ws://{address}/ws", origin="https://x.org"):
            pass


def test_dns_rebinding_is_refused_without_a_token(cfg: Config) -> None:
    """A foreign name that resolves to 127.0.0.1 still says its own name in Host, and its
    page's Origin says the same: both get 403, on every path and on the WebSocket."""
    with (
        served_station(cfg) as (address, _store),
        httpx.Client(base_url=f"http://{address}") as http,
    ):
        port = address.rsplit(":", 1)[1]
        foreign = [f"{name}:{port}" for name in REBINDING_NAMES] + ["192.168.1.20"]
        for host in foreign:
            for path in STATION_PATHS:
                assert http.get(path, headers={"Host": host}).status_code == 403, (host, path)
            page = [f"Origin: http://{host}"]
            assert _handshake_status(address, host, page) == 403, host
        for host in [f"{name}:{port}" for name in LOOPBACK_NAMES]:
            assert http.get("/api/stats", headers={"Host": host}).status_code == 200
            assert _handshake_status(address, host, [f"Origin: http://{host}"]) == 101, host
        # Probes keep working whatever name they use.
        assert http.get("/healthz", headers={"Host": "10.0.0.7"}).status_code in (200, 503)
    with (
        served_station(cfg, allowed_hosts=("wall.lan", "[fd00::7]")) as (address, _store),
        httpx.Client(base_url=f"http://{address}") as http,
    ):
        for host in ("wall.lan", "WALL.lan:8080", "[fd00:0:0:0:0:0:0:7]:8080"):
            assert http.get("/", headers={"Host": host}).status_code == 200
        for host in ("wall.lan.attacker.example", "x.wall.lan", "[fd00::8]"):
            assert http.get("/", headers={"Host": host}).status_code == 403


_LABEL = st.from_regex(r"[a-z0-9]{0,4}[a-z][a-z0-9-]{0,4}[a-z0-9]", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    loopback=st.sampled_from(["127.0.0.1", "127.1", "127", "localhost", "::1", "0:0:0:0:0:0:0:1"]),
    labels=st.lists(_LABEL, min_size=1, max_size=3),
    port=st.sampled_from(["", ":8097"]),
)
def test_no_name_is_loopback_for_what_it_starts_or_ends_with(
    loopback: str, labels: list[str], port: str
) -> None:
    """Names under another name or around a loopback address are DNS names like any other."""
    guard = SameSiteGuard(app=None, check_host=True)
    suffix = ".".join(labels)
    for name in (f"{loopback}.{suffix}", f"{suffix}.{loopback}"):
        if name.endswith(".localhost"):
            continue  # a name under .localhost, which browsers resolve to loopback themselves
        assert not guard.host_allowed(name + port), name + port


def test_loopback_spellings_are_parsed() -> None:
    guard = SameSiteGuard(app=None, check_host=True, allowed_hosts=("wall.lan",))
    for host in (*LOOPBACK_NAMES, "127.255.255.254:1", "[::1]:8097", "LOCALHOST.:80", "wall.lan"):
        assert guard.host_allowed(host), host
    for host in ("127.0.0.1:80x", "[::1", "[::1]x", "::2", "[::ffff:7f00:1]x", "", ":8097",
                 "127.0.0.1 .nip.io", "localhost@attacker.example", "0.0.0.0", "[::]"):  # fmt: skip
        assert not guard.host_allowed(host), host


def test_other_sites_pages_get_nothing(cfg: Config) -> None:
    """Another site's `<img src=http://127.0.0.1:8080/api/frame/ID>` (or fetch, or script)
    gets 403, and every answer says `Cross-Origin-Resource-Policy: same-origin`."""
    with (
        served_station(cfg) as (address, _store),
        httpx.Client(base_url=f"http://{address}") as http,
    ):
        base = f"http://{address}"
        for path in (*STATION_PATHS[1:], "/healthz"):
            for site in ("cross-site", "same-site"):
                response = http.get(path, headers={"Sec-Fetch-Site": site})
                assert response.status_code == 403, (path, site)
                _assert_security_headers(response)
            for site in ("same-origin", "none", None):  # the page, a typed address, a script
                headers = {"Sec-Fetch-Site": site} if site else {}
                response = http.get(path, headers=headers)
                assert response.status_code in (200, 404, 503), (path, site)
                _assert_security_headers(response)
        # A link from another site may open the page itself (it cannot read it).
        response = http.get("/", headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 200
        _assert_security_headers(response)
        for site in ("cross-site", "same-site"):
            with (
                pytest.raises(InvalidStatus) as refused,
                connect(f"ws://{address}/ws", additional_headers={"Sec-Fetch-Site": site}),
            ):
                pass
            assert refused.value.response.status_code == 403
            assert refused.value.response.headers["X-Frame-Options"] == "DENY"
        with connect(
            f"ws://{address}/ws", origin=base, additional_headers={"Sec-Fetch-Site": "same-origin"}
        ) as ws:
            assert "status" in ws.recv(timeout=5)
        # Refusals and unknown paths carry the security headers too.
        for response in (
            http.get("/", headers={"Host": "127.attacker.example"}),
            http.get("/api/stats", headers={"Origin": "http://attacker.example"}),
            http.get("/nowhere"),
        ):
            assert response.status_code in (403, 404)
            _assert_security_headers(response)
        # A script of another site's page, on any path (replay's timeline and clips too).
        for path in STATION_PATHS[1:]:
            refused = http.get(path, headers={"Origin": "http://attacker.example"})
            assert refused.status_code == 403, path


def test_a_token_in_the_address_becomes_a_cookie(cfg: Config) -> None:
    token = "t0ken-for-the-cookie-test"
    with served_station(cfg, token=token) as (address, _store):
        base = f"http://{address}"
        visit = httpx.get(f"{base}/?token={token}")
        assert visit.status_code == 303 and visit.headers["Location"] == "/"
        cookie = visit.headers["Set-Cookie"]
        assert cookie.startswith(f"camstream_token={token};")
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        _assert_security_headers(visit)
        with httpx.Client(base_url=base, follow_redirects=True) as browser_like:
            page = browser_like.get(f"/?token={token}")
            assert page.status_code == 200 and "camstream station" in page.text
            assert str(page.url) == f"{base}/"  # the token left the address
            assert browser_like.get("/api/stats").status_code == 200  # the cookie authorises
        # Other parameters stay; only the token goes.
        moved = httpx.get(f"{base}/api/frame/cam-1?a=1&token={token}&b=2")
        assert moved.status_code == 303 and moved.headers["Location"] == "/api/frame/cam-1?a=1&b=2"
        # The redirect stays on the station whatever the path looks like.
        for path in ("//attacker.example/", "/\\attacker.example/", "/%2F%2Fattacker.example"):
            location = httpx.get(f"{base}{path}?token={token}").headers["Location"]
            assert location.startswith("/") and location[1:2] not in ("/", "\\"), location
        wrong = httpx.get(f"{base}/?token=wrong-{token}")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        _assert_security_headers(wrong)
        # The cookie authorises the WebSocket too; the header and ?token= on it still work.
        cookie_header = {"Cookie": f"camstream_token={token}"}
        for url, headers in (
            (f"ws://{address}/ws", cookie_header),
            (f"ws://{address}/ws", {"Authorization": f"Bearer {token}"}),
            (f"ws://{address}/ws?token={token}", {}),
        ):
            with connect(url, additional_headers=headers) as ws:
                assert "status" in ws.recv(timeout=5)


def test_websocket_messages_and_clients_are_bounded(cfg: Config) -> None:
    with served_station(cfg, max_clients=2) as (address, _store), ExitStack() as clients:
        url = f"ws://{address}/ws"

        def admitted(**options: Any) -> ClientConnection | None:
            ws = clients.enter_context(connect(url, **options))
            try:
                return ws if "status" in ws.recv(timeout=5) else None
            except ConnectionClosed:
                return None  # refused: the station has not yet let a client that left go

        def client(**options: Any) -> ClientConnection:
            return wait_until(lambda: admitted(**options), 10, what="a place for a client")

        first, second = client(), client()
        with connect(url) as third:
            refusal = _closed_with(third)
        assert refusal.code == 1013 and "station full" in refusal.reason
        first.close()
        client().close()  # the place it left is free again
        second.close()
        # The page's largest subscription: 200 tiles and one shown large, of 255-character ids.
        largest = json.dumps({"subscribe": [f"{i:03d}" + "c" * 252 for i in range(201)]})
        assert len(largest) < WS_MAX_MESSAGE_BYTES
        ws = client()
        ws.send(largest)
        ws.send(largest)
        assert "status" in ws.recv(timeout=5)  # still served
        ws.close()
        # A message over the limit, plain or compressed to almost nothing on the wire.
        for compression in (None, "deflate"):
            ws = client(compression=compression)
            ws.send("x" * (WS_MAX_MESSAGE_BYTES + 1))
            assert _closed_with(ws).code == 1009  # message too big


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
    sock, response = _open_handshake(address, address)
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
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
