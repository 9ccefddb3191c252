"""What only `AsyncSMTP` has (API.md, "AsyncSMTP (asyncio)"): cancellation, one operation at a
time per instance, `interrupt()` from another task or thread, timeouts that never block the
loop, the read-only `connected`/`command` and `send_command()`, `async with`, coroutine
methods, signals sent with the async instance, the queue, and TLS.

Ordinary sending is covered for both components by the shared behaviour suite; each test here
runs its own event loop (``asyncio.run``) and checks what the server received.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from async_support import MESSAGE, Heartbeat, Silent, run, wait_until

from ipsmtp import (
    AsyncSMTP,
    ErrorCode,
    Reply,
    SMTPConnectError,
    SMTPError,
    SMTPInterrupted,
    SMTPTimeoutError,
    signals,
)
from ipsmtp.server import Server


def subjects(server: Server) -> list[str]:
    return [str(m.message["Subject"]) for m in server.messages]


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["task.cancel", "wait_for"])
def test_cancelling_a_send_stuck_at_the_end_of_data_closes_and_leaves_the_instance_usable(
    server: Server, how: str
) -> None:
    async def main() -> None:
        with Silent("end_of_data") as silent:
            smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=silent.port, timeout=30)
            smtp.config("UsePipelining=false")
            for name, value in MESSAGE.items():
                setattr(smtp, name, value)
            started = time.monotonic()
            if how == "task.cancel":
                task = asyncio.create_task(smtp.send())
                assert await wait_until(silent.reached.is_set)
                await asyncio.sleep(0.05)
                assert not task.done()
                assert not smtp.idle
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert task.cancelled()
            else:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(smtp.send(), 1.0)
                assert silent.reached.is_set()  # it was waiting for the end-of-data reply
            assert time.monotonic() - started < 5
            assert not smtp.connected
            assert smtp.idle
            # The connection was closed, not left open behind the cancelled task.
            assert await wait_until(silent.hung_up.is_set)
            assert b"Subject: Hello\r\n" in silent.content
            assert silent.connections == 1

        # The same instance, pointed at a working server, sends.
        smtp.mail_port = server.port
        smtp.subject = "after the cancellation"
        result = await smtp.send()
        assert result.ok
        assert not smtp.connected

    run(main())
    assert subjects(server) == ["after the cancellation"]
    assert server.sessions[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_cancelling_connect_while_the_server_never_greets(server: Server) -> None:
    async def main() -> None:
        with Silent("greeting") as silent:
            smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=silent.port, timeout=30)
            task = asyncio.create_task(smtp.connect())
            assert await wait_until(silent.reached.is_set)
            await asyncio.sleep(0.1)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not smtp.connected
            assert await wait_until(silent.hung_up.is_set)
            assert silent.connections == 1

        smtp.mail_port = server.port
        await smtp.connect()
        assert smtp.connected
        for name, value in MESSAGE.items():
            setattr(smtp, name, value)
        assert (await smtp.send()).ok
        assert smtp.connected  # connect() opened it: the send leaves it open
        await smtp.disconnect()
        assert not smtp.connected

    run(main())
    assert subjects(server) == ["Hello"]
    assert server.sessions[0].verbs[-1] == "QUIT"


def test_cancelling_send_file_in_mid_content_sends_no_end_of_data(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Cancelled while file content is going out (its pieces read in a worker thread): the
    connection is dropped before the end of data, so nothing is delivered, and the file and
    the socket are closed (an unclosed one would fail the test through a ResourceWarning)."""
    server = make_server(record_wire=False)
    path = tmp_path / "big.eml"
    line = b"x" * 78 + b"\r\n"
    with open(path, "wb") as f:
        f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n")
        f.write(line * (8 * 1024 * 1024 // len(line)))

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, timeout=20)
        task: asyncio.Task[Any] | None = None
        seen: list[int] = []

        def on_transfer(sender: Any, bytes_transferred: int, **kw: Any) -> None:
            seen.append(bytes_transferred)
            if bytes_transferred > 1024 * 1024 and task is not None and not task.cancelling():
                task.cancel()  # a receiver runs in the sending task, on the loop

        signals.transfer.connect(on_transfer, sender=smtp)
        task = asyncio.create_task(smtp.send_file(path))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1024 * 1024 < seen[-1] < os.path.getsize(path)
        assert not smtp.connected
        assert await wait_until(lambda: bool(server.sessions) and server.sessions[0].closed)
        # Usable again: the same file goes out whole.
        signals.transfer.disconnect(on_transfer, sender=smtp)
        assert (await smtp.send_file(path)).ok

    run(main())
    assert len(server.messages) == 1
    assert server.messages[0].data == path.read_bytes()
    assert server.sessions[0].verbs[-1] == "DATA"  # the first session ended inside DATA


# -- one operation at a time -------------------------------------------------------------------


def slow_mail_from(delay: float) -> Callable[[str, list[str]], None]:
    def on_mail_from(address: str, options: list[str]) -> None:
        time.sleep(delay)  # in the server's thread: every reply after MAIL comes late

    return on_mail_from


@pytest.mark.parametrize("features", [[], ["PIPELINING"]], ids=["plain", "pipelining"])
def test_two_concurrent_sends_on_one_instance_run_one_after_the_other(
    make_server: Callable[..., Server], features: list[str]
) -> None:
    server = make_server(features=features, on_mail_from=slow_mail_from(0.2))

    def message(subject: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = "ann@example.com"
        msg["To"] = "bob@example.com"
        msg["Subject"] = subject
        msg.set_content(f"{subject}\n")
        return msg

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, timeout=10)
        await smtp.connect()
        first = asyncio.create_task(smtp.send_message(message("first")))
        second = asyncio.create_task(smtp.send_message(message("second")))
        # The second waits for the first, and neither fails.
        results = await asyncio.gather(first, second)
        assert [r.ok for r in results] == [True, True]
        assert smtp.connected
        await smtp.disconnect()

    run(main())
    assert subjects(server) == ["first", "second"]
    assert len(server.sessions) == 1
    transaction = ["MAIL", "RCPT", "DATA"]
    assert server.sessions[0].verbs == ["EHLO", *transaction, *transaction, "QUIT"]
    if features:
        # Each transaction is one flight: the second was not mixed into the first.
        assert server.sessions[0].flights == [["EHLO"], transaction, transaction, ["QUIT"]]


def test_concurrent_sends_of_the_properties_message_do_not_interleave(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(on_mail_from=slow_mail_from(0.15))

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, timeout=10, **MESSAGE)
        await smtp.connect()
        results = await asyncio.gather(smtp.send(), smtp.send(), smtp.send())
        assert all(r.ok for r in results)
        assert len({r.message_id for r in results}) == 3
        await smtp.disconnect()

    run(main())
    assert len(server.messages) == 3
    assert len(server.sessions) == 1
    assert server.sessions[0].verbs == ["EHLO", *["MAIL", "RCPT", "DATA"] * 3, "QUIT"]


def test_concurrent_connects_open_one_connection(server: Server) -> None:
    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        await asyncio.gather(*(smtp.connect() for _ in range(5)))
        assert smtp.connected
        await smtp.disconnect()

    run(main())
    assert len(server.sessions) == 1
    assert server.sessions[0].verbs == ["EHLO", "QUIT"]


def test_cancelling_a_call_that_waits_for_the_instance_leaves_the_running_one_alone(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(on_mail_from=slow_mail_from(0.3))

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, timeout=10, **MESSAGE)
        await smtp.connect()
        running = asyncio.create_task(smtp.send())
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(smtp.send())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await running).ok
        assert smtp.connected  # the cancelled waiter never touched the connection
        assert (await smtp.send_command("NOOP")).code == 250
        await smtp.disconnect()

    run(main())
    assert len(server.messages) == 1
    assert server.sessions[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "NOOP", "QUIT"]


# -- interrupt() -------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["task", "thread"])
@pytest.mark.parametrize("at", ["greeting", "end_of_data"])
def test_interrupt_stops_a_stuck_send_and_the_instance_is_usable(
    server: Server, caller: str, at: str
) -> None:
    """Stuck waiting for the greeting, the send is interrupted; stuck after its end of data,
    its outcome is unknown (the server may have the message), and the error says so."""

    async def main() -> None:
        with Silent(at) as silent:
            smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=silent.port, timeout=30)
            smtp.config("UsePipelining=false")
            for name, value in MESSAGE.items():
                setattr(smtp, name, value)

            async def interrupter() -> None:
                assert await wait_until(silent.reached.is_set)
                await asyncio.sleep(0.05)
                if caller == "task":
                    smtp.interrupt()
                else:
                    await asyncio.to_thread(smtp.interrupt)

            helper = asyncio.create_task(interrupter())
            started = time.monotonic()
            with pytest.raises(SMTPError) as info:
                await smtp.send()
            await helper
            if at == "greeting":
                assert isinstance(info.value, SMTPInterrupted), repr(info.value)
            else:
                assert not isinstance(info.value, SMTPInterrupted), repr(info.value)
                assert isinstance(info.value, SMTPConnectError), repr(info.value)
                assert info.value.code == ErrorCode.UNKNOWN_OUTCOME
            assert time.monotonic() - started < 5
            assert not smtp.connected
            assert smtp.idle
            assert await wait_until(silent.hung_up.is_set)
            # The interrupt is spent: this task is not left cancelling.
            current = asyncio.current_task()
            assert current is not None and current.cancelling() == 0
            await asyncio.sleep(0.02)

        smtp.mail_port = server.port
        smtp.subject = "after the interrupt"
        assert (await smtp.send()).ok

    run(main())
    assert subjects(server) == ["after the interrupt"]


def test_interrupt_while_idle_does_nothing(server: Server) -> None:
    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, **MESSAGE)
        smtp.interrupt()
        await smtp.connect()
        smtp.interrupt()
        await asyncio.sleep(0.02)
        assert smtp.connected
        assert (await smtp.send()).ok
        await smtp.disconnect()

    run(main())
    assert subjects(server) == ["Hello"]


def test_interrupt_from_a_receiver_of_the_last_reply_never_cancels_the_caller_later(
    server: Server,
) -> None:
    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        await smtp.connect()

        def on_trail(sender: Any, direction: int, message: str, **kw: Any) -> None:
            if direction == 1 and message.startswith("250"):  # the reply to NOOP
                sender.interrupt()

        signals.pi_trail.connect(on_trail, sender=smtp)
        try:
            with contextlib.suppress(SMTPInterrupted):
                await smtp.send_command("NOOP")
        finally:
            signals.pi_trail.disconnect(on_trail, sender=smtp)
        stray = False
        try:
            await asyncio.sleep(0.05)  # the caller's own code, after the operation
        except asyncio.CancelledError:
            stray = True
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()
        await smtp.disconnect()
        assert not stray, "the interrupt cancelled the caller after the operation had ended"

    run(main())


# -- timeouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["greeting", "end_of_data"])
def test_timeout_against_a_silent_server_without_blocking_the_loop(at: str) -> None:
    async def main() -> None:
        with Silent(at) as silent:
            smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=silent.port, timeout=1)
            for name, value in MESSAGE.items():
                setattr(smtp, name, value)
            async with Heartbeat() as beat:
                started = time.monotonic()
                with pytest.raises(SMTPTimeoutError) as info:
                    await smtp.send()
                elapsed = time.monotonic() - started
            assert 0.9 <= elapsed < 2.0, elapsed
            # Silent after the end of data, the outcome is unknown (the message may have
            # been accepted): error 607 rather than 204, still an SMTPTimeoutError.
            expected = ErrorCode.TIMEOUT if at == "greeting" else ErrorCode.UNKNOWN_OUTCOME
            assert info.value.code == expected
            assert beat.max_gap < 0.1, beat.max_gap
            assert beat.beats >= 40  # it ran all along
            assert not smtp.connected
            assert await wait_until(silent.hung_up.is_set)
            assert silent.connections == 1

    run(main())


# -- API surface -------------------------------------------------------------------------------

COROUTINES = [
    "connect",
    "disconnect",
    "login",
    "send",
    "send_message",
    "send_file",
    "send_stream",
    "send_messages",
    "verify",
    "expand",
    "reset",
    "do_events",
    "queue",
    "process_queue",
    "send_to_terminal_and_email",
    "send_to_terminal_only",
    "send_to_terminal_or_email",
    "send_command",
    "__aenter__",
    "__aexit__",
]


@pytest.mark.parametrize("name", COROUTINES)
def test_network_and_disk_methods_are_coroutine_functions(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(AsyncSMTP, name))
    assert inspect.iscoroutinefunction(getattr(AsyncSMTP(), name))


def test_login_on_an_open_connection(make_server: Callable[..., Server]) -> None:
    server = make_server(users={"ann": "pa55word"})

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        await smtp.connect()
        smtp.user = "ann"
        smtp.password = "pa55word"
        await smtp.login()
        assert smtp.connected
        await smtp.disconnect()

    run(main())
    session = server.sessions[0]
    assert session.auth_user == "ann"
    assert session.verbs == ["EHLO", "AUTH", "QUIT"]


@pytest.mark.parametrize("name", ["config", "interrupt", "reset_headers"])
def test_plain_methods_are_not_coroutines(name: str) -> None:
    method = getattr(AsyncSMTP(), name)
    assert callable(method)
    assert not inspect.iscoroutinefunction(method)


def test_plain_methods_return_values_not_awaitables() -> None:
    smtp = AsyncSMTP()
    assert smtp.config("UsePipelining=false") == ""
    assert smtp.config("UsePipelining") == "false"
    assert smtp.interrupt() is None
    with pytest.raises(SMTPError):
        smtp.config("NoSuchSetting")


@pytest.mark.parametrize("name", ["connected", "Connected"])
def test_connected_is_read_only(server: Server, name: str) -> None:
    smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
    for value in (True, False):
        with pytest.raises(AttributeError):
            setattr(smtp, name, value)
    assert getattr(smtp, name) is False
    assert server.sessions == []  # the refused assignment did not connect either


@pytest.mark.parametrize("name", ["connected", "Connected"])
def test_the_constructor_refuses_connected(name: str) -> None:
    with pytest.raises(TypeError, match="connect"):
        AsyncSMTP(mail_server="127.0.0.1", **{name: True})


@pytest.mark.parametrize("name", ["command", "Command"])
def test_command_assignment_points_to_send_command(server: Server, name: str) -> None:
    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        await smtp.connect()
        try:
            with pytest.raises(AttributeError, match="send_command"):
                setattr(smtp, name, "NOOP")
        finally:
            await smtp.disconnect()

    run(main())
    assert "NOOP" not in server.sessions[0].verbs


def test_send_command_returns_the_reply_and_sets_last_reply(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(mailing_lists={"staff": ["ann@example.com"]})

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        with pytest.raises(SMTPError) as info:
            await smtp.send_command("NOOP")  # not connected
        assert info.value.code == ErrorCode.NOT_CONNECTED
        await smtp.connect()
        reply = await smtp.send_command("NOOP")
        assert isinstance(reply, Reply)
        assert reply.code == 250
        assert smtp.last_reply.startswith("250")
        assert smtp.LastReply == smtp.last_reply
        reply = await smtp.send_command("EXPN staff")
        assert reply.code == 250
        assert "ann@example.com" in reply.text
        assert "ann@example.com" in smtp.last_reply
        reply = await smtp.send_command("FROB")
        assert reply.code >= 500
        assert smtp.last_reply.startswith(str(reply.code))
        assert smtp.connected
        await smtp.disconnect()

    run(main())
    assert server.sessions[0].verbs == ["EHLO", "NOOP", "EXPN", "FROB", "QUIT"]


def test_async_with_disconnects_on_exit(server: Server) -> None:
    async def main() -> None:
        async with AsyncSMTP(mail_server=server.host, mail_port=server.port, **MESSAGE) as smtp:
            assert isinstance(smtp, AsyncSMTP)
            await smtp.connect()
            assert (await smtp.send()).ok
            assert smtp.connected
        assert not smtp.connected

        with pytest.raises(RuntimeError, match="boom"):
            async with AsyncSMTP(mail_server=server.host, mail_port=server.port) as other:
                await other.connect()
                raise RuntimeError("boom")
        assert not other.connected

    run(main())
    assert [s.verbs for s in server.sessions] == [
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        ["EHLO", "QUIT"],
    ]
    assert all(s.closed for s in server.sessions)


def test_both_property_spellings_and_validation() -> None:
    smtp = AsyncSMTP(MailServer="127.0.0.1", MailPort=2525, SendTo="bob@example.com")
    assert smtp.mail_server == smtp.MailServer == "127.0.0.1"
    assert smtp.mail_port == smtp.MailPort == 2525
    assert smtp.send_to == "bob@example.com"
    smtp.From = "Ann <ann@example.com>"
    assert smtp.from_ == "Ann <ann@example.com>"
    smtp.subject = "Hi"
    assert smtp.Subject == "Hi"
    with pytest.raises(ValueError):
        smtp.mail_port = 0
    assert smtp.MailPort == 2525
    with pytest.raises(ValueError):
        smtp.subject = "two\r\nlines"
    assert smtp.subject == "Hi"
    assert smtp.idle is True
    assert smtp.Idle is True


def test_assigning_a_misspelt_property_is_refused() -> None:
    smtp = AsyncSMTP()
    with pytest.raises(AttributeError, match="subject"):
        smtp.subjet = "typo"  # type: ignore[attr-defined]


def test_signals_are_sent_with_the_async_instance_on_the_loop(server: Server) -> None:
    heard: list[tuple[Any, int, str]] = []
    statuses: list[str] = []
    other_heard: list[str] = []
    loop_threads: set[int] = set()

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, **MESSAGE)
        other = AsyncSMTP()
        loop = asyncio.get_running_loop()

        def on_trail(sender: Any, direction: int, message: str, **kw: Any) -> None:
            assert asyncio.get_running_loop() is loop  # called on the event loop
            loop_threads.add(threading.get_ident())
            heard.append((sender, direction, message))

        def on_status(sender: Any, connection_event: str, **kw: Any) -> None:
            statuses.append(connection_event)

        def on_other(sender: Any, message: str, **kw: Any) -> None:
            other_heard.append(message)

        signals.pi_trail.connect(on_trail, sender=smtp)
        signals.connection_status.connect(on_status, sender=smtp)
        signals.pi_trail.connect(on_other, sender=other)
        assert (await smtp.send()).ok

    run(main())
    assert heard
    assert all(isinstance(sender, AsyncSMTP) for sender, _, _ in heard)
    assert len({id(sender) for sender, _, _ in heard}) == 1
    assert loop_threads == {threading.get_ident()}
    client_lines = [m.split(" ", 1)[0] for _, d, m in heard if d == 0]
    assert client_lines == server.sessions[0].verbs
    assert statuses
    assert other_heard == []


def test_repr_names_the_class_and_hides_the_password() -> None:
    smtp = AsyncSMTP(
        mail_server="127.0.0.1", mail_port=2525, user="ann", password="s3cret-Pa55word"
    )
    text = repr(smtp)
    assert "AsyncSMTP" in text
    assert "s3cret-Pa55word" not in text
    assert "s3cret-Pa55word" not in str(smtp)
    assert "s3cret-Pa55word" not in repr(smtp.password)


# -- queue -------------------------------------------------------------------------------------


def test_queue_then_process_queue(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, **MESSAGE)
        smtp.subject = "queued"
        path = await smtp.queue(tmp_path)
        assert path.endswith(".queued")
        assert os.path.dirname(path) == str(tmp_path)
        assert os.path.exists(path)
        assert server.sessions == []  # queueing does not connect
        sender = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        report = await sender.process_queue(tmp_path)
        assert report.failed == {}
        assert len(report.sent) == 1
        assert not sender.connected

    run(main())
    assert os.listdir(tmp_path) == []
    assert subjects(server) == ["queued"]
    assert server.messages[0].mail_from == "ann@example.com"
    assert server.messages[0].rcpt_tos == ["bob@example.com"]


# -- TLS ---------------------------------------------------------------------------------------


def test_starttls_with_a_trusted_ca(
    make_server: Callable[..., Server],
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    server_cert: trustme.LeafCert,
) -> None:
    server = make_server(starttls_context=server_tls_context)
    der = ssl.PEM_cert_to_DER_cert(server_cert.cert_chain_pems[0].bytes().decode())

    async def main() -> None:
        smtp = AsyncSMTP(
            mail_server=server.host,
            mail_port=server.port,
            ssl_context=client_tls_context,
            **MESSAGE,
        )
        await smtp.connect()
        assert smtp.ssl_server_cert == der
        assert smtp.config("SSLNegotiatedVersion").startswith("TLSv1.")
        assert smtp.config("SSLNegotiatedCipher")
        assert (await smtp.send()).ok
        assert (await smtp.send_command("NOOP")).code == 250
        await smtp.disconnect()
        assert smtp.SSLServerCert == der

    run(main())
    session = server.sessions[0]
    assert session.tls
    assert session.verbs == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "NOOP", "QUIT"]
    assert server.messages[0].tls


def test_starttls_with_a_ca_file_setting(
    make_server: Callable[..., Server], server_tls_context: ssl.SSLContext, ca_file: str
) -> None:
    server = make_server(starttls_context=server_tls_context)

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, **MESSAGE)
        smtp.config(f"OpenSSLCAFile={ca_file}")
        assert (await smtp.send()).ok
        assert smtp.ssl_server_cert
        assert smtp.config("SSLNegotiatedVersion")

    run(main())
    assert server.messages[0].tls
