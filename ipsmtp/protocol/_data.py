"""The DATA encoder: line-ending normalisation, dot-stuffing and the end-of-data terminator.

Theory of operation
-------------------
Message content goes to the server between the 354 reply to DATA and the line ``.`` that ends
it (RFC 5321 §4.1.1.4). Two things can go wrong with arbitrary content:

* A line that starts with ``.`` would be read as the end of data, or lose its dot. RFC 5321
  §4.5.2 asks the client to double every leading dot ("dot-stuffing").
* A bare CR or a bare LF is not a line ending in SMTP, but some servers treat it as one. An
  outbound client that passes ``<LF>.<CR><LF>`` through lets a receiving server see the end of
  data early and read the rest as new commands: SMTP smuggling (SEC Consult, December 2023;
  CVE-2023-51764 and friends). So every bare CR and bare LF becomes CRLF **before**
  dot-stuffing, and dot-stuffing then sees every line start there is.

The encoder is fed the message in chunks of any size and keeps two pieces of state between
them: whether the output so far ends at the start of a line, and whether the previous chunk
ended with a CR whose LF may be the first byte of the next chunk. That is what lets
`send_file` stream a message of any size through it.

Every transformation is a `bytes` method that runs in C (`count`, `replace`); there is no
per-line Python loop, so the cost per byte stays small for large messages.
"""

from __future__ import annotations

__all__ = ["DataEncoder", "encode_data"]

_CR = b"\r"
_LF = b"\n"
_CRLF = b"\r\n"


class DataEncoder:
    """Turns message bytes into DATA content, chunk by chunk.

    `bytes_in` counts the message bytes fed so far and `bytes_out` the bytes produced
    (terminator included once `finish()` was called).

    With ``dot_stuff=False`` it serves BDAT (RFC 3030): line endings are still normalised
    (the content must not carry bare CR or LF unless BINARYMIME was negotiated) and a missing
    final CRLF is added, but nothing is stuffed and `finish()` adds no terminator line.
    """

    def __init__(self, *, dot_stuff: bool = True) -> None:
        self.dot_stuff = dot_stuff
        self._at_line_start = True
        self._held_cr = False
        self._finished = False
        self.bytes_in = 0
        self.bytes_out = 0

    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Return the encoded form of `chunk`; a trailing CR is held back for the next call."""
        if self._finished:
            raise ValueError("the encoder was already finished")
        data = bytes(chunk)
        self.bytes_in += len(data)
        if self._held_cr:
            data = _CR + data
            self._held_cr = False
        if data.endswith(_CR):
            # The LF that would make this a CRLF may be the first byte of the next chunk.
            data = data[:-1]
            self._held_cr = True
        if not data:
            return b""
        out = _normalise(data)
        if self.dot_stuff:
            out = out.replace(b"\r\n.", b"\r\n..")
            if self._at_line_start and out[:1] == b".":
                out = b"." + out
        self._at_line_start = out.endswith(_CRLF)
        self.bytes_out += len(out)
        return out

    def finish(self) -> bytes:
        """Return the bytes that end the content: a final CRLF if missing, then ``.`` CRLF."""
        if self._finished:
            raise ValueError("the encoder was already finished")
        self._finished = True
        tail = b""
        if self._held_cr:
            tail = _CRLF  # a CR at the very end is a bare CR: it ends a line
            self._held_cr = False
            self._at_line_start = True
        if not self._at_line_start and self.bytes_in:
            tail += _CRLF
        if self.dot_stuff:
            tail += b".\r\n"
        self.bytes_out += len(tail)
        return tail


def _normalise(data: bytes) -> bytes:
    """Every CRLF, bare CR and bare LF in `data` becomes CRLF."""
    crlf = data.count(_CRLF)
    if data.count(_CR) == crlf and data.count(_LF) == crlf:
        return data  # already clean: the common case costs three counting passes
    return data.replace(_CRLF, _LF).replace(_CR, _LF).replace(_LF, _CRLF)


def encode_data(message: bytes) -> bytes:
    """Encode a whole message at once: the content plus the terminator."""
    encoder = DataEncoder()
    return encoder.encode(message) + encoder.finish()
