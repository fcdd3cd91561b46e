"""`BulkClient`, the bulk lanes' HTTP client: keep-alive POSTs over asyncio's own transports.

A broadcast is hundreds of thousands of identical small POSTs to one host. Every general
client spends most of a message's CPU on what a broadcast never needs: httpx its pool and
anyio layers, aiohttp its request and response objects, timers and multidicts (58 µs of CPU
a request here, against 15 for a bare loop on the same connections). This one writes the
request as one buffer (`POST path HTTP/1.1`, the given headers, `Content-Length`, the body)
and reads the answer in an `asyncio.Protocol`: the status line, the headers, a body by
`Content-Length`, by chunks, or up to the close. Nothing else of HTTP is needed here: no
redirects (the providers' APIs answer, they do not redirect), no cookies, no compression
(none is asked for), no proxy (as the aiohttp client before it, with its default
`trust_env=False`). TLS with the system's certificates, verified, as aiohttp's default.

Connections: at most `connections` at once (at least the messages in flight), kept alive
while idle for `KEEPALIVE` seconds, unless the server said `Connection: close`. Failures, for
the senders to tell "retry" from "retry, in doubt": `Unsent` when the request surely never
left (the connection could not be made), `MaybeSent` for any other (a timeout, the
connection lost before the answer was whole), with `timeout=True` for a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote_plus, urlsplit

# An idle connection is used again for this long (seconds: httpx's keepalive_expiry), then
# closed; servers close theirs later than that (nginx after 75 s).
KEEPALIVE = 5.0
CONNECT_TIMEOUT = 5.0  # seconds, at most (within the request's own timeout)
MAX_HEAD = 64 * 1024  # bytes of status line and headers; a larger head fails the request


class Unsent(Exception):
    """The request never reached the provider (the connection could not be made)."""


class MaybeSent(Exception):
    """The request may have reached the provider (a timeout, a connection lost mid-way)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]  # names in lower case

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Target:
    """A URL as this client sends to it: where to connect and the request's first lines."""

    origin: tuple[str, str, int]  # scheme, host, port
    head: bytes  # request line and Host header


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._answer: asyncio.Future[Answer] | None = None
        self._buffer = bytearray()
        self._status = 0
        self._headers: dict[str, str] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are asyncio's in behaviour, not by class
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():  # nothing asked: a confused server
            self.close()
            return
        self._buffer += data
        try:
            answer = self._parse(eof=False)
        except ValueError as exc:
            self._fail(MaybeSent(f"BadAnswer {exc}"))
            return
        if answer is not None:
            self._answer.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        try:
            answer = self._parse(eof=True)  # a body that ends with the connection
        except ValueError:
            answer = None
        if answer is not None:
            self._answer.set_result(answer)
        else:
            self._answer.set_exception(MaybeSent("ServerDisconnected"))

    # -- use

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._headers = None
        self.transport.write(request)
        return self._answer

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    # -- HTTP/1.1 answers

    def _parse(self, *, eof: bool) -> Answer | None:
        """The answer, once whole in the buffer; None while more is to come. ValueError for
        what is not HTTP/1.x."""
        while self._headers is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ValueError("head too large")
                return None
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError("not HTTP/1.x")
            status = int(rest[:3])
            if 100 <= status < 200:  # an interim answer (100 Continue…): the real one follows
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            connection = headers.get("connection", "").lower()
            if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
                self.reusable = False
            self._status, self._headers = status, headers
        headers = self._headers
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _chunked(self._buffer)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = bytes(self._buffer[:length]) if len(self._buffer) >= length else None
            if body is not None and len(self._buffer) > length:
                self.reusable = False  # more than was announced: do not trust what follows
        elif self._status in (204, 304):
            body = b""
        else:  # delimited by the close
            self.reusable = False
            body = bytes(self._buffer) if eof else None
        if body is None:
            return None
        return Answer(self._status, body, headers)


def _chunked(buffer: bytearray) -> bytes | None:
    """A chunked body, once its last chunk (and trailers) are in `buffer`; else None."""
    body = bytearray()
    at = 0
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip() or b"x", 16)
        at = line_end + 2
        if size == 0:  # trailers, if any, then an empty line
            end = buffer.find(b"\r\n", at)
            while end > at:
                at = end + 2
                end = buffer.find(b"\r\n", at)
            return bytes(body) if end == at else None
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


class BulkClient:
    """Keep-alive POSTs on at most `connections` connections (at least the messages in
    flight); made on first use, on the running event loop, and closed by `close()`."""

    def __init__(self, *, connections: int = 64, timeout: float = 15.0) -> None:
        self.connections = connections
        self.timeout = timeout
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float | None = None
    ) -> Answer:
        """POST `body` with `headers` (Content-Type included); the answer, whatever its
        status; `Unsent` or `MaybeSent` when there is none."""
        target = self._targets.get(url) or self._target(url)
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = b"".join(
            (target.head, fields.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body)
        )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.connections)
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        async with self._slots:
            deadline = loop.time() + limit
            connection = self._reuse(target.origin) or await self._connect(target.origin, limit)
            answering = connection.send(request)
            # A timer on the answer itself (asyncio.timeout's context costs several times more)
            timer = loop.call_at(deadline, _expire, answering)
            try:
                answer = await answering
            except BaseException:  # MaybeSent, or the caller gave up: the answer is unknown
                connection.close()
                raise
            finally:
                timer.cancel()
            if connection.reusable and not connection.closed and not self._closed:
                connection.idle_since = time.monotonic()
                self._idle.setdefault(target.origin, collections.deque()).append(connection)
            else:
                connection.close()
            return answer

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")
        found = self._targets[url] = _Target((parts.scheme, parts.hostname, port), head)
        return found

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        """The most recently used idle connection still open and fresh; the stale ones (the
        least recently used first) closed."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle and (idle[0].closed or now - idle[0].idle_since >= KEEPALIVE):
            idle.popleft().close()
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, origin: tuple[str, str, int], limit: float) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(limit, CONNECT_TIMEOUT)):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise Unsent(type(exc).__name__) from exc
        return connection

    async def close(self) -> None:
        """Close the idle connections; those in use close as their answers come."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def form_body(form: Mapping[str, str | Sequence[str]]) -> bytes:
    """`urlencode(form, doseq=True)` as bytes, the same bytes, with each value's quoting kept
    (`_quoted`): a broadcast posts the same text, sender and callback URL to every recipient,
    and quoting them anew was a tenth of the bulk lane's CPU per message."""
    parts = []
    for name, value in form.items():
        key = _quoted(name)
        if isinstance(value, str):
            parts.append(f"{key}={_quoted(value)}")
        else:
            parts.extend(f"{key}={_quoted(item)}" for item in value)
    return "&".join(parts).encode("ascii")


@functools.lru_cache(maxsize=256)
def _quoted(value: str) -> str:
    return quote_plus(value)


def _expire(answering: asyncio.Future[Answer]) -> None:
    """The answer did not come in time: the request may have reached the provider."""
    if not answering.done():
        answering.set_exception(MaybeSent("TimeoutError", timeout=True))
