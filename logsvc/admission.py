# -*- test-case-name: tests.test_admission -*-
"""
Admission of HTTP submissions into the pipeline: C{--max-pending} bounds
every submission, and a saturated queue is shared fairly between senders.

A sender is its token when the request carries one, else its peer's address
(L{senderOf}).  L{FairAdmission.refusal} decides, before a submission is
queued:

  - a submission of more records than C{--max-pending} can never fit: 413,
    with the bound to split it by;
  - one that would take the queue past C{--max-pending}: 503 with
    C{Retry-After};
  - while other senders are active (they have records queued, or were
    refused in the last L{ACTIVE_SECONDS}), a sender that already has
    records queued may hold at most an equal share of the queue
    (C{maxPending / active senders}); past it: 503.  A sender with nothing
    queued is always admitted when the queue has room, so one flood cannot
    turn every other sender's requests into 503s: its own requests are the
    ones refused.

Who owns what: L{FairAdmission} counts the records it admitted per sender
until their Deferred fires (durable or failed); the pipeline owns the total.
Reactor thread only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress

from logsvc.auth import authorizationToken

#: Seconds a refused sender still counts as active (waiting for its share).
ACTIVE_SECONDS = 5.0


class Refused(Exception):
    """
    A submission is not admitted.

    @ivar code: the HTTP status (413 or 503).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def peerName(address: IAddress | None) -> str:
    """
    @return: the host part of a peer address (C{"127.0.0.1"}), or C{"unix"}
        / C{"unknown"} for addresses without one.
    """
    host = getattr(address, "host", None)
    if isinstance(host, str):
        return host
    if address is not None and type(address).__name__ == "UNIXAddress":
        return "unix"
    return "unknown"


def senderFor(authorization: bytes | None, address: Any) -> str:
    """
    @param authorization: the request's C{Authorization} header, if any.
    @param address: the peer's address (an C{IAddress}).
    @return: the sender a request counts as: a digest of its token (tokens
        are never kept in the clear), else its peer's host.
    """
    token = authorizationToken(authorization)
    if token:
        return "token:" + hashlib.sha256(token).hexdigest()[:16]
    return "peer:" + peerName(address)


def senderOf(request: Any) -> str:
    """
    @return: L{senderFor} of a request.
    """
    return senderFor(request.getHeader(b"authorization"), request.getClientAddress())


class FairAdmission:
    """
    See the module docstring.

    @ivar held: records admitted and not yet durable, by sender.
    """

    def __init__(self, pipeline: Any, *, clock: Any = None, activeSeconds: float = ACTIVE_SECONDS) -> None:
        """
        @param pipeline: has C{pending} and C{maxPending} (a L{Pipeline}).
        """
        if clock is None:
            from twisted.internet import reactor as clock
        self.pipeline = pipeline
        self.clock = clock
        self.activeSeconds = activeSeconds
        self.held: dict[str, int] = {}
        self._waiting: dict[str, float] = {}

    def _activeOthers(self, sender: str) -> int:
        now = self.clock.seconds()
        for name, since in list(self._waiting.items()):
            if now - since > self.activeSeconds:
                del self._waiting[name]
        others = set(self.held) | set(self._waiting)
        others.discard(sender)
        return len(others)

    def refusal(self, sender: str, count: int) -> Refused | None:
        """
        @param count: the submission's records (0 before they are known: then
            only whether the sender may send at all).
        @return: why C{sender}'s submission of C{count} records is not
            admitted now, or L{None} when it is.
        """
        maxPending = self.pipeline.maxPending
        if count > maxPending:
            return Refused(
                413,
                f"one submission of {count} records exceeds max-pending ({maxPending});"
                f" send at most {maxPending} records per request",
            )
        mine = self.held.get(sender, 0)
        others = self._activeOthers(sender)
        if mine and others:
            share = maxPending // (others + 1)
            if mine + max(count, 1) > share:
                self._waiting[sender] = self.clock.seconds()
                return Refused(
                    503,
                    f"ingest queue is busy and this sender holds its share ({share} of {maxPending} records"
                    f" shared by {others + 1} senders), retry later",
                )
        if self.pipeline.pending + max(count, 1) > maxPending:
            self._waiting[sender] = self.clock.seconds()
            return Refused(503, "ingest queue is full, retry later")
        return None

    def admit(self, sender: str, count: int) -> None:
        """
        Count C{count} records of C{sender} as queued.

        @raise Refused: when L{refusal} says so (nothing is counted).
        """
        refused = self.refusal(sender, count)
        if refused is not None:
            raise refused
        self._waiting.pop(sender, None)
        if count:
            self.held[sender] = self.held.get(sender, 0) + count

    def track(self, sender: str, count: int, d: Deferred[Any]) -> Deferred[Any]:
        """
        Release C{count} records of C{sender} once C{d} fires (either way).

        @return: C{d}.
        """

        def release(result: Any) -> Any:
            left = self.held.get(sender, 0) - count
            if left > 0:
                self.held[sender] = left
            else:
                self.held.pop(sender, None)
            return result

        return d.addBoth(release)
