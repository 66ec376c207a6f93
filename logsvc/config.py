# -*- test-case-name: tests.test_config -*-
"""
The options of C{twistd logsvc}, parsed into one frozen L{LogsvcConfig}.

Each option is written once, in L{Options.optParameters} (or C{optFlags}):
its name, its default as a user would type it, its help text, and a coerce
function (Twisted's C{usage} pattern: the function turns the text into a
typed value, its C{coerceDoc} is appended to the help).  Defaults go through
the same coerce function as given values, so the help shows C{64KiB} while
the config holds C{65536}.  Rules that involve several options live in
L{Options.postOptions}, the one place that builds the config.

Adding an option:
  1. a line in C{optParameters} (C{[name, None, default, help, coerce]}),
     with a coerce function from this module or a new one that raises
     C{ValueError} with a message that says what was expected;
  2. a field of the same name in camelCase on L{LogsvcConfig} (C{--max-line}
     is C{maxLine}), typed, no default (the option's default is the one);
  3. a row in C{docs/options.rst} (a test checks every option is there).
L{Options.config} is then built with it; a test checks the two lists match.

Every error names the option, the value and what is wrong, on one line:
C{--http 18080: not an endpoint; did you mean tcp:18080?}.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from logsvc.auth import TokenFileError, readTokenFile
from logsvc.extras import OTLP_GRPC
from logsvc.ingest.otlpgrpc import grpcAddress
from logsvc.ingest.tcp import DEFAULT_MAX_LINE
from logsvc.ingest.udp import parseUDPEndpoint
from logsvc.limits import DEFAULT_IDLE_TIMEOUT, FD_RESERVE
from logsvc.store.choose import checkDatabase
from logsvc.store.sqlite.connection import FSYNC_MODES
from logsvc.store.sqlite.readlanes import DEFAULT_SEARCH_TIMEOUT
from logsvc.units import formatSize, parseDuration, parseSize
from logsvc.web.forwarded import Network, parseTrustedProxies
from logsvc.web.guard import DEFAULT_REQUEST_TIMEOUT, DEFAULT_STALL_TIMEOUT
from logsvc.web.ingest import DEFAULT_MAX_BODY

T = TypeVar("T")


@dataclass(frozen=True)
class LogsvcConfig:
    """
    What C{twistd logsvc} was asked to run; see L{Options} for each option's
    meaning and default.  Sizes are bytes, durations seconds, endpoints
    Twisted endpoint strings (checked to parse).  Build one with
    L{parseConfig}; derive variants with C{dataclasses.replace}.
    """

    tcp: str
    http: str
    db: str
    maxLine: int
    maxBody: int
    drainTimeout: float
    fsync: str
    batchSize: int
    maxPending: int
    searchTimeout: float
    maxFuture: float
    gelf: str | None
    tcpAcked: str | None
    otlpGrpc: str | None
    udp: str | None
    udpAuth: str | None
    udpRcvbuf: int
    forward: str | None
    maxConnections: int | None
    idleTimeout: float
    requestTimeout: float
    authTimeout: float
    stallTimeout: float
    tokenFile: str | None
    tcpAuth: str
    retain: float | None
    maxDbSize: int | None
    minFreeDisk: int
    noSearchIndex: bool
    trustedProxies: tuple[Network, ...] | None

    def listeners(self) -> list[tuple[str, str]]:
        """
        @return: C{(option, endpoint)} of every listener asked for, in the
            order they start.
        """
        found = [("http", self.http), ("tcp", self.tcp)]
        for name in ("tcp-acked", "gelf", "otlp-grpc", "forward", "udp"):
            value = getattr(self, fieldName(name))
            if value is not None:
                found.append((name, value))
        return found


def fieldName(option: str) -> str:
    """
    @return: the L{LogsvcConfig} field of C{--option} (C{max-line} ->
        C{maxLine}).
    """
    head, *rest = option.split("-")
    return head + "".join(word.capitalize() for word in rest)


# Coerce functions.  Each takes the text given on the command line and
# returns the typed value or raises ValueError saying what was expected.


def _described(doc: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    def decorate(coerce: Callable[[str], T]) -> Callable[[str], T]:
        coerce.coerceDoc = doc  # type: ignore[attr-defined]
        return coerce

    return decorate


_BARE_PORT = re.compile(r"^\s*(\d+)\s*$")
_HOST_PORT = re.compile(r"^\s*\[?([^\[\]:]+|[0-9a-fA-F:]+)\]?:(\d+)\s*$")
_PORT_FIRST = re.compile(r"^(?:tcp6?|ssl):(\d+)(?::|$)")


@_described("A Twisted endpoint: tcp:PORT[:interface=ADDRESS], ssl:PORT:privateKey=KEY.pem, unix:PATH")
def endpoint(text: str) -> str:
    """
    Check that C{text} is a server endpoint string Twisted can build (the
    files an C{ssl:} endpoint names are read).

    @return: C{text}, unchanged.
    """
    bare = _BARE_PORT.match(text)
    if bare is not None:
        raise ValueError(f"not an endpoint; did you mean tcp:{bare.group(1)}?")
    hostPort = _HOST_PORT.match(text)
    if hostPort is not None and not text.startswith(("tcp", "ssl", "unix", "tcp6")):
        raise ValueError(
            f"not an endpoint; did you mean tcp:{hostPort.group(2)}:interface={hostPort.group(1)}?"
        )
    try:
        # Parsing builds the endpoint object only; no reactor is used until
        # it listens, which makeService does with the real one.
        serverFromString(cast(Any, None), text)
    except OSError as e:
        raise ValueError(f"cannot read {e.filename}: {(e.strerror or str(e)).lower()}") from None
    except Exception as e:
        raise ValueError(
            f"not an endpoint ({e}); e.g. tcp:8080, tcp:8080:interface=127.0.0.1, unix:/run/logsvc.sock"
        ) from None
    port = _PORT_FIRST.match(text)
    if port is not None and int(port.group(1)) > 65535:
        raise ValueError(f"port {port.group(1)} is out of range (0 to 65535)")
    return text


@_described("tcp:PORT[:interface=ADDRESS] or ssl:PORT:privateKey=KEY.pem")
def grpcEndpoint(text: str) -> str:
    """
    Check that grpcio can serve C{text} and that it is installed.

    @return: C{text}, unchanged.
    """
    missing = OTLP_GRPC.missing()
    if missing is not None:
        raise ValueError(missing)
    grpcAddress(text)
    return text


@_described("A file path, or postgresql://USER@HOST:PORT/DATABASE")
def database(text: str) -> str:
    """
    Check that this installation can use the store C{text} names (a
    PostgreSQL URL needs psycopg).

    @return: C{text}, unchanged.
    """
    problem = checkDatabase(text)
    if problem is not None:
        raise ValueError(problem)
    return text


@_described("udp:PORT[:interface=ADDRESS]")
def udpEndpoint(text: str) -> str:
    """
    Check that C{text} describes a UDP listener.

    @return: C{text}, unchanged.
    """
    parseUDPEndpoint(text)
    return text


@_described("A size in bytes: 65536, 64KiB, 10MB")
def positiveSize(text: str) -> int:
    """
    @return: bytes, more than 0.
    """
    size = parseSize(text)
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


@_described("A size in bytes: 65536, 64KiB, 10MB, 20GB")
def size(text: str) -> int:
    """
    @return: bytes, 0 or more.
    """
    return parseSize(text)


@_described("A whole number more than 0")
def positiveInteger(text: str) -> int:
    """
    @return: the number, more than 0.
    """
    try:
        number = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if number <= 0:
        raise ValueError("must be more than 0")
    return number


@_described("Seconds, or a duration: 30, 1.5, 5m")
def seconds(text: str) -> float:
    """
    @return: seconds, 0 or more.
    """
    return parseDuration(text)


@_described("A duration: 90m, 12h, 30d")
def positiveDuration(text: str) -> float:
    """
    @return: seconds, more than 0.
    """
    duration = parseDuration(text)
    if duration <= 0:
        raise ValueError("must be longer than 0")
    return duration


def choice(*choices: str) -> Callable[[str], str]:
    """
    @return: a coerce function accepting one of C{choices}.
    """

    @_described(f"One of: {', '.join(choices)}")
    def coerce(text: str) -> str:
        if text not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return text

    return coerce


@_described("A readable file of 'scope token' lines")
def tokenFile(text: str) -> str:
    """
    Check that the token file can be read and parsed (the error names the
    line, never a token).

    @return: the path, unchanged.
    """
    try:
        readTokenFile(text)
    except TokenFileError as e:
        raise ValueError(str(e)) from None
    return text


def _named(name: str, coerce: Callable[[str], T]) -> Callable[[str], T]:
    """
    Wrap C{coerce} so its C{ValueError} becomes a L{usage.UsageError} naming
    the option and the value (C{usage.CoerceParameter} would say neither).
    """

    def named(text: str) -> T:
        try:
            return coerce(text)
        except ValueError as e:
            raise usage.UsageError(f"--{name} {text}: {e}") from None

    named.coerceDoc = getattr(coerce, "coerceDoc", "")  # type: ignore[attr-defined]
    return named


#: Every option that takes a value: C{(name, default as typed, help, coerce)};
#: a default of L{None} means "off" (or, for max-connections and tcp-auth,
#: derived in L{Options.postOptions} and by the service).
#: Every option that is a switch: C{(name, help)}; off unless given.
FLAGS: list[tuple[str, str]] = [
    ("no-search-index", "Keep no full-text index: less ingest work, slow q and field searches"),
]

PARAMETERS: list[tuple[str, str | None, str, Callable[[str], Any]]] = [
    ("tcp", "tcp:5140", "TCP line ingest endpoint (plain, JSON and syslog lines)", endpoint),
    ("http", "tcp:8080", "HTTP API endpoint", endpoint),
    ("db", "./logsvc.sqlite3", "SQLite database file (the search index goes in <db>-search), or a postgresql:// URL", database),
    ("max-line", formatSize(DEFAULT_MAX_LINE), "Longest TCP line accepted", positiveSize),
    ("max-body", formatSize(DEFAULT_MAX_BODY), "Largest HTTP request body", positiveSize),
    ("drain-timeout", "5", "Seconds a stop waits for open TCP senders to close", seconds),
    ("fsync", "normal", "normal: survives a process crash; full: also power loss; off: neither", choice(*FSYNC_MODES)),
    ("batch-size", "10000", "Records per store transaction, at most", positiveInteger),
    ("max-pending", "200000", "Undurable records before TCP reading pauses and HTTP ingest answers 503", positiveInteger),
    ("max-future", "1d", "Records stamped further ahead of their receive time are kept with the receive time as ts", positiveDuration),
    ("search-timeout", f"{DEFAULT_SEARCH_TIMEOUT:g}", "Seconds one search (a store read) may take before it is stopped (0: no limit)", seconds),
    ("gelf", None, "GELF TCP endpoint (NUL-delimited GELF JSON frames), e.g. tcp:12201", endpoint),
    ("tcp-acked", None, "Acknowledged TCP ingest endpoint (writes 'OK <n>' once durable), e.g. tcp:5141", endpoint),
    ("otlp-grpc", None, "OTLP/gRPC logs endpoint, e.g. tcp:4317 or ssl:4317:privateKey=KEY.pem", grpcEndpoint),
    ("udp", None, "UDP syslog and GELF endpoint, e.g. udp:5514:interface=127.0.0.1", udpEndpoint),
    ("udp-auth", None, "none: take UDP without a token while --token-file is set (UDP cannot carry one)", choice("none")),
    ("udp-rcvbuf", "8MiB", "UDP receive buffer asked for (SO_RCVBUF; net.core.rmem_max caps it)", size),
    ("forward", None, "Fluent forward endpoint, e.g. tcp:24224 (shared-key handshake with --token-file)", endpoint),
    (
        "max-connections",
        None,
        f"Open client connections, all listeners together (default: half of the open-file limit less {FD_RESERVE}, at least 16)",
        positiveInteger,
    ),
    ("idle-timeout", f"{DEFAULT_IDLE_TIMEOUT:g}", "Seconds a TCP connection may stay silent (0: forever)", seconds),
    ("request-timeout", f"{DEFAULT_REQUEST_TIMEOUT:g}", "Seconds an HTTP request (headers and body) may take to arrive", seconds),
    ("auth-timeout", "5", "Seconds a new connection has to finish its TLS handshake and AUTH line or first authenticated request (0: no limit)", seconds),
    ("stall-timeout", f"{DEFAULT_STALL_TIMEOUT:g}", "Seconds an HTTP response may wait for a client that stopped reading", seconds),
    ("token-file", None, "Bearer tokens, one 'scope token' per line (scopes: ingest, read); SIGHUP reloads", tokenFile),
    ("tcp-auth", None, "token: TCP connections start with 'AUTH <token>'; none (default: token with --token-file, else none)", choice("token", "none")),
    ("retain", None, "Delete records older than this (by event time), e.g. 30d, 12h", positiveDuration),
    ("max-db-size", None, "Delete the oldest records while the data exceeds this, e.g. 20GB", size),
    ("min-free-disk", "256MiB", "Below this much free disk, ingest is refused (HTTP 507) or paused (TCP)", size),
    ("trusted-proxies", None, "Proxies whose X-Forwarded-For names the HTTP client, e.g. 10.0.0.5,10.1.0.0/16", parseTrustedProxies),
]  # fmt: skip


class Options(usage.Options):
    """
    Options of C{twistd logsvc}; each becomes the field of L{LogsvcConfig}
    with its name in camelCase (see the module docstring to add one).

    @ivar config: the L{LogsvcConfig}, once L{parseOptions} succeeded.
    """

    synopsis = "[options]"
    longdesc = (
        "Central log service: TCP/HTTP ingest, durable store, search and live tail. "
        "Listen addresses are Twisted endpoint strings, so ssl: and unix: work as well as tcp:."
    )

    optFlags = [[name, None, doc] for name, doc in FLAGS]

    optParameters = [[name, None, default, doc, _named(name, coerce)] for name, default, doc, coerce in PARAMETERS]


    config: LogsvcConfig

    def __init__(self) -> None:
        super().__init__()
        # Defaults as typed go through the same coerce functions as values
        # given on the command line.
        for name, default, _, coerce in PARAMETERS:
            if default is not None:
                self[name] = _named(name, coerce)(default)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options} (C{sys.argv[1:]} by default) and build L{config}.

        @raise usage.UsageError: one line naming the option, the value and
            what is wrong.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            unknown = re.match(r"option -*(\S+) not recognized", str(e))
            if unknown is not None:
                raise usage.UsageError(_unknownOption(unknown.group(1), self.longOpt)) from None
            raise

    def postOptions(self) -> None:
        if self["tcp-auth"] is None:
            self["tcp-auth"] = "token" if self["token-file"] else "none"
        if self["tcp-auth"] == "token" and not self["token-file"]:
            raise usage.UsageError("--tcp-auth token: needs --token-file")
        if self["udp"] is not None and self["token-file"] and self["udp-auth"] != "none":
            raise usage.UsageError(
                f"--udp {self['udp']}: UDP cannot authenticate senders: with --token-file, add --udp-auth"
                " none to accept unauthenticated datagrams (listen on a trusted interface)"
            )
        values: dict[str, Any] = {fieldName(name): bool(self[name]) for name, _ in FLAGS}
        values.update((fieldName(name), self[name]) for name, *_ in PARAMETERS)
        self.config = LogsvcConfig(**values)


def optionNames() -> list[str]:
    """
    @return: the name of every option of C{twistd logsvc}, without C{--}.
    """
    return [name for name, _ in FLAGS] + [name for name, *_ in PARAMETERS]


def _unknownOption(given: str, known: list[str]) -> str:
    names = [name.rstrip("=") for name in known]
    close = difflib.get_close_matches(given, names, n=1)
    hint = f"; did you mean --{close[0]}?" if close else "; see twistd logsvc --help"
    return f"--{given}: no such option{hint}"


def parseConfig(*argv: str) -> LogsvcConfig:
    """
    @return: the config C{twistd logsvc} would run with C{argv}.
    @raise usage.UsageError: as L{Options.parseOptions}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options.config
