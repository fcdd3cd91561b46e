"""Plumbing shared by the fake provider servers.

A `FakeServer` is a real HTTP server (stdlib `ThreadingHTTPServer`) bound to 127.0.0.1 on an
ephemeral port and served from a daemon thread. Subclasses implement `handle()`, which turns one
HTTP request into a status code and a JSON payload. The base class records every call
thread-safely, lets tests wait for calls, keeps a queue of injected faults and enforces an
optional global rate limit over a sliding one-second window.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Call:
    """One API call received by a fake: the API method, its decoded parameters and the outcome.

    `time` is `time.monotonic()` at reception; `status` is the HTTP status the fake answered.
    """

    method: str
    params: dict[str, Any]
    time: float
    status: int

    @property
    def ok(self) -> bool:
        """True when the fake answered with a 2xx status."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Request:
    """An HTTP request as seen by `FakeServer.handle`."""

    verb: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters (lower case)."""
        return self.headers.get_content_type()


def _count_reached(count: int) -> Callable[[list[Call]], bool]:
    return lambda calls: len(calls) >= count


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        request = Request(
            self.command, url.path, parse_qs(url.query, keep_blank_values=True), self.headers, body
        )
        status, payload = self.server.fake.dispatch(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class FakeServer:
    """Base of the fakes: lifecycle, call log, waiting, faults and rate limiting."""

    def __init__(self, *, rate_limit_per_second: float | None = None) -> None:
        self.rate_limit_per_second = rate_limit_per_second
        self.calls: list[Call] = []
        self.count_429 = 0
        self.errors: list[BaseException] = []  # exceptions raised inside handlers (answered 500)
        self._cond = threading.Condition()  # RLock inside: guards all state of the fake
        self._accepted: deque[float] = deque()  # reception times of rate-limited, admitted calls
        self._faults: deque[Any] = deque()
        self._closing = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        self._closing = False
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake any long poll and close the listening socket."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- request handling -------------------------------------------------------------------

    def dispatch(self, request: Request) -> tuple[int, Any]:
        """Run `handle` under the state lock; a crash in a handler answers 500 and is kept."""
        with self._cond:
            try:
                return self.handle(request)
            except Exception as exc:
                self.errors.append(exc)
                return 500, {"error": repr(exc)}

    def handle(self, request: Request) -> tuple[int, Any]:
        """Answer one request with (HTTP status, JSON payload). Called with the lock held."""
        raise NotImplementedError

    def record(self, method: str, params: dict[str, Any], status: int, at: float) -> None:
        """Append a call to the log and wake `wait_for`."""
        with self._cond:
            self.calls.append(Call(method, params, at, status))
            if status == 429:
                self.count_429 += 1
            self._cond.notify_all()

    def admit(self, now: float) -> bool:
        """Sliding one-second window: False when the call would exceed `rate_limit_per_second`."""
        if self.rate_limit_per_second is None:
            return True
        with self._cond:
            while self._accepted and self._accepted[0] <= now - 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit_per_second:
                return False
            self._accepted.append(now)
            return True

    def next_fault(self) -> Any | None:
        """Pop the next fault queued by `fail_next`, if any."""
        with self._cond:
            return self._faults.popleft() if self._faults else None

    def queue_faults(self, n: int, fault: Any) -> None:
        """Make the next `n` fault-eligible calls fail with `fault`."""
        with self._cond:
            self._faults.extend([fault] * n)

    # -- assertions helpers -----------------------------------------------------------------

    def wait_for(
        self, condition: int | Callable[[list[Call]], bool], timeout: float = 5.0
    ) -> list[Call]:
        """Block until `condition` holds and return a snapshot of the calls.

        `condition` is either a number of calls to reach, or a predicate over the call list.
        Raises `TimeoutError` after `timeout` seconds.
        """
        predicate = _count_reached(condition) if isinstance(condition, int) else condition
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.calls), timeout=timeout):
                methods = [c.method for c in self.calls]
                raise TimeoutError(f"condition not met after {timeout}s; calls: {methods}")
            return list(self.calls)

    def max_per_second(self, method: str, window: float = 1.0) -> int:
        """Most successful `method` calls received within any `window`-second span."""
        with self._cond:
            times = [c.time for c in self.calls if c.method == method and c.ok]
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    @staticmethod
    def now() -> float:
        """Monotonic clock used for call times and the rate limiter."""
        return time.monotonic()
