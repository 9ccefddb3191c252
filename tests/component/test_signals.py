"""The nine signals: their arguments, order and the contract's example, run as written."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ipsmtp import SMTP, SMTPInterrupted, signals
from ipsmtp.server import Server


def test_the_contract_example_runs_verbatim(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # The example at the top of API.md, with the server address filled in. A nested function
    # (held only by the signal) must keep receiving: ipsmtp's signals hold receivers strongly.
    smtp = SMTP(mail_server="127.0.0.1", mail_port=server.port)
    smtp.from_ = "Ann <ann@example.com>"
    smtp.send_to = "bob@example.com, Cy <cy@example.com>"
    smtp.subject = "Quarterly report"
    smtp.message_text = "Hello,\nsee attached."

    def trace(sender: Any, direction: int, message: str, **kw: Any) -> None:
        print(direction, message)

    signals.pi_trail.connect(trace, sender=smtp)
    del trace
    result = smtp.send()
    print(result.accepted, result.rejected)
    out = capsys.readouterr().out
    assert "0 MAIL FROM:<ann@example.com>" in out
    assert "1 250" in out
    assert "['bob@example.com', 'cy@example.com'] {}" in out


def test_a_lambda_receiver_keeps_working(smtp: SMTP) -> None:
    seen: list[str] = []
    signals.pi_trail.connect(lambda sender, **kw: seen.append(kw["message"]), sender=smtp)
    smtp.send()
    assert "QUIT" in seen


def test_receivers_only_hear_their_own_component(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    one = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    two = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    heard: list[Any] = []
    signals.pi_trail.connect(lambda sender, **kw: heard.append(sender), sender=one)
    two.send()
    assert heard == []
    one.send()
    assert heard and all(s is one for s in heard)


def test_pi_trail_directions_and_no_content(smtp: SMTP, recorder: type) -> None:
    smtp.message_text = "BODY-MARKER"
    events = recorder(smtp)
    smtp.send()
    trail = events.trail
    assert {d for d, _ in trail} == {0, 1, 2}
    assert (0, "DATA") in trail
    assert any(d == 1 and m.startswith("354") for d, m in trail)
    assert any(d == 2 and "connecting" in m for d, m in trail)
    assert not any("BODY-MARKER" in m for _, m in trail)  # content is not traced
    for event in events.of("pi_trail"):
        assert set(event) == {"direction", "message", "tls"}
        assert event["tls"] is False


def test_connection_status_sequence(smtp: SMTP, recorder: type) -> None:
    events = recorder(smtp)
    smtp.send()
    statuses = events.of("connection_status")
    assert [s["connection_event"] for s in statuses] == [
        "Remote host connected",
        "Remote host disconnected",
    ]
    for status in statuses:
        assert set(status) == {"connection_event", "status_code", "description"}
        assert status["status_code"] == 0
        assert f":{smtp.mail_port}" in status["description"]


def test_transfer_signals(smtp: SMTP, server: Server, recorder: type) -> None:
    smtp.message_text = "".join(f"line {i}\n" for i in range(40000))  # about 400 KB
    events = recorder(smtp)
    smtp.send()
    names = [n for n, _ in events.events if n in ("start_transfer", "transfer", "end_transfer")]
    assert names[0] == "start_transfer" and names[-1] == "end_transfer"
    transfers = events.of("transfer")
    assert len(transfers) > 3
    size = len(server.messages[0].data) - 2  # the server adds nothing; CRLF already there
    percents = [t["percent_done"] for t in transfers]
    done = [t["bytes_transferred"] for t in transfers]
    assert percents == sorted(percents) and percents[-1] == 100
    assert done == sorted(done) and done[-1] >= size
    assert all(t["direction"] == 0 for t in transfers)
    assert events.of("start_transfer") == [{"direction": 0}]
    assert events.of("end_transfer") == [{"direction": 0}]


def test_no_transfer_signals_for_an_empty_body(smtp: SMTP, server: Server, recorder: type) -> None:
    smtp.message_text = ""
    events = recorder(smtp)
    smtp.send()
    assert server.messages
    assert not events.of("start_transfer")
    assert not events.of("transfer")
    assert not events.of("end_transfer")


def test_transfer_for_a_stream_of_unknown_size_ends_at_100(
    server: Server, make_smtp: Callable[..., SMTP], recorder: type
) -> None:
    class Pipe:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, n: int = -1) -> bytes:
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

        def seekable(self) -> bool:
            return False

    smtp = make_smtp(server)
    events = recorder(smtp)
    body = b"0123456789abcdef\r\n" * 12000
    smtp.send_stream(Pipe(b"From: a@example.com\r\nTo: b@example.com\r\n\r\n" + body))  # type: ignore[arg-type]
    percents = [t["percent_done"] for t in events.of("transfer")]
    assert percents[:-1] and set(percents[:-1]) == {-1}
    assert percents[-1] == 100


def test_expand_signal(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], recorder: type
) -> None:
    server = make_server(mailing_lists={"staff": ["Ann <ann@example.com>", "bob@example.com"]})
    smtp = make_smtp(server)
    events = recorder(smtp)
    assert smtp.expand("staff") == ["Ann <ann@example.com>", "bob@example.com"]
    assert events.of("expand") == [
        {"address": "Ann <ann@example.com>"},
        {"address": "bob@example.com"},
    ]


def test_a_raising_receiver_aborts_and_closes(smtp: SMTP, server: Server) -> None:
    def boom(sender: Any, **kw: Any) -> None:
        if kw["message"].startswith("RCPT"):
            raise RuntimeError("receiver failed")

    signals.pi_trail.connect(boom, sender=smtp)
    smtp.connect()
    with pytest.raises(RuntimeError, match="receiver failed"):
        smtp.send()
    assert not smtp.connected
    assert server.messages == []
    signals.pi_trail.disconnect(boom)
    smtp.send()  # reconnects and works
    assert len(server.messages) == 1


def test_interrupt_from_a_receiver(smtp: SMTP, server: Server) -> None:
    smtp.message_text = "x" * 300000
    signals.transfer.connect(lambda sender, **kw: sender.interrupt(), sender=smtp)
    with pytest.raises(SMTPInterrupted):
        smtp.send()
    assert not smtp.connected
    assert smtp.idle
    assert server.messages == []


def test_interrupt_from_another_thread_does_nothing_when_idle(smtp: SMTP, server: Server) -> None:
    smtp.connect()
    thread = threading.Thread(target=smtp.interrupt)
    thread.start()
    thread.join()
    assert smtp.connected
    smtp.send()
    assert len(server.messages) == 1


def test_idle_is_false_during_an_operation(smtp: SMTP) -> None:
    states: list[bool] = []
    signals.pi_trail.connect(lambda sender, **kw: states.append(sender.idle), sender=smtp)
    assert smtp.idle
    smtp.send()
    assert states and not any(states)
    assert smtp.idle


def test_do_events_notices_a_closed_connection(smtp: SMTP, server: Server, recorder: type) -> None:
    smtp.connect()
    events = recorder(smtp)
    server.stop()  # the server goes away while we are idle
    for _ in range(50):
        smtp.do_events()
        if not smtp.connected:
            break
        threading.Event().wait(0.02)
    assert not smtp.connected
    assert "Remote host disconnected" in [
        s["connection_event"] for s in events.of("connection_status")
    ]


MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_receiver_raising_on_quit_still_closes_the_connection(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server()
    smtp = make_smtp(server)
    smtp.connect()

    def boom(sender: object, direction: int, message: str, **kw: object) -> None:
        if message == "QUIT":
            raise ValueError("receiver failed")

    signals.pi_trail.connect(boom, sender=smtp)
    with pytest.raises(ValueError, match="receiver failed"):
        smtp.disconnect()
    assert not smtp.connected
    assert wait_until(lambda: bool(server.sessions) and server.sessions[0].closed)


@pytest.mark.sync_only  # in a coroutine, KeyboardInterrupt stops the event loop itself
def test_ctrl_c_in_a_certificate_receiver_closes_the_connection(
    make_server: MakeServer, make_smtp: MakeSMTP, server_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=server_tls_context)
    smtp = make_smtp(server)

    def judge(sender: object, **kw: object) -> None:
        raise KeyboardInterrupt

    signals.ssl_server_authentication.connect(judge, sender=smtp)
    with pytest.raises(KeyboardInterrupt):
        smtp.connect()
    assert not smtp.connected
    assert wait_until(lambda: bool(server.sessions) and server.sessions[0].closed)
