"""Request guards for the review page: Host check, cross-site check, body cap, response headers.

One pure ASGI middleware, so every route (pages, images, API, and routes added later) is
behind the same checks without remembering to ask for them.
"""

from __future__ import annotations

import json
from typing import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 64 * 1024  # a rating or a star is a few dozen bytes
DEFAULT_PORTS = {"http": 80, "https": 443}

# Scripts and styles only from our own /static/: even a markup bug cannot run an injected script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# An image opened on its own is shown by the browser's image viewer, which styles itself inline.
IMAGE_CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    # Other sites cannot even embed our images: the library is private.
    "cross-origin-resource-policy": "same-origin",
}


def host_header_values(names: Iterable[str], port: int) -> frozenset[str]:
    """Every `Host` header a browser sends when it addresses one of NAMES on PORT."""
    values = set()
    for name in names:
        name = name.strip().lower()
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"  # an IPv6 address in a Host header is bracketed
        values.add(f"{name}:{port}")
        if port == 80:
            values.add(name)  # browsers leave the default port out
    return frozenset(values)


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
            return None
        return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port that is not a number
        return None


def cross_site_reason(scheme: str, host: str, headers: Headers) -> str | None:
    """Why a state-changing request may have come from another site, or None if it is same-origin.

    Browsers set `Sec-Fetch-Site` themselves (a page cannot forge it); older ones send `Origin`.
    A request with neither is refused too: this page has no other way to tell who sent it.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
        return f"Sec-Fetch-Site is {site!r}; changes are accepted only from this page (same-origin)"
    origin = headers.get("origin")
    if origin is None:
        return "a change needs a same-origin Origin or Sec-Fetch-Site header (browsers send one; add it to scripts)"
    own = _origin_key(f"{scheme}://{host}")
    if own is None or _origin_key(origin) != own:
        return f"Origin {origin!r} is not this page's origin {scheme}://{host}"
    return None


class RequestGuard:
    """Refuses requests addressed to another host name (400), cross-site changes (403) and
    oversized bodies (413); adds the security headers to every response.

    :param allowed_hosts: the exact `Host` header values to answer (see `host_header_values`).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str], max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        hosts = headers.getlist("host")
        # DNS rebinding: a hostile name resolving to 127.0.0.1 still arrives with its own Host header.
        if len(hosts) != 1 or hosts[0].lower() not in self.allowed_hosts:
            shown = ", ".join(sorted(self.allowed_hosts))
            await _refuse(send, 400, f"Host {hosts[0] if hosts else ''!r} is not served here; use one of: {shown}")
            return
        if scope["method"] not in SAFE_METHODS:
            reason = cross_site_reason(scope["scheme"], hosts[0].lower(), headers)
            if reason is not None:
                await _refuse(send, 403, reason)
                return
            body = await self._read_body(headers, receive)
            if isinstance(body, tuple):
                await _refuse(send, *body)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_security_headers(send))

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes | tuple[int, str]:
        """The whole body, or (status, reason) when it is too large or its length is malformed."""
        too_large = (413, f"request body is larger than {self.max_body_bytes} bytes")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return 400, f"Content-Length {declared!r} is not a number"
            if int(declared) > self.max_body_bytes:
                return too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # a chunked body has no Content-Length to check up front
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            if headers.get("content-type", "").startswith("image/") and "svg" not in headers["content-type"]:
                headers.setdefault("content-security-policy", IMAGE_CONTENT_SECURITY_POLICY)
            for name, value in SECURITY_HEADERS.items():
                headers.setdefault(name, value)
        await send(message)

    return send_with_headers


async def _refuse(send: Send, status: int, reason: str) -> None:
    """A JSON answer ({"detail": reason}), which the page's script and API clients both read."""
    body = json.dumps({"detail": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
