"""The monitoring station in the browser: a live wall of every camera, with alerts.

One Kafka consumer thread keeps only the latest annotated frame per camera (memory is
bounded by the number of cameras, not by the frame rate) plus bounded statistics. Browsers
connect over one WebSocket each; every client gets the newest frame of each camera it
shows, and a slow client simply skips frames: nothing queues, and the consumer never waits
for a browser. A WebSocket rather than MJPEG because a browser opens at most about six
HTTP/1.1 connections per host, so one MJPEG stream per tile cannot show hundreds of
cameras; one WebSocket multiplexes them all, and the page subscribes only to the tiles it
shows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import statistics
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from camstream.analysis import thumbnail_jpeg
from camstream.config import Config
from camstream.frames import AnnotatedFrame
from camstream.monitor import Deduplicator

log = logging.getLogger(__name__)

TOKEN_COOKIE = "camstream_token"
DELAY_WINDOW = 256  # delays kept per camera for p50/p95
FPS_WINDOW_S = 5.0
EVENT_HISTORY = 50
EVENT_REPEAT_S = 3.0  # a camera that keeps seeing faces raises an event at most this often
THUMBNAIL_WIDTH = 160
SEND_INTERVAL_S = 0.05  # how often a client's sender looks for newer frames
# A client that takes no frame for this long is disconnected (it holds one frame until then).
SEND_TIMEOUT_S = 30.0
STATUS_INTERVAL_S = 1.0


@dataclass
class CameraState:
    camera_id: str
    frame: AnnotatedFrame
    version: int = 0
    frames: int = 0
    last_seen: float = 0.0  # wall-clock seconds
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    delays_ms: deque[float] = field(default_factory=lambda: deque(maxlen=DELAY_WINDOW))
    last_event_at: float = 0.0


@dataclass(frozen=True)
class Event:
    event_id: int
    ts: float
    camera_id: str
    seq: int
    faces: int
    thumbnail_jpeg: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "time": time.strftime("%H:%M:%S", time.localtime(self.ts)),
            "ts": self.ts,
            "camera_id": self.camera_id,
            "seq": self.seq,
            "faces": self.faces,
            "thumbnail": "data:image/jpeg;base64," + base64.b64encode(self.thumbnail_jpeg).decode(),
        }


class FrameStore:
    """Latest frame and bounded statistics per camera; safe to use from several threads."""

    def __init__(self, stale_after_s: float = 5.0, forget_after_s: float = 1800.0) -> None:
        self.stale_after_s = stale_after_s
        self.forget_after_s = forget_after_s
        self._next_sweep = 0.0
        self.cameras_forgotten = 0
        self._cameras: dict[str, CameraState] = {}
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._next_event_id = 1
        self._lock = threading.Lock()
        self._dedup = Deduplicator()
        self.frames_total = 0
        # At-least-once delivery repeats frames after a retry or a job restart: shown once.
        self.duplicates_hidden = 0

    def update(self, frame: AnnotatedFrame, now: float | None = None) -> bool:
        """Show `frame` unless it repeats (or predates) one shown already; False if hidden."""
        now = time.time() if now is None else now
        delay_ms = (now * 1e9 - frame.capture_ts_ns) / 1e6
        with self._lock:
            self._sweep(now)
            if not self._dedup.is_new(frame):
                self.duplicates_hidden += 1
                return False
            state = self._cameras.get(frame.camera_id)
            if state is None:
                state = self._cameras[frame.camera_id] = CameraState(frame.camera_id, frame)
            state.frame = frame  # the previous frame is dropped here: only the latest is kept
            state.version += 1
            state.frames += 1
            state.last_seen = now
            state.arrivals.append(now)
            state.delays_ms.append(delay_ms)
            self.frames_total += 1
            raise_event = frame.faces > 0 and now - state.last_event_at >= EVENT_REPEAT_S
            if raise_event:
                state.last_event_at = now
        if raise_event:
            # The thumbnail is made outside the lock: only the append needs it.
            thumbnail = thumbnail_jpeg(frame.jpeg, THUMBNAIL_WIDTH, 70) or b""
            with self._lock:
                self._events.append(
                    Event(
                        self._next_event_id, now, frame.camera_id, frame.seq, frame.faces, thumbnail
                    )
                )
                self._next_event_id += 1
        return True

    def _sweep(self, now: float) -> None:
        """Drop cameras silent for `forget_after_s` (at most every few seconds; under lock).

        Memory then follows the cameras that are live, not every id ever seen.
        """
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(5.0, self.forget_after_s / 10)
        silent = [c for c, s in self._cameras.items() if now - s.last_seen > self.forget_after_s]
        for camera_id in silent:
            del self._cameras[camera_id]
            self._dedup.forget(camera_id)
        self.cameras_forgotten += len(silent)

    def forget_silent(self, now: float | None = None) -> None:
        with self._lock:
            self._next_sweep = 0.0
            self._sweep(time.time() if now is None else now)

    def versions(self) -> dict[str, int]:
        with self._lock:
            return {cid: state.version for cid, state in self._cameras.items()}

    def latest(self, camera_id: str) -> tuple[int, AnnotatedFrame] | None:
        with self._lock:
            state = self._cameras.get(camera_id)
            return None if state is None else (state.version, state.frame)

    def events(self, after_id: int = 0) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.event_id > after_id]

    def camera_stats(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        with self._lock:
            self._sweep(now)
            states = [
                (s.camera_id, s.frame, s.frames, s.last_seen, list(s.arrivals), list(s.delays_ms))
                for s in self._cameras.values()
            ]
        stats = []
        for camera_id, frame, frames, last_seen, arrivals, delays in sorted(states):
            recent = [t for t in arrivals if now - t <= FPS_WINDOW_S]
            fps = 0.0
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
            stats.append(
                {
                    "camera_id": camera_id,
                    "frames": frames,
                    "seq": frame.seq,
                    "faces": frame.faces,
                    "fps": round(fps, 2),
                    "delay_ms_last": round(delays[-1], 1),
                    "delay_ms_p50": round(statistics.median(delays), 1),
                    "delay_ms_p95": round(_percentile(delays, 95), 1),
                    "last_seen_s_ago": round(now - last_seen, 2),
                    "stale": now - last_seen > self.stale_after_s,
                }
            )
        return stats

    def memory_bytes(self) -> int:
        """Bytes of frame data held: the latest JPEG per camera and the event thumbnails."""
        with self._lock:
            frames = sum(len(s.frame.jpeg) for s in self._cameras.values())
            return frames + sum(len(e.thumbnail_jpeg) for e in self._events)

    def camera_count(self) -> int:
        with self._lock:
            return len(self._cameras)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def pack_frame(frame: AnnotatedFrame, now: float | None = None) -> bytes:
    """A WebSocket binary message: 4-byte length, JSON metadata, then the JPEG."""
    now = time.time() if now is None else now
    meta = json.dumps(
        {
            "camera_id": frame.camera_id,
            "seq": frame.seq,
            "faces": frame.faces,
            "boxes_xyxy": frame.boxes_xyxy,
            "width": frame.width,
            "height": frame.height,
            "delay_ms": round((now * 1e9 - frame.capture_ts_ns) / 1e6, 1),
            "skipped": frame.skipped,
        },
        separators=(",", ":"),
    ).encode()
    return struct.pack(">I", len(meta)) + meta + frame.jpeg


def unpack_frame(message: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack(">I", message[:4])
    return json.loads(message[4 : 4 + length]), message[4 + length :]


class StationConsumer(threading.Thread):
    """Feeds the store from the output topic; reconnects when the broker goes away."""

    def __init__(
        self,
        cfg: Config,
        store: FrameStore,
        topic: str | None = None,
        from_beginning: bool = False,
    ) -> None:
        super().__init__(name="station-consumer", daemon=True)
        self.from_beginning = from_beginning
        self.cfg = cfg
        self.store = store
        self.topic = topic or cfg.output_topic
        self.stop_event = threading.Event()
        self.connected = False
        self.last_error: str | None = None

    def run(self) -> None:
        from camstream.monitor import iter_annotated_frames

        while not self.stop_event.is_set():
            try:
                self.connected = True
                for frame in iter_annotated_frames(
                    self.cfg, self.topic, from_beginning=self.from_beginning, stop=self.stop_event
                ):
                    self.store.update(frame)
            except Exception as exc:  # keep serving the page; report in /healthz and retry
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("station consumer: %s; retrying", self.last_error)
                self.stop_event.wait(2.0)
        self.connected = False


# ---- web app -----------------------------------------------------------------------------
def _asset(name: str) -> str:
    return resources.files("camstream").joinpath("station_web", name).read_text()


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self';"
        " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def host_name(host_header: str) -> str:
    """'Example.com:8080' -> 'example.com'; '[::1]:8080' -> '[::1]'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(name: str) -> bool:
    return name in LOOPBACK_NAMES or name.endswith(".localhost") or name.startswith("127.")


class SameSiteGuard:
    """ASGI middleware that keeps other web sites out of the station.

    Any page a user visits can send requests to localhost. Browsers apply no same-origin
    policy to WebSockets, so a WebSocket upgrade whose `Origin` is not the station's own
    (or one configured) is refused. Without a token, a request whose `Host` is not a
    loopback name (or one configured) is refused too: that is how DNS rebinding, a
    foreign name resolving to 127.0.0.1, would otherwise reach the HTTP API.
    """

    def __init__(
        self,
        app: Any,
        check_host: bool,
        allowed_hosts: tuple[str, ...] = (),
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.check_host = check_host
        self.allowed_hosts = frozenset(allowed_hosts)
        self.allowed_origins = frozenset(allowed_origins)
        self.refused = 0

    def refusal(self, scope: dict[str, Any]) -> str | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.check_host and scope.get("path") != "/healthz":
            name = host_name(host)
            if not (is_loopback_host(name) or name in self.allowed_hosts):
                return f"host {host!r} is not allowed (CAMSTREAM_STATION_ALLOWED_HOSTS)"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None:
            own = {f"http://{host.lower()}", f"https://{host.lower()}"}
            if origin.lower().rstrip("/") not in own | self.allowed_origins:
                return f"origin {origin!r} is not allowed (CAMSTREAM_STATION_ALLOWED_ORIGINS)"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        self.refused += 1
        log.warning("station refused %s %s: %s", scope["type"], scope.get("path"), reason)
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await PlainTextResponse(f"forbidden: {reason}", status_code=403)(scope, receive, send)


def _presented_token(headers: Any, query: Any, cookies: Any) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query.get("token") or cookies.get(TOKEN_COOKIE) or ""


def create_app(
    store: FrameStore,
    token: str = "",
    consumer: StationConsumer | None = None,
    allowed_hosts: tuple[str, ...] = (),
    allowed_origins: tuple[str, ...] = (),
) -> Starlette:
    """The station's ASGI app; `token` (if set) guards every route but /healthz.

    Other sites are kept out in any case (`SameSiteGuard`): WebSockets only from the
    station's own pages or `allowed_origins`, and without a token only requests addressed
    to a loopback name or one of `allowed_hosts`.
    """
    assets = {"app.js": _asset("app.js"), "style.css": _asset("style.css")}
    index_html = _asset("index.html")

    def authorized(conn: Request | WebSocket) -> bool:
        if not token:
            return True
        presented = _presented_token(conn.headers, conn.query_params, conn.cookies)
        return hmac.compare_digest(presented.encode(), token.encode())

    def denied() -> Response:
        return PlainTextResponse("unauthorized: pass the station token", status_code=401)

    async def index(request: Request) -> Response:
        if not authorized(request):
            return denied()
        response = HTMLResponse(index_html)
        if token and request.query_params.get("token"):
            # Later requests (assets, API, WebSocket) carry the token as a cookie.
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def asset(request: Request) -> Response:
        if not authorized(request):
            return denied()
        name = request.url.path.rsplit("/", 1)[-1]
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(assets[name], media_type=media)

    async def stats(request: Request) -> Response:
        if not authorized(request):
            return denied()
        cameras = store.camera_stats()
        return JSONResponse(
            {
                "cameras": cameras,
                "camera_count": len(cameras),
                "frames_total": store.frames_total,
                "duplicates_hidden": store.duplicates_hidden,
                "stale_after_s": store.stale_after_s,
            }
        )

    async def events(request: Request) -> Response:
        if not authorized(request):
            return denied()
        return JSONResponse({"events": [e.to_json() for e in store.events()]})

    async def latest_frame(request: Request) -> Response:
        if not authorized(request):
            return denied()
        found = store.latest(request.path_params["camera_id"])  # a dict lookup, not a file
        if found is None:
            return PlainTextResponse("unknown camera", status_code=404)
        return Response(found[1].jpeg, media_type="image/jpeg")

    async def health(request: Request) -> Response:
        healthy = consumer is None or (consumer.is_alive() and consumer.connected)
        body = {
            "status": "ok" if healthy else "degraded",
            "kafka_connected": None if consumer is None else consumer.connected,
            "cameras": store.camera_count(),
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def stream(websocket: WebSocket) -> None:
        if not authorized(websocket):
            await websocket.close(code=4401)
            return
        await websocket.accept()
        await _serve_client(websocket, store)

    routes = [
        Route("/", index),
        Route("/static/app.js", asset),
        Route("/static/style.css", asset),
        Route("/api/stats", stats),
        Route("/api/events", events),
        Route("/api/frame/{camera_id}", latest_frame),
        Route("/healthz", health),
        WebSocketRoute("/ws", stream),
    ]
    guard = Middleware(
        SameSiteGuard,
        check_host=not token,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )
    return Starlette(routes=routes, middleware=[guard, Middleware(SecurityHeaders)])


async def _serve_client(websocket: WebSocket, store: FrameStore) -> None:
    """Send each subscribed camera's newest frame, and a status message every second."""
    subscribed: set[str] | None = None  # None: every camera
    sent_versions: dict[str, int] = {}
    last_event_id = 0
    last_status = 0.0

    async def receive() -> None:
        nonlocal subscribed
        while True:
            message = await websocket.receive_text()
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                wanted = json.loads(message).get("subscribe")
                if wanted == "*":
                    subscribed = None
                elif isinstance(wanted, list):
                    subscribed = {str(c) for c in wanted[:1000]}

    async def send(message: bytes | str) -> None:
        # Awaiting the send is this client's back-pressure: the server takes no more from
        # us while the client's socket is full, so at most one message waits per client,
        # and the store moves on without it. A client that reads nothing is let go.
        sender = websocket.send_bytes if isinstance(message, bytes) else websocket.send_text
        await asyncio.wait_for(sender(message), timeout=SEND_TIMEOUT_S)  # type: ignore[arg-type]

    receiver = asyncio.create_task(receive())
    try:
        while not receiver.done():
            versions = store.versions()
            for gone in set(sent_versions) - set(versions):
                del sent_versions[gone]  # a forgotten camera
            for camera_id, version in versions.items():
                if subscribed is not None and camera_id not in subscribed:
                    continue
                if sent_versions.get(camera_id) == version:
                    continue
                found = store.latest(camera_id)
                if found is None:
                    continue
                sent_versions[camera_id] = found[0]
                await send(pack_frame(found[1]))
            now = time.monotonic()
            if now - last_status >= STATUS_INTERVAL_S:
                last_status = now
                new_events = store.events(last_event_id)
                if new_events:
                    last_event_id = new_events[-1].event_id
                await send(
                    json.dumps(
                        {
                            "type": "status",
                            "cameras": store.camera_stats(),
                            "events": [e.to_json() for e in new_events],
                        }
                    )
                )
            await asyncio.sleep(SEND_INTERVAL_S)
    except (WebSocketDisconnect, RuntimeError, TimeoutError):
        pass
    finally:
        receiver.cancel()
        # A client that stopped reading cannot take a close frame either: do not wait on it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(), timeout=1.0)


def check_exposure(cfg: Config) -> None:
    """Refuse to serve every camera to the network without a token, unless told to."""
    from camstream.config import ConfigError

    if is_loopback_host(host_name(cfg.station_host)) or cfg.station_token:
        return
    if not cfg.station_insecure_no_token:
        raise ConfigError(
            f"the station would serve every camera on {cfg.station_host} to anyone who can"
            " reach it: set CAMSTREAM_STATION_TOKEN, or pass --insecure-no-token"
            " (CAMSTREAM_STATION_INSECURE_NO_TOKEN=1) if the network itself is trusted"
        )
    log.warning(
        "station: serving on %s WITHOUT a token (--insecure-no-token); it answers only to"
        " the host names in CAMSTREAM_STATION_ALLOWED_HOSTS",
        cfg.station_host,
    )


def run_station(cfg: Config, topic: str | None = None, stop: threading.Event | None = None) -> None:
    """Serve the station on cfg.station_host:cfg.station_port until Ctrl-C or `stop`."""
    import uvicorn

    host, port, token = cfg.station_host, cfg.station_port, cfg.station_token
    check_exposure(cfg)
    store = FrameStore(stale_after_s=cfg.station_stale_s, forget_after_s=cfg.station_forget_after_s)
    consumer = StationConsumer(cfg, store, topic)
    consumer.start()
    allowed_hosts = cfg.station_allowed_host_names
    if not is_loopback_host(host_name(host)) and host not in ("0.0.0.0", "::", "[::]"):
        allowed_hosts = (*allowed_hosts, host_name(host))  # the address it was told to serve
    app = create_app(
        store,
        token=token,
        consumer=consumer,
        allowed_hosts=allowed_hosts,
        allowed_origins=cfg.station_allowed_origin_list,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            ws="websockets-sansio",
            server_header=False,
        )
    )
    if stop is not None:

        def watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=watch, daemon=True).start()
    url = f"http://{host}:{port}/" + ("?token=..." if token else "")
    print(f"station: serving the camera wall on {url}", flush=True)
    try:
        server.run()
    finally:
        consumer.stop_event.set()
        consumer.join(timeout=10)
