"""One SASL exchange with the wire rules of RFC 4954; pure, no I/O."""

from __future__ import annotations

import base64
import binascii

from .._errors import ErrorCode, SMTPAuthError
from ._base import Mechanism

MAX_ROUNDS = 10


class Exchange:
    """Drive a mechanism's flow with RFC 4954 framing: base64, ``=`` for an empty initial
    response, ``*`` to cancel, and a cap on the number of challenge rounds.

    When the client must give up in the middle (a garbage challenge, a challenge after the
    mechanism finished, a server proof that does not check out), `respond()` returns ``*``
    so the server ends the exchange cleanly, and keeps the reason in `failure` for the
    caller to raise once the server has answered.
    """

    def __init__(self, mechanism: Mechanism, *, max_rounds: int = MAX_ROUNDS) -> None:
        self.mechanism = mechanism
        self.max_rounds = max_rounds
        self.rounds = 0
        self.failure: SMTPAuthError | None = None
        self._flow = mechanism.flow()
        self._deferred: str | None = None

    def initial_response(self, limit: int | None = None) -> str | None:
        """The AUTH command's second argument: base64, ``=`` when empty, None when absent.

        An initial response longer than `limit` characters is held back (RFC 4954 §4: the
        AUTH command must stay within the 512-octet command line), and sent as the answer to
        the server's first, empty, challenge instead. Raises `SMTPAuthError` when the
        mechanism cannot start (before anything is sent)."""
        first = next(self._flow)
        if first is None:
            return None
        encoded = base64.b64encode(first).decode("ascii") or "="
        if limit is not None and len(encoded) > limit:
            self._deferred = encoded
            return None
        return encoded

    def respond(self, challenge: str) -> str:
        """The line that answers a 334 challenge (its text, still base64): base64, or ``*``."""
        self.rounds += 1
        if self.rounds > self.max_rounds:
            raise SMTPAuthError(
                f"the server sent more than {self.max_rounds} AUTH challenges",
                code=ErrorCode.AUTH_TOO_MANY_ROUNDS,
            )
        if self.failure is not None:
            return "*"
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            if challenge.strip():
                return self._cancel(
                    SMTPAuthError(
                        f"the server sent a {self.mechanism.name} challenge where it should "
                        "have asked for the initial response with an empty one",
                        code=ErrorCode.AUTH_BAD_CHALLENGE,
                    )
                )
            return deferred
        try:
            decoded = base64.b64decode(challenge.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._cancel(
                SMTPAuthError(
                    f"the server's {self.mechanism.name} challenge is not base64",
                    code=ErrorCode.AUTH_BAD_CHALLENGE,
                )
            )
        try:
            response = self._flow.send(decoded)
        except StopIteration:
            return self._cancel(
                SMTPAuthError(
                    f"the server sent a challenge after the {self.mechanism.name} exchange "
                    "was complete",
                    code=ErrorCode.AUTH_BAD_CHALLENGE,
                )
            )
        except SMTPAuthError as exc:
            return self._cancel(exc)
        return base64.b64encode(response or b"").decode("ascii")

    def finish(self) -> None:
        """The server said 235: raise when the mechanism has reason to distrust it."""
        self.mechanism.finished()

    def _cancel(self, failure: SMTPAuthError) -> str:
        self.failure = failure
        return "*"
