"""The HTTP transport of the providers' clients: httpx under twilio and python-telegram-bot,
and `BulkClient`, the lean pooled client of the bulk lanes.

`BulkClient` (aiohttp, already under the twilio SDK) sends announcements: a broadcast is
hundreds of thousands of identical small POSTs, and httpx's layers (its pool, anyio, the
checks below) cost three quarters of the worker's CPU per message. It keeps `connections`
keep-alive connections, posts a body already encoded with its headers, and reads the answer
whole; it raises `Unsent` for a failure that surely happened before the request left (the
connection could not be made), and `MaybeSent` for any other (a timeout, a connection
dropped while waiting for the answer), so that the senders can tell "retry" from "retry,
in doubt".

`transport()`: httpx's own transport, with one cost taken out. Before every request, and
again when each answer is read, httpcore's pool asks every idle keep-alive connection
whether its socket has become readable (the server closed it); over anyio, each of those
questions rebuilds the socket's attribute table, with a `getpeername()` system call, just to
find the raw socket. In a broadcast, with a dozen connections in the pool, that was a third
of the worker's CPU per message. `_Stream` keeps the raw socket and answers with one
`poll()`, and gives the same answer again for `RECHECK` seconds: at a thousand requests a
second every idle connection is asked every half millisecond or so. The check was always a
race (a server's close can be on its way while we look), as wide as a network round trip; a
millisecond more does not change its nature: a connection closed at that instant fails the
request as before (a retry, in doubt when the request may have gone out).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpcore
import httpx

# What httpx uses by default (httpx.Limits()).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# How long an idle connection's "not closed by the server" holds (seconds).
RECHECK = 0.002


def _readable(sock: socket.socket | None) -> bool:
    """httpcore's `is_socket_readable`: a closed socket counts as readable (expired)."""
    if sock is None or sock.fileno() < 0:
        return True
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    return bool(poll.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that remembers its raw socket."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._open_until = 0.0  # "not readable" (not closed by the server) holds until then

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            now = time.monotonic()
            if now < self._open_until:
                return False
            readable = _readable(self._socket)
            if not readable:
                self._open_until = now + RECHECK
            return readable
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, handing out `_Stream`s."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(
    *,
    limits: httpx.Limits = DEFAULT_LIMITS,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
) -> httpx.AsyncHTTPTransport:
    """httpx's default transport (HTTP/1.1, keep-alive, certificates verified), over
    `_Backend`. Pass it as `httpx.AsyncClient(transport=…)`; the client's own `limits` then
    no longer apply: give them here."""
    made = httpx.AsyncHTTPTransport(limits=limits, socket_options=socket_options)
    # httpx builds its pool with the default backend and takes no other: build the same pool
    # over ours (its settings are httpx's, see httpx.AsyncHTTPTransport.__init__).
    made._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        socket_options=socket_options,
        network_backend=_Backend(),
    )
    return made


# -- the bulk lanes' client ---------------------------------------------------------------------


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
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class BulkClient:
    """Keep-alive POSTs on a pool of `connections` (at least the messages in flight); made on
    first use, on the running event loop, and closed by `close()`."""

    def __init__(self, *, connections: int = 64, timeout: float = 15.0) -> None:
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # no provider sets cookies
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float | None = None
    ) -> Answer:
        """POST `body` with `headers` (Content-Type included); the answer, whatever its
        status; `Unsent` or `MaybeSent` when there is none."""
        session = self._open()
        options: dict[str, Any] = {}
        if timeout is not None:
            options["timeout"] = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        try:
            async with session.post(url, data=body, headers=headers, **options) as response:
                return Answer(response.status, await response.read(), response.headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unsent(type(exc).__name__) from exc
        except TimeoutError as exc:
            raise MaybeSent(type(exc).__name__, timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise MaybeSent(type(exc).__name__) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
