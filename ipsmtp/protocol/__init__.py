"""The sans-IO SMTP client protocol: code that decides and never touches a socket.

* `_wire`: command formatting, the incremental reply parser, xtext;
* `_data`: the DATA encoder (CRLF normalisation, dot-stuffing, across chunks);
* `_session`: the session state machine (pending-command FIFO, extensions, STARTTLS rules);
* `_io`: the I/O requests flows yield to a driver (`Connect`, `StartTLS`, `Write`, `Read`, ...);
* `_observer`: what the protocol reports (the trace, statuses, transfer progress);
* `_channel`: one open connection's steps (write, read a reply, pipeline, quit, close);
* `_opening`: greeting, EHLO/HELO/LHLO, STARTTLS policy, certificate verdict, AUTH;
* `_transaction`: what a transaction carries (envelope, content, options) and the MAIL/RCPT
  parameters it asks of the server;
* `_delivery`: MAIL/RCPT/DATA/BDAT with pipelining, the StopOn* rules, LMTP, batches and
  unknown outcomes.

Nothing here imports socket, ssl, asyncio, threading, blinker or pydantic
(tests/core/test_sans_io.py proves it from the source). `ipsmtp._sync_driver` and
`ipsmtp._async_driver` run the flows over real connections.
"""

from ._channel import Channel
from ._delivery import NotSent, Pipeline, deliver, outcome
from ._io import Close, Connect, Flow, NextChunk, Peer, Poll, Read, StartTLS, TLSInfo, Write
from ._observer import Observer, Silent
from ._opening import OpenOptions, TLSMode, open_channel
from ._session import Session, State
from ._transaction import Content, DeliveryOptions, Envelope, in_memory

__all__ = [
    "Channel",
    "Close",
    "Connect",
    "Content",
    "DeliveryOptions",
    "Envelope",
    "Flow",
    "NextChunk",
    "NotSent",
    "Observer",
    "OpenOptions",
    "Peer",
    "Pipeline",
    "Poll",
    "Read",
    "Session",
    "Silent",
    "StartTLS",
    "State",
    "TLSInfo",
    "TLSMode",
    "Write",
    "deliver",
    "in_memory",
    "open_channel",
    "outcome",
]
