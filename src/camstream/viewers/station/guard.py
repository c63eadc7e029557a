"""Keeping other web sites out of the station, and its response headers.

Any page a user visits can send requests to localhost: the station checks `Origin` and
`Sec-Fetch-Site`, and, without a token, `Host` on every request; it refuses to serve a
non-loopback address without a token unless told to.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from camstream.config import Config
from camstream.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_COOKIE = "camstream_token"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Another site's <img src=http://127.0.0.1:8080/api/frame/ID> gets nothing, even
    # from a browser that sends no Sec-Fetch-Site.
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self';"
        " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}
_SECURITY_HEADERS_RAW = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, whoever wrote it (the
    guard's refusals, Starlette's 404s and 500s, a refused WebSocket handshake)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS_RAW if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_PORT = re.compile(r"[0-9]{0,5}")


def host_of(authority: str) -> str | None:
    """The host of a `Host` header, an origin's authority or a bind address, in one form
    for comparing: lower case, without port or brackets, an IP address in its standard
    spelling ('[0:0:0:0:0:0:0:1]:8097' -> '::1'), a name without its final dot. None when
    malformed (a port that is not a number, an unclosed bracket)."""
    text = authority.strip().lower()
    if text.startswith("["):
        name, closed, rest = text[1:].partition("]")
        port_sep, port = rest[:1], rest[1:]
        if not closed or (rest and port_sep != ":"):
            return None
    elif text.count(":") > 1:  # a bare IPv6 address: a bind address such as '::1'
        name, port = text, ""
    else:
        name, _, port = text.partition(":")
    if not name or not _PORT.fullmatch(port):
        return None
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.removesuffix(".")


def is_loopback_host(name: str) -> bool:
    """A loopback IP (127.0.0.0/8, ::1), `localhost`, or a name under `.localhost` (which
    browsers resolve to loopback themselves). `name` comes from `host_of`. A name is never
    matched on a prefix: `127.0.0.1.nip.io` is a DNS name like any other, and DNS can point
    it anywhere, 127.0.0.1 included."""
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost" or name.endswith(".localhost")


def token_matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())  # in constant time


# A browser holds a SameSite=Strict cookie back on a navigation that began on another site,
# such as a `?token=` link in a chat: its redirect then lands here, and a link on this page,
# the station's own, goes back with the cookie.
_UNAUTHORIZED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>camstream station</title></head>
<body><p>unauthorized: pass the station token.</p>
<p>Followed a link with the token from another site? The browser keeps the station's cookie
and sends it from the station's own pages: <a href="/">open the station</a>.</p></body></html>
"""


def unauthorized(page: bool = False) -> Response:
    """401; `page`: for the page itself, a page that says what to do."""
    if page:
        return HTMLResponse(_UNAUTHORIZED_PAGE, status_code=401)
    return PlainTextResponse("unauthorized: pass the station token", status_code=401)


# Sec-Fetch-Site values of a request another site's page made (a link, an <img>, a fetch).
_FOREIGN_FETCH = frozenset({"cross-site", "same-site"})


class SameSiteGuard:
    """ASGI middleware that keeps other web sites out of the station.

    Any page a user visits can send requests to localhost. A request is refused when
    - its `Origin` is not the station's own (or one configured): browsers apply no
      same-origin policy to WebSockets;
    - `Sec-Fetch-Site` says another site's page made it (`cross-site`, or `same-site`:
      another port of localhost), on every path but the page itself, which a link may
      open; that stops `<img src=.../api/frame/ID>` probing camera ids. Clients that are
      not browsers send no such header;
    - without a token, its `Host` is not a loopback name (or one configured): that is how
      DNS rebinding, a foreign name resolving to 127.0.0.1, would otherwise reach the API.
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
        self.allowed_hosts = frozenset(filter(None, map(host_of, allowed_hosts)))
        self.allowed_origins = frozenset(allowed_origins)
        self.refused = 0

    def host_allowed(self, authority: str) -> bool:
        name = host_of(authority)
        return name is not None and (is_loopback_host(name) or name in self.allowed_hosts)

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        path = scope.get("path")
        if self.check_host and path != "/healthz" and not self.host_allowed(host):
            return f"host {host!r} is not allowed (CAMSTREAM_STATION_ALLOWED_HOSTS)"
        origin = headers.get("origin")
        configured = origin is not None and origin.lower().rstrip("/") in self.allowed_origins
        if origin is not None and not configured:
            # The station's own pages: scheme and authority exactly as in Host (which,
            # without a token, is a loopback one), as browsers write both.
            parts = urlsplit(origin.lower())
            if parts.scheme not in ("http", "https") or parts.netloc != host.lower():
                return f"origin {origin!r} is not allowed (CAMSTREAM_STATION_ALLOWED_ORIGINS)"
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if fetch_site in _FOREIGN_FETCH and path != "/" and not configured:
            return f"a request from another site's page (Sec-Fetch-Site: {fetch_site})"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        self.refused += 1
        log.warning("station refused %s %s: %s", scope["type"], scope.get("path"), reason)
        response = PlainTextResponse(f"forbidden: {reason}", status_code=403)
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if "websocket.http.response" not in scope.get("extensions", {}):
                # Closing before accepting makes the server answer the handshake with 403.
                await websocket.close(code=1008)
                return
            await websocket.send_denial_response(response)
            return
        await response(scope, receive, send)


class TokenExchange:
    """ASGI middleware that turns a `?token=` visit into a cookie.

    The right token gets an HttpOnly, SameSite=Strict cookie and a 303 redirect to the same
    address without the token, so the token leaves the address bar, the history and any
    screenshot; a wrong one gets 401 and no cookie. (WebSockets cannot be redirected: the
    app reads their `?token=` itself.)
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: list[tuple[str, str]] = []
        if self.token and scope["type"] == "http":
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        presented = dict(query).get("token")
        if presented is None:
            await self.app(scope, receive, send)
            return
        if not token_matches(presented, self.token):
            await unauthorized()(scope, receive, send)
            return
        # The path as it came, with one leading slash and nothing browsers read as one
        # ('//evil.example', '/\evil.example' and '/\t/evil.example' would leave the site).
        path = scope.get("raw_path") or scope["path"].encode()
        location = "/" + quote(path.lstrip(b"/"), safe="/%:@!$&'()*+,;=~")
        rest = urlencode([(name, value) for name, value in query if name != "token"])
        response = Response(status_code=303, headers={"Location": location + (rest and "?" + rest)})
        response.set_cookie(
            TOKEN_COOKIE,
            self.token,
            httponly=True,
            samesite="strict",
            path="/",
            secure=scope.get("scheme") == "https",
        )
        await response(scope, receive, send)


class ClientLimit:
    """ASGI middleware: at most `max_clients` WebSockets at once.

    Each costs a sender task and a status message every second. One more is accepted and
    closed at once with 1013 (try again later) and a reason the page shows.
    """

    def __init__(self, app: Any, max_clients: int) -> None:
        self.app = app
        self.max_clients = max_clients
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_clients:
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            reason = f"station full: {self.max_clients} at once (CAMSTREAM_STATION_MAX_CLIENTS)"
            await websocket.close(code=1013, reason=reason)
            return
        self.active += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def exposed_bind_host(station_host: str) -> str | None:
    """The bind address's host, to allow as a `Host`, unless loopback or every interface."""
    name = host_of(station_host)
    if name is None or is_loopback_host(name):
        return None
    try:
        return None if ipaddress.ip_address(name).is_unspecified else name
    except ValueError:
        return name  # a name given to bind to


def check_exposure(cfg: Config) -> None:
    """Refuse to serve every camera to the network without a token, unless told to."""
    name = host_of(cfg.station_host)
    if (name is not None and is_loopback_host(name)) or cfg.station_token:
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
