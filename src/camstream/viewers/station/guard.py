"""Keeping other web sites out of the station, and its response headers.

Any page a user visits can send requests to localhost: the station checks `Origin` on
WebSocket upgrades and, without a token, `Host` on every request, and refuses to serve a
non-loopback address without a token unless told to.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from camstream.config import Config
from camstream.errors import ConfigError

log = logging.getLogger(__name__)


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


def check_exposure(cfg: Config) -> None:
    """Refuse to serve every camera to the network without a token, unless told to."""
    if is_loopback_host(host_name(cfg.station_host)) or cfg.station_token:
        return
    if not cfg.insecure_no_token:
        raise ConfigError(
            f"the station would serve every camera on {cfg.station_host} to anyone who can"
            " reach it: set CAMSTREAM_STATION_TOKEN, or pass --insecure-no-token"
            " (CAMSTREAM_INSECURE_NO_TOKEN=1) if the network itself is trusted"
        )
    log.warning(
        "station: serving on %s WITHOUT a token (--insecure-no-token); it answers only to"
        " the host names in CAMSTREAM_STATION_ALLOWED_HOSTS",
        cfg.station_host,
    )
