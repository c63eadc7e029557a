"""The station's web app: the page, its assets, the JSON API and the one WebSocket per browser.

Browsers connect over one WebSocket each; every client gets the newest frame of each camera
it shows, and a slow client simply skips frames: nothing queues, and the Kafka consumer
never waits for a browser. A WebSocket rather than MJPEG because a browser opens at most
about six HTTP/1.1 connections per host, so one MJPEG stream per tile cannot show hundreds
of cameras; one WebSocket multiplexes them all, and the page subscribes only to the tiles
it shows.

The focus view also looks back: over the same WebSocket the page may ask for one camera's
recorded frames from a moment on (replay.py), while the wall stays live; its timeline
(/api/timeline/ID, timeline.py) and a detection's clip as a video file (/api/clip/ID,
clip_download.py) are read back from Kafka in worker threads, never in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame
from camstream.viewers.station.clip_download import clip_download
from camstream.viewers.station.guard import (
    TOKEN_COOKIE,
    ClientLimit,
    SameSiteGuard,
    SecurityHeaders,
    TokenExchange,
    token_matches,
    unauthorized,
)
from camstream.viewers.station.replay import MAX_CAMERA_ID, ClientReplay, failure_text
from camstream.viewers.station.status import ClientStatus
from camstream.viewers.station.store import CLIP_PATH, FrameStore
from camstream.viewers.station.timeline import camera_timeline

if TYPE_CHECKING:
    from camstream.viewers.station.server import StationConsumer

SEND_INTERVAL_S = 0.05  # how often a client's sender looks for newer frames
# A client that takes no frame for this long is disconnected (it holds one frame until then).
SEND_TIMEOUT_S = 30.0
STATUS_INTERVAL_S = 1.0
# Each timeline costs two consumers and up to timeline.SCAN_BUDGET_S of reading.
TIMELINES_AT_ONCE = 4
# Each clip costs a consumer and an encoder, and the station shares its cores with the job.
CLIPS_AT_ONCE = 2
BUSY_RETRY_AFTER_S = 2


class InProgress:
    """Requests of one kind in progress, at most `limit` at once (one event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """Yields whether the request was admitted; it holds its place until it leaves."""
        if self.active >= self.limit:
            yield False
            return
        self.active += 1
        try:
            yield True
        finally:
            self.active -= 1


def busy(reason: str) -> Response:
    """503 with Retry-After: try again shortly."""
    return PlainTextResponse(
        f"busy: {reason}; try again shortly",
        status_code=503,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


def pack_frame(
    frame: AnnotatedFrame, now: float | None = None, extra: Mapping[str, Any] | None = None
) -> bytes:
    """A WebSocket binary message: 4-byte length, JSON metadata, then the JPEG. `extra`:
    more metadata (a replayed frame's "replay": true and its request's "replay_id")."""
    now = time.time() if now is None else now
    meta = json.dumps(
        {
            "camera_id": frame.camera_id,
            "seq": frame.seq,
            "capture_ts_ns": frame.capture_ts_ns,
            "faces": frame.faces,
            "boxes_xyxy": frame.boxes_xyxy,
            "width": frame.width,
            "height": frame.height,
            "delay_ms": round((now * 1e9 - frame.capture_ts_ns) / 1e6, 1),
            "skipped": frame.skipped,
            **(extra or {}),
        },
        separators=(",", ":"),
    ).encode()
    return struct.pack(">I", len(meta)) + meta + frame.jpeg


def unpack_frame(message: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack(">I", message[:4])
    return json.loads(message[4 : 4 + length]), message[4 + length :]


def _asset(name: str) -> str:
    return resources.files("camstream.viewers.station").joinpath("web", name).read_text()


def _presented_token(headers: Any, query: Any, cookies: Any) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    # A page visit's ?token= became a cookie (TokenExchange); a WebSocket's is read here.
    return query.get("token") or cookies.get(TOKEN_COOKIE) or ""


def create_app(
    store: FrameStore,
    token: str = "",
    consumer: StationConsumer | None = None,
    allowed_hosts: tuple[str, ...] = (),
    allowed_origins: tuple[str, ...] = (),
    max_clients: int = 64,
    cfg: Config | None = None,
) -> ASGIApp:
    """The station's ASGI app; `token` (if set) guards every route but /healthz.

    With `cfg`, the focus view looks back: a camera's timeline (/api/timeline/ID), replay
    over the WebSocket and event clips as video files (/api/clip/ID), all read back from
    Kafka (`cfg`'s output and events topics).

    Other sites are kept out in any case (`SameSiteGuard`): requests only from the
    station's own pages (or WebSockets from `allowed_origins`), and without a token only
    requests addressed to a loopback name or one of `allowed_hosts`. At most `max_clients`
    WebSockets at once.
    """
    assets = {"app.js": _asset("app.js"), "style.css": _asset("style.css")}
    index_html = _asset("index.html")

    def authorized(conn: Request | WebSocket) -> bool:
        if not token:
            return True
        presented = _presented_token(conn.headers, conn.query_params, conn.cookies)
        return token_matches(presented, token)

    def denied() -> Response:
        return unauthorized()

    async def index(request: Request) -> Response:
        if not authorized(request):
            return unauthorized(page=True)
        return HTMLResponse(index_html)

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
                "shedding": store.shedding(),
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

    def recorded_camera(request: Request) -> str | Response:
        """The camera id of a route that reads the recording back, or why it may not."""
        if not authorized(request):
            return denied()
        camera_id: str = request.path_params["camera_id"]
        if cfg is None:
            return JSONResponse({"error": "the station has no Kafka settings"}, status_code=503)
        if not 1 <= len(camera_id) <= MAX_CAMERA_ID:
            return JSONResponse({"error": "no such camera id"}, status_code=404)
        return camera_id

    timelines = InProgress(TIMELINES_AT_ONCE)

    async def timeline(request: Request) -> Response:
        camera_id = recorded_camera(request)
        if isinstance(camera_id, Response):
            return camera_id
        assert cfg is not None  # recorded_camera says so
        with timelines.slot() as admitted:
            if not admitted:
                return busy(f"at most {TIMELINES_AT_ONCE} timelines are read at once")
            try:
                # Blocking Kafka reads, in a worker thread: the event loop serves on.
                body = await run_in_threadpool(camera_timeline, cfg, camera_id)
            except Exception as exc:  # Kafka down, a topic missing: said, not a 500
                return JSONResponse({"error": failure_text(exc)}, status_code=503)
        return JSONResponse(body)

    clips = InProgress(CLIPS_AT_ONCE)

    async def clip(request: Request) -> Response:
        camera_id = recorded_camera(request)
        if isinstance(camera_id, Response):
            return camera_id
        assert cfg is not None  # recorded_camera says so
        with clips.slot() as admitted:
            if not admitted:
                return busy(f"at most {CLIPS_AT_ONCE} clips are written at once")
            # Held while the frames are read and encoded (in a worker thread), not while
            # the file streams back.
            return await clip_download(cfg, camera_id, request.query_params)

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
        await _serve_client(websocket, store, cfg)

    routes = [
        Route("/", index),
        Route("/static/app.js", asset),
        Route("/static/style.css", asset),
        Route("/api/stats", stats),
        Route("/api/events", events),
        Route("/api/frame/{camera_id}", latest_frame),
        # Any camera id, '/' included: these look it up in Kafka, never on a disk.
        Route("/api/timeline/{camera_id:path}", timeline),
        Route(CLIP_PATH + "{camera_id:path}", clip),
        Route("/healthz", health),
        WebSocketRoute("/ws", stream),
    ]
    guard = Middleware(
        SameSiteGuard,
        check_host=not token,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )
    middleware = [
        guard,
        Middleware(TokenExchange, token=token),
        Middleware(ClientLimit, max_clients=max_clients),
    ]
    # Outside Starlette's own error handling, so that its 500s carry the headers too.
    return SecurityHeaders(Starlette(routes=routes, middleware=middleware))


async def _serve_client(websocket: WebSocket, store: FrameStore, cfg: Config | None) -> None:
    """Send each subscribed camera's newest frame, and a status message every second; and
    the focus view's replay, if the page asks for one (replay.py)."""
    subscribed: set[str] | None = None  # None: every camera
    sent_versions: dict[str, int] = {}
    status = ClientStatus(store)
    last_status = 0.0
    sending_lock = asyncio.Lock()

    async def send(message: bytes | str) -> None:
        # Awaiting the send is this client's back-pressure: the server takes no more from
        # us while the client's socket is full, so at most one message waits per sender
        # (the live one and the replay's, one at a time), and the store moves on without
        # it. A client that reads nothing is let go.
        async with sending_lock:
            if isinstance(message, bytes):
                sending = websocket.send_bytes(message)
            else:
                sending = websocket.send_text(message)
            await asyncio.wait_for(sending, timeout=SEND_TIMEOUT_S)

    replay = ClientReplay(cfg, send, lambda frame, extra: pack_frame(frame, extra=extra))

    async def receive() -> None:
        nonlocal subscribed
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
                continue
            if not isinstance(message, dict) or await replay.command(message):
                continue
            wanted = message.get("subscribe")
            if wanted == "*":
                subscribed = None
            elif isinstance(wanted, list):
                subscribed = {str(c) for c in wanted[:1000]}

    receiver = asyncio.create_task(receive())
    try:
        while not receiver.done():
            versions = store.versions(subscribed)
            for gone in set(sent_versions) - set(versions):
                del sent_versions[gone]  # a forgotten camera
            # A new camera's status goes first, at once: the page drops a frame of a camera
            # it has not heard of.
            now = time.monotonic()
            unannounced = any(not status.announced(c) for c in versions)
            if unannounced or now - last_status >= STATUS_INTERVAL_S:
                last_status = now
                await send(json.dumps(status.next_message(subscribed)))
            for camera_id, version in versions.items():
                if sent_versions.get(camera_id) == version or not status.announced(camera_id):
                    continue
                found = store.latest(camera_id)
                if found is None:
                    continue
                sent_versions[camera_id] = found[0]
                await send(pack_frame(found[1]))
            await asyncio.sleep(SEND_INTERVAL_S)
    except (WebSocketDisconnect, RuntimeError, TimeoutError):
        pass
    finally:
        receiver.cancel()
        # Its reader thread stops and closes its consumer by itself, not waited for here.
        await replay.stop()
        # A client that stopped reading cannot take a close frame either: do not wait on it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(), timeout=1.0)
