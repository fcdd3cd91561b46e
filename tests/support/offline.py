"""A fixture that makes any real network call fail loudly (after python-telegram-bot's
`OfflineRequest`): the SDKs may only reach the local fakes, PostgreSQL and Redis on loopback.

Use it with `pytestmark = pytest.mark.usefixtures("offline")` after importing it into the
test module (`from tests.support.offline import offline`).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}


class RealNetworkCall(AssertionError):
    """A test tried to reach the internet."""


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths, raw tuples we do not understand: not the internet
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guard(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not _is_local(host):
            raise RealNetworkCall(f"real network call to {host!r} during a test")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and not _is_local(host):
            raise RealNetworkCall(f"DNS lookup of {host!r} during a test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
