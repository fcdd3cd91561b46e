"""The bulk lanes' HTTP client (bot.channels.bulk_http) against a raw local server that answers
each request with bytes of the test's choosing: the ways real servers frame their answers,
keep-alive and its end, and the failures the senders must tell apart (Unsent / MaybeSent)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.bulk_http import BulkClient, MaybeSent, Unsent, form_body

# What the server does with request number n: answer these bytes and keep the connection
# (bytes), answer and then close it (bytes, "close"), hold the answer forever (None), or
# close without a word ("drop").
Action = bytes | tuple[bytes, str] | str | None
Answerer = Callable[[int], Action]


class RawServer:
    """Accepts connections and answers each whole request as `answer(n)` says."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0  # made
        self.open = 0  # not yet closed by the client
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/2010-04-01/Messages.json?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                action = self.answer(len(self.requests))
                if action is None:
                    await asyncio.sleep(3600)
                    return
                if action == "drop":
                    return
                data, close = (action, False) if isinstance(action, bytes) else (action[0], True)
                assert isinstance(data, bytes)
                # in two pieces, as a network may deliver it
                writer.write(data[: len(data) // 2])
                await writer.drain()
                await asyncio.sleep(0.001)
                writer.write(data[len(data) // 2 :])
                await writer.drain()
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def ok(body: bytes = b'{"sid": "SM1"}', *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        head.encode(),
        body,
    )


HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic eDp5"}


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_posts_the_request_as_given_and_keeps_the_connection_alive() -> None:
    async def scenario() -> None:
        async with RawServer(lambda n: ok(b'{"sid": "SM%d"}' % n)) as server:
            client = BulkClient(connections=4)
            answers = [await client.post(server.url, b"To=%2B225&Body=hi", HEADERS) for _ in "abc"]
            await client.close()
        assert [a.status for a in answers] == [201, 201, 201]
        assert [a.body for a in answers] == [
            b'{"sid": "SM1"}',
            b'{"sid": "SM2"}',
            b'{"sid": "SM3"}',
        ]
        assert answers[0].headers["content-length"] == "14"
        assert server.connections == 1  # one connection, kept alive
        first = server.requests[0]
        assert first.startswith(b"POST /2010-04-01/Messages.json?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in first
        assert b"\r\nAuthorization: Basic eDp5\r\n" in first
        assert b"\r\nContent-Length: 17\r\n\r\nTo=%2B225&Body=hi" in first

    run(scenario())


def test_reads_chunked_answers_and_skips_interim_ones() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\n{"ok"\r\nA\r\n: true}   \r\n0\r\nX-Trailer: 1\r\n\r\n'
    )

    async def scenario() -> None:
        async with RawServer(lambda n: chunked if n == 1 else ok()) as server:
            client = BulkClient()
            first = await client.post(server.url, b"", HEADERS)
            second = await client.post(server.url, b"", HEADERS)
            await client.close()
        assert (first.status, first.body) == (200, b'{"ok": true}   ')
        assert second.status == 201
        assert server.connections == 1

    run(scenario())


def test_a_connection_the_server_closes_is_not_used_again() -> None:
    answers: dict[int, Action] = {
        1: (ok(b"{}", "Connection: close"), "close"),
        2: (b"HTTP/1.0 200 OK\r\n\r\nto the end", "close"),  # delimited by the close
        3: ok(),
    }

    async def scenario() -> None:
        async with RawServer(answers.__getitem__) as server:
            client = BulkClient()
            first = await client.post(server.url, b"", HEADERS)
            second = await client.post(server.url, b"", HEADERS)
            third = await client.post(server.url, b"", HEADERS)
            await client.close()
        assert (first.body, second.body, third.status) == (b"{}", b"to the end", 201)
        assert server.connections == 3

    run(scenario())


def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    """A keep-alive connection the server closes while idle (its own timeout) is seen closed
    and left: the next request goes on a new one."""
    answers: dict[int, Action] = {1: (ok(), "close"), 2: ok()}

    async def scenario() -> None:
        async with RawServer(answers.__getitem__) as server:
            client = BulkClient()
            first = await client.post(server.url, b"", HEADERS)
            await asyncio.sleep(0.05)  # the close arrives
            second = await client.post(server.url, b"", HEADERS)
            await client.close()
        assert (first.status, second.status) == (201, 201)
        assert server.connections == 2

    run(scenario())


def test_a_refused_connection_is_unsent() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}/x"

    async def scenario() -> None:
        client = BulkClient()
        with pytest.raises(Unsent):
            await client.post(nowhere, b"", HEADERS)
        await client.close()

    run(scenario())


@pytest.mark.parametrize(
    ("action", "timeout"),
    [
        (None, True),  # no answer in time
        ("drop", False),  # the connection dropped before any answer
        ((b'HTTP/1.1 201 Created\r\nContent-Length: 50\r\n\r\n{"sid"', "close"), False),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", False),  # not HTTP at all
        ((b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{", "close"), False),
    ],
)
def test_a_request_that_went_out_without_a_whole_answer_may_have_been_sent(
    action: Action, timeout: bool
) -> None:
    async def scenario() -> None:
        async with RawServer(lambda n: action) as server:
            client = BulkClient(timeout=0.3)
            with pytest.raises(MaybeSent) as raised:
                await client.post(server.url, b"x=1", HEADERS)
            await client.close()
        assert raised.value.timeout is timeout
        assert len(server.requests) == 1  # it had gone out

    run(scenario())


def test_no_more_connections_than_allowed() -> None:
    async def scenario() -> None:
        async with RawServer(lambda n: ok()) as server:
            client = BulkClient(connections=3)
            answers = await asyncio.gather(
                *(client.post(server.url, b"", HEADERS) for _ in range(30))
            )
            await client.close()
        assert [a.status for a in answers] == [201] * 30
        assert server.connections <= 3

    run(scenario())


def test_a_connection_in_use_when_the_client_closes_is_closed_after_its_answer() -> None:
    async def scenario() -> None:
        async with RawServer(lambda n: ok()) as server:
            client = BulkClient()
            sending = asyncio.create_task(client.post(server.url, b"", HEADERS))
            await asyncio.sleep(0)  # its connection is being made
            await client.close()
            answer = await sending
            await asyncio.sleep(0.05)  # the close reaches the server
            assert server.open == 0
        assert answer.status == 201

    run(scenario())


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3)),
        max_size=6,
    )
)
def test_form_bodies_are_urlencodes_bytes(form: dict[str, str | list[str]]) -> None:
    assert form_body(form) == urlencode(form, doseq=True).encode()
    assert form_body(form) == urlencode(form, doseq=True).encode()  # and again, quoted kept
