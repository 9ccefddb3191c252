"""SMTPPool and AsyncSMTPPool against the embedded server and scripted servers.

Every test runs with both pools: the async one through `BlockingPool`, which runs its
coroutines on a loop thread (nothing of the pool is replaced)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from clients import LoopThread
from scripted import Conversation, ScriptedServer, serve_rest

import ipsmtp._pool_base as pool_base
from ipsmtp import AsyncSMTPPool, ErrorCode, SMTPError, SMTPPool
from ipsmtp.server import Server


def message(n: int, to: str = "bob@example.com") -> bytes:
    return (
        f"From: ann@example.com\r\nTo: {to}\r\nSubject: n{n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


class BlockingPool:
    """An AsyncSMTPPool with a blocking face."""

    def __init__(self, loop: LoopThread, **kwargs: Any) -> None:
        self.loop = loop
        self.inner = loop.call(_make_async(kwargs))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if inspect.iscoroutinefunction(value):

            @functools.wraps(value)
            def blocking(*args: Any, **kwargs: Any) -> Any:
                return self.loop.call(value(*args, **kwargs))

            return blocking
        return value

    def close(self) -> None:
        self.loop.call(self.inner.aclose())

    def send_iter(self, messages: Any) -> Iterator[Any]:
        async def collect() -> list[Any]:
            return [r async for r in self.inner.send_iter(messages)]

        return iter(self.loop.call(collect()))


async def _make_async(kwargs: dict[str, Any]) -> AsyncSMTPPool:
    return AsyncSMTPPool(**kwargs)


@pytest.fixture(params=["sync", "async"])
def make_pool(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(server: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("mail_server", "127.0.0.1")
        kwargs.setdefault("mail_port", server.port)
        kwargs.setdefault("timeout", 10)
        if request.param == "sync":
            pool: Any = SMTPPool(**kwargs)
        else:
            pool = BlockingPool(request.getfixturevalue("loop_thread"), **kwargs)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def subjects(server: Server) -> list[str]:
    return [str(m.message["Subject"]) for m in list(server.messages)]


def test_results_in_input_order_and_each_message_once(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server(features=["PIPELINING"])
    pool = make_pool(server, max_connections=3, max_messages=10)
    results = pool.send_messages(message(n) for n in range(60))
    assert [r.message_id for r in results] == [f"<m{n}@example.com>" for n in range(60)]
    assert all(r.ok for r in results)
    assert sorted(subjects(server)) == sorted(f"n{n}" for n in range(60))


def test_connection_cap_and_messages_per_connection(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    # The server refuses a third simultaneous connection with 421: a pool opening more
    # than max_connections would see failures.
    server = make_server(features=["PIPELINING"], max_connections=2)
    pool = make_pool(server, max_connections=2, max_messages=5)
    results = pool.send_messages(message(n) for n in range(40))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    per_session: dict[int, int] = {}
    for received in list(server.messages):
        per_session[received.session_id] = per_session.get(received.session_id, 0) + 1
    assert max(per_session.values()) <= 5
    assert len(per_session) >= 8  # 40 messages, 5 per connection at most
    assert sum(per_session.values()) == 40


def test_pipelined_on_each_connection(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server(features=["PIPELINING"])
    pool = make_pool(server, max_connections=1, max_messages=None)
    pool.send_messages(message(n) for n in range(10))
    (session,) = [s for s in server.sessions if s.verbs.count("MAIL")]
    # One write per message (its MAIL, RCPT and DATA together), not one per command.
    assert session.flights[1:] == [["MAIL", "RCPT", "DATA"]] * 10


def test_threads_share_a_sync_pool(make_server: Callable[..., Server]) -> None:
    server = make_server(features=["PIPELINING"], max_connections=4)
    pool = SMTPPool(max_connections=4, mail_server="127.0.0.1", mail_port=server.port)
    errors: list[BaseException] = []

    def sender(t: int) -> None:
        try:
            for n in range(200):
                assert pool.send_message(message(t * 1000 + n)).ok
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    pool.close()
    assert not errors, errors[:3]
    got = subjects(server)
    assert len(got) == 1600
    assert sorted(got) == sorted(f"n{t * 1000 + n}" for t in range(8) for n in range(200))
    assert len({m.session_id for m in list(server.messages)}) <= 4 * (1600 // 100 + 1)


def test_tasks_share_an_async_pool(
    make_server: Callable[..., Server], loop_thread: LoopThread
) -> None:
    server = make_server(features=["PIPELINING"], max_connections=4)

    async def run() -> None:
        async with AsyncSMTPPool(
            max_connections=4, mail_server="127.0.0.1", mail_port=server.port
        ) as pool:

            async def sender(t: int) -> None:
                for n in range(200):
                    assert (await pool.send_message(message(t * 1000 + n))).ok

            await asyncio.gather(*(sender(t) for t in range(8)))

    loop_thread.call(run())
    got = subjects(server)
    assert sorted(got) == sorted(f"n{t * 1000 + n}" for t in range(8) for n in range(200))


def test_rate_limit_over_the_whole_pool(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server()
    pool = make_pool(server, max_connections=3, rate_limit=20)
    started = time.monotonic()
    results = pool.send_messages(message(n) for n in range(21))
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    # 21 starts spaced 1/20 s apart: at least 1.0 s, whatever the number of connections.
    assert elapsed >= 0.98, elapsed
    assert elapsed < 3.0, elapsed


def test_send_iter_takes_the_input_lazily(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server(features=["PIPELINING"])
    pool = make_pool(server, max_connections=2, max_messages=None)
    taken = 0
    ahead: list[int] = []
    given = 0

    def source() -> Iterator[bytes]:
        nonlocal taken
        for n in range(400):
            taken += 1
            ahead.append(taken - given)
            yield message(n)

    if isinstance(pool, SMTPPool):
        for result in pool.send_iter(source()):
            assert result.ok
            given += 1
        window = pool.settings.window
        assert max(ahead) <= window + 1, (max(ahead), window)
    else:
        results = list(pool.send_iter(source()))
        assert len(results) == 400
    assert len(list(server.messages)) == 400


def test_idle_connections_are_closed(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server()
    pool = make_pool(server, max_connections=2, idle_timeout=0.3)
    pool.send_message(message(1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(s.closed for s in server.sessions):
        time.sleep(0.05)
    assert server.sessions and all(s.closed for s in server.sessions)
    assert "QUIT" in server.sessions[0].verbs
    pool.send_message(message(2))  # a new connection
    assert len(server.sessions) == 2


def test_noop_before_reusing_an_idle_connection(
    make_pool: Callable[..., Any],
    make_server: Callable[..., Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_base, "NOOP_AFTER", 0.0)
    server = make_server()
    pool = make_pool(server, max_connections=1)
    pool.send_message(message(1))
    time.sleep(0.01)
    pool.send_message(message(2))
    (session,) = server.sessions
    assert session.verbs.count("NOOP") == 1
    assert session.verbs.index("NOOP") < len(session.verbs) - session.verbs[::-1].index("MAIL")


def test_a_dead_idle_connection_is_replaced(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    pool_server = make_server()
    pool = make_pool(pool_server, max_connections=1)
    pool.send_message(message(1))
    port = pool_server.port
    pool_server.stop()  # hangs up on the pooled connection
    fresh = make_server(port=port)
    assert pool.send_message(message(2)).ok
    assert subjects(fresh) == ["n2"]


def test_close_then_send_raises(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server()
    pool = make_pool(server)
    pool.send_message(message(1))
    pool.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(s.closed for s in server.sessions):
        time.sleep(0.02)
    assert all(s.closed for s in server.sessions)
    with pytest.raises(SMTPError) as caught:
        pool.send_message(message(2))
    assert caught.value.code == ErrorCode.NOT_CONNECTED


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"max_connections": "3"}, "max_connections"),
        ({"max_messages": 0}, "max_messages"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"idle_timeout": 0}, "idle_timeout"),
    ],
)
@pytest.mark.parametrize("cls", [SMTPPool, AsyncSMTPPool])
def test_bad_pool_settings(cls: type, kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(SMTPError) as caught:
        cls(**kwargs)
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert name in str(caught.value)


@pytest.mark.parametrize("cls", [SMTPPool, AsyncSMTPPool])
def test_bad_property_fails_at_construction(cls: type) -> None:
    with pytest.raises(SMTPError):
        cls(mail_port=70000)
    pool = cls(password="hunter2secret", config={"AuthorizationIdentity": "boss"})
    assert "hunter2" not in repr(pool)
    assert "hunter2" not in repr(vars(pool))


def _lost_before_end_of_data(attempts: list[int]) -> Callable[[Conversation], Any]:
    async def script(conv: Conversation) -> None:
        attempts.append(1)
        await conv.greet_and_ehlo()
        if len(attempts) == 1:
            await conv.expect("MAIL")
            conv.abort()  # the connection is lost before the end of data
            return
        await conv.accept_transaction()
        await serve_rest(conv)

    return script


def test_lost_before_end_of_data_is_sent_once_more(make_pool: Callable[..., Any]) -> None:
    attempts: list[int] = []
    with ScriptedServer(_lost_before_end_of_data(attempts)) as server:
        pool = make_pool(server, max_connections=1)
        result = pool.send_message(message(1))
        assert result.ok
        pool.close()
        server.wait_done()
    data = [c for c in server.conversations if b"\r\n.\r\n" in bytes(c.received)]
    assert len(data) == 1


def test_lost_after_end_of_data_is_never_sent_again(make_pool: Callable[..., Any]) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        await conv.send("250 ok")
        await conv.expect("RCPT")
        await conv.send("250 ok")
        await conv.expect("DATA")
        await conv.send("354 go ahead")
        await conv.read_data()
        conv.abort()  # the server may have the message: the outcome is unknown

    with ScriptedServer(script) as server:
        pool = make_pool(server, max_connections=1)
        with pytest.raises(SMTPError) as caught:
            pool.send_message(message(1))
        assert caught.value.code == ErrorCode.UNKNOWN_OUTCOME
        server.wait_done()
    assert len(server.conversations) == 1


def test_one_bad_message_does_not_stop_the_others(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server(
        features=["PIPELINING"],
        on_rcpt_to=lambda address, options: (
            "550 5.1.1 no such user" if "nobody" in address else None
        ),
    )
    pool = make_pool(server, max_connections=2)
    items = [message(n, "nobody@example.com" if n == 3 else "bob@example.com") for n in range(8)]
    results = pool.send_messages(items)
    assert [r.ok for r in results] == [n != 3 for n in range(8)]
    assert results[3].error is not None and "550" in str(results[3].error)
    assert sorted(subjects(server)) == sorted(f"n{n}" for n in range(8) if n != 3)


def test_email_message_input(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server()
    pool = make_pool(server)
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["To"] = "bob@example.com"
    msg["Bcc"] = "carol@example.com"
    msg["Subject"] = "hello"
    msg.set_content("hi")
    result = pool.send_message(msg)
    assert sorted(result.accepted) == ["bob@example.com", "carol@example.com"]
    (received,) = list(server.messages)
    assert b"carol" not in received.data


def test_config_settings_apply_to_every_connection(
    make_pool: Callable[..., Any], make_server: Callable[..., Server]
) -> None:
    server = make_server()
    pool = make_pool(server, max_connections=2, max_messages=1, config={"Hello": "pool.test"})
    pool.send_messages(message(n) for n in range(3))
    assert len(server.sessions) == 3
    assert all(s.commands[0] == "EHLO pool.test" for s in server.sessions)


@pytest.mark.parametrize("cls", [SMTPPool, AsyncSMTPPool])
def test_bad_config_fails_at_construction(cls: type) -> None:
    with pytest.raises(SMTPError) as caught:
        cls(config={"NoSuchSetting": "1"})
    assert "NoSuchSetting" in str(caught.value)
    with pytest.raises(SMTPError):
        cls(config="Hello=x")


# Where the first connection dies, and whether the message's end of data was out by then.
DROP_STEPS = {
    "greeting": False,
    "ehlo": False,
    "mail": False,
    "rcpt": False,
    "data": False,
    "content": False,
    "end of data": True,
}


def _drop_at(step: str, attempts: list[int]) -> Callable[[Conversation], Any]:
    async def script(conv: Conversation) -> None:
        attempts.append(1)
        if len(attempts) > 1:  # every later connection is well behaved
            await conv.greet_and_ehlo()
            await conv.accept_transaction()
            await serve_rest(conv)
            return
        if step == "greeting":
            conv.abort()
            return
        await conv.send("220 scripted.test ESMTP")
        await conv.expect("EHLO")
        if step == "ehlo":
            conv.abort()
            return
        await conv.send("250 scripted.test")
        for verb, reply in (("MAIL", "250 ok"), ("RCPT", "250 ok"), ("DATA", "354 go ahead")):
            await conv.expect(verb)
            if step == verb.lower():
                conv.abort()
                return
            await conv.send(reply)
        if step == "content":
            await conv.read_line()
            conv.abort()
            return
        await conv.read_data()
        conv.abort()  # after the end of data, before its reply

    return script


@pytest.mark.parametrize("step", DROP_STEPS)
def test_a_connection_lost_at_any_step_loses_nothing_and_sends_nothing_twice(
    make_pool: Callable[..., Any], step: str
) -> None:
    attempts: list[int] = []
    with ScriptedServer(_drop_at(step, attempts)) as server:
        pool = make_pool(server, max_connections=1)
        item = message(1)
        if step == "content":  # more than the socket buffers hold: the end is not out yet
            item += (b"y" * 998 + b"\r\n") * 16_000  # 16 MB in long lines (few reads)
        results = pool.send_messages([item])
        pool.close()
        server.wait_done()
    delivered = [c for c in server.conversations[1:] if b"\r\n.\r\n" in bytes(c.received)]
    if DROP_STEPS[step]:
        assert results[0].error is not None
        assert results[0].error.code == ErrorCode.UNKNOWN_OUTCOME
        assert delivered == [] and len(server.conversations) == 1  # never sent again
    else:
        assert results[0].ok, results[0].error
        assert len(delivered) == 1  # sent once more, on another connection, and only once
