"""The HTTP transport of the providers' SDKs: httpx under twilio and python-telegram-bot.
(Announcements go through the bulk lanes' own client, bot.channels.bulk_http.)

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
from collections.abc import Iterable
from typing import Any

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
