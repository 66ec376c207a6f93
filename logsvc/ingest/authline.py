# -*- test-case-name: tests.test_ingest_acks -*-
"""
The first-line token of TCP ingest: with a token file, a connection's first
line must be C{AUTH <token>} with an C{ingest}-scoped token.  The AUTH line is
never stored, also when no tokens are configured (a sender set up with a
token, talking to a server without tokens, must not have its token stored),
and never counted in acknowledgements.

L{AuthLine} only decides; the protocol answers a refusal (C{ERR
unauthorized}, then closes).
"""

from __future__ import annotations

from logsvc.auth import INGEST, Tokens

AUTH_PREFIX = b"AUTH "


class AuthLine:
    """
    The first-line check of one connection.

    @ivar passed: whether the first line was seen and admitted.
    @ivar token: the token it was admitted with (L{None} without tokens).
    """

    passed = False
    token: bytes | None = None

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    @property
    def required(self) -> bool:
        """
        Whether a valid AUTH line is required (a token file is in force).
        """
        return self.tokens.enabled

    def admit(self, lines: list[bytes]) -> list[bytes] | None:
        """
        Check the first batch of a connection.

        @param lines: the first lines the connection framed (at least one).
        @return: the lines past the AUTH line (possibly none), or L{None}
            when the connection must be refused.
        """
        first, rest = lines[0], lines[1:]
        if first.startswith(AUTH_PREFIX) and b"\n" in first:
            # A framing that does not end records at LF (GELF's NUL): the
            # AUTH line still ends at its LF.
            first, following = first.split(b"\n", 1)
            rest = [following, *rest]
        isAuthLine = first.startswith(AUTH_PREFIX)
        if self.tokens.enabled:
            token = first[len(AUTH_PREFIX) :].strip() if isAuthLine else None
            if not self.tokens.check(token, INGEST):
                return None
            self.token = token
            lines = rest
        elif isAuthLine and len(first.split()) == 2:
            # "AUTH failed for bob" has more words and stays a record.
            lines = rest
        self.passed = True
        return lines
