"""
Bearer tokens with scopes.

A token file has one C{scope token} pair per line; blank lines and lines
starting with C{#} are ignored.  Scopes are C{ingest} (send records) and
C{read} (search, tail, export, stats, metrics).  A token may be listed once per
scope it holds.  Tokens are compared in constant time and never logged: log
lines name only the file and how many tokens it holds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

log = Logger()

INGEST = "ingest"
READ = "read"
SCOPES = frozenset({INGEST, READ})


class TokenFileError(ValueError):
    """
    A token file could not be read or has a bad line (the message names the
    line number, never the token).
    """


def parseTokens(text: str) -> dict[str, list[bytes]]:
    """
    Parse a token file's text.

    @return: scope -> tokens (as bytes).
    @raise TokenFileError: for a line that is not C{scope token} with a known
        scope.
    """
    tokens: dict[str, list[bytes]] = {scope: [] for scope in SCOPES}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenFileError(f"line {number}: expected 'scope token'")
        scope, token = parts
        if scope not in SCOPES:
            raise TokenFileError(
                f"line {number}: unknown scope {scope!r} (use {', '.join(sorted(SCOPES))})"
            )
        try:
            tokens[scope].append(token.encode("ascii"))
        except UnicodeEncodeError:
            raise TokenFileError(f"line {number}: token is not ASCII")
    return tokens


def readTokenFile(path: str) -> dict[str, list[bytes]]:
    """
    Read and parse a token file (blocking: call it off the reactor, or once at
    start).

    @raise TokenFileError: when it cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise TokenFileError(f"cannot read {path}: {e.__class__.__name__}: {getattr(e, 'strerror', e)}")
    return parseTokens(text)


class Tokens:
    """
    The tokens in force.  With no token file (C{path} None), every check
    passes: the service is open, as without this feature.

    @ivar path: the token file, or L{None}.
    """

    def __init__(self, path: str | None = None, tokens: dict[str, list[bytes]] | None = None) -> None:
        #: Open sessions by a key of their own: (token, scope, revoked).
        self._holders: dict[object, tuple[bytes, str | None, Callable[[], None]]] = {}
        self.path = path
        self._tokens: dict[str, list[bytes]] = tokens or {scope: [] for scope in SCOPES}
        if path is not None and tokens is None:
            self._tokens = readTokenFile(path)
            self._logLoaded()

    @classmethod
    def fromPairs(cls, pairs: Iterable[tuple[str, str]]) -> Tokens:
        """
        @return: tokens given in code as C{(scope, token)} pairs (for tests and
            embedding); checks are enforced as with a file.
        """
        text = "\n".join(f"{scope} {token}" for scope, token in pairs)
        made = cls(None, parseTokens(text))
        made._enforced = True
        return made

    _enforced = False

    @property
    def enabled(self) -> bool:
        """
        True when tokens are required at all.
        """
        return self.path is not None or self._enforced

    def check(self, token: bytes | None, scope: str) -> bool:
        """
        @return: True when C{token} holds C{scope} (always, when not enabled).
            Every token of the scope is compared, in constant time each, so
            the answer's timing does not tell which prefix matched.
        """
        if not self.enabled:
            return True
        if not token:
            return False
        found = False
        for candidate in self._tokens.get(scope, ()):
            found |= hmac.compare_digest(candidate, token)
        return found

    def scopeTokens(self, scope: str) -> list[bytes]:
        """
        @return: the tokens holding C{scope}, for protocols whose clients
            prove they know a token without sending it (the Fluent forward
            handshake's shared key).  Compare with C{hmac.compare_digest}.
        """
        return list(self._tokens.get(scope, ()))

    def known(self, token: bytes | None) -> bool:
        """
        @return: True when C{token} holds any scope (to tell 403 from 401).
        """
        return any(self.check(token, scope) for scope in SCOPES)

    def reload(self) -> Deferred[None]:
        """
        Re-read the token file (off the reactor thread).  A file that cannot
        be read or parsed is logged and the tokens in force stay.

        @return: a Deferred firing when done (never failing).
        """
        path = self.path
        if path is None:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d

        def loaded(tokens: dict[str, list[bytes]]) -> None:
            self.replace(tokens)
            self._logLoaded()

        def failed(failure: object) -> None:
            log.error(
                "token file not reloaded, previous tokens stay: {error}",
                error=failure.getErrorMessage(),  # type: ignore[attr-defined]
            )

        return deferToThread(readTokenFile, path).addCallbacks(loaded, failed)

    def replace(self, tokens: dict[str, list[bytes]]) -> None:
        """
        Put C{tokens} (scope -> tokens) in force, and end every session
        (L{hold}) whose token no longer holds the scope it was let in with.
        """
        self._tokens = tokens
        holders = self._holders
        for key, (token, scope, revoked) in list(holders.items()):
            allowed = self.known(token) if scope is None else self.check(token, scope)
            if not allowed:
                del holders[key]
                try:
                    revoked()
                except Exception:
                    log.failure("ending a session of a revoked token failed")

    def hold(self, token: bytes | None, scope: str | None, revoked: Callable[[], None]) -> Callable[[], None]:
        """
        Note an open session (a TCP connection, an HTTP connection and its
        tails) let in with C{token} for C{scope} (L{None}: any scope), so a
        reload that takes the scope away calls C{revoked} (on the reactor
        thread) to end it.

        @return: a function to call once the session ends by itself.
        """
        if not self.enabled or token is None:
            return _nothing
        holders = self._holders
        key = object()
        holders[key] = (token, scope, revoked)
        return lambda: holders.pop(key, None) and None

    def _logLoaded(self) -> None:
        log.info(
            "loaded tokens from {path}: {ingest} ingest, {read} read",
            path=self.path,
            ingest=len(self._tokens[INGEST]),
            read=len(self._tokens[READ]),
        )


def _nothing() -> None:
    pass


def authorizationToken(header: bytes | None) -> bytes | None:
    """
    The token of an C{Authorization} header, in whichever scheme the sender
    can send: C{Bearer TOKEN}; C{Basic} with the token as password (the user
    name is ignored: Python's HTTPHandler, Loki and Fluent Bit outputs only
    know basic credentials); C{ApiKey} as Elasticsearch shippers send it
    (base64 of C{id:key}, the key being the token; or the token itself).

    @return: the token, or L{None}.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(b" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == b"bearer" or not value:
        return value or None
    if scheme not in (b"basic", b"apikey"):
        return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value if scheme == b"apikey" else None
    if b":" not in decoded:
        return value if scheme == b"apikey" else None
    return decoded.partition(b":")[2] or None


def bearerToken(header: bytes | None) -> bytes | None:
    """
    @return: the token of an C{Authorization: Bearer TOKEN} header value, or
        L{None}.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = token.strip()
    return token or None
