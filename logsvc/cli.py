# -*- test-case-name: tests.test_cli,tests.e2e.test_cli -*-
"""
C{logsvc}: the command-line client.

    logsvc send --service deploy "release 1.4 rolled out"
    some-program 2>&1 | logsvc send --service some-program
    logsvc query --level error --service api --since 2h
    logsvc query --all --json -q '"connection reset"' > errors.ndjson
    logsvc stats --by service
    logsvc tail --level warning

The server is C{--url} (or C{$LOGSVC_URL}, default C{http://127.0.0.1:8080});
a bearer token comes from C{--token} or C{$LOGSVC_TOKEN}.  Exit status: 0 on
success, 1 when the server refused (its error is printed), 2 when it could
not be reached (C{cannot reach URL}), did not speak HTTP, or the arguments
are wrong.  Records go to standard output; notes and errors to standard
error, so a pipe gets records only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.python.failure import Failure

from logsvc.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    LogClient,
    LogServiceError,
    LogServiceUnreachable,
)

DEFAULT_URL = "http://127.0.0.1:8080"
#: Records per request when sending lines from standard input.
SEND_BATCH = 1000

#: Exit statuses.
OK, REFUSED, UNREACHABLE = 0, 1, 2

#: ANSI SGR codes per level; info is left plain.
LEVEL_COLOURS = {
    "emergency": "1;31",
    "alert": "1;31",
    "critical": "1;31",
    "error": "31",
    "warning": "33",
    "notice": "36",
    "debug": "2",
}
#: Fields, and continuation of multi-line messages, are dimmed.
DIM = "2"


class Style:
    """
    How records are decorated: ANSI colours or none.

    @ivar colour: whether to colour.
    """

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def paint(self, text: str, code: str | None) -> str:
        """
        @return: C{text} in the SGR C{code} when colouring, else unchanged.
        """
        if not self.colour or not code or not text:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"


def wantsColour(choice: str, out: IO[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """
    @param choice: C{--color}: C{always}, C{never} or C{auto}.
    @return: whether to colour: for C{auto}, when C{out} is a terminal, and
        C{NO_COLOR} is not set (U{https://no-color.org}) and C{TERM} is not
        C{dumb}.
    """
    if choice == "always":
        return True
    if choice == "never":
        return False
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _fieldText(fields: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value if isinstance(value, str) else orjson.dumps(value).decode()}" for key, value in fields.items()
    )


def formatRecord(record: dict[str, Any], style: Style | None = None) -> str:
    """
    @return: a record for people: C{TS LEVEL SERVICE SOURCE MESSAGE}, then
        its fields as C{key=value}, set apart by two spaces; a multi-line
        message (a traceback) continues on lines indented by four spaces and
        its fields follow on a line of their own, so they are never taken for
        part of the message.  No final newline.
    """
    style = style or Style(False)
    level = record["level"]
    head = (
        f"{record['ts']} {style.paint(f'{level:<8}', LEVEL_COLOURS.get(level))} "
        f"{record.get('service') or '-'} {record.get('source') or '-'}"
    )
    lines = str(record["message"]).replace("\r\n", "\n").rstrip("\n").split("\n")
    fields = _fieldText(record.get("fields") or {})
    if len(lines) == 1:
        text = f"{head} {lines[0]}"
        return f"{text}  {style.paint(fields, DIM)}" if fields else text
    out = [f"{head} {lines[0]}"] + ["    " + line for line in lines[1:]]
    if fields:
        out.append("    " + style.paint("fields: " + fields, DIM))
    return "\n".join(out)


def _filterArguments(parser: argparse.ArgumentParser) -> None:
    times = "an RFC 3339 time (2026-11-22T10:00:00Z), epoch seconds, or a relative time: 15m, 2h, 7d, now-15m, now"
    group = parser.add_argument_group("filters (all must hold)")
    group.add_argument("--since", metavar="TIME", help=f"records at or after TIME: {times} (default: no bound)")
    group.add_argument("--until", metavar="TIME", help="records before TIME, in the same forms (default: no bound)")
    group.add_argument(
        "--level",
        help="that severity or worse: debug, info, notice, warning, error, critical, alert, emergency (default: all)",
    )
    group.add_argument("--service", metavar="NAME", action="append", help="the service; repeat for several (default: all)")
    group.add_argument(
        "--source", metavar="NAME", action="append", help="the source host; repeat for several (default: all)"
    )
    group.add_argument(
        "-q", "--query", dest="q", metavar="TEXT",
        help="search text of message and service (syntax: docs/api.rst; default: none)",
    )
    group.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE",
        help="a field equal to VALUE; repeat for several (default: none)",
    )


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the argument parser of the C{logsvc} command.
    """
    parser = argparse.ArgumentParser(
        prog="logsvc",
        description="Send log records to a logsvc server and read them back.",
        epilog=(
            "environment: LOGSVC_URL and LOGSVC_TOKEN give --url and --token; NO_COLOR turns colours off.\n"
            "exit status: 0 success, 1 the server refused (its reason is printed), "
            "2 the server could not be reached, or the arguments are wrong."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("LOGSVC_URL", DEFAULT_URL),
        help=f"the server's HTTP API (env LOGSVC_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LOGSVC_TOKEN"),
        help="bearer token, sent when the server has a token file (env LOGSVC_TOKEN; default none)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for the connection to open (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for an answer; for tail, for the stream to open; 0: no limit (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour levels and fields: auto colours on a terminal unless NO_COLOR is set (default auto)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = commands.add_parser("send", help="send a message, or each line of standard input")
    send.add_argument("message", nargs="*", help="the message (default: each non-empty line of standard input)")
    send.add_argument("--service", help="the service to record (default: none)")
    send.add_argument("--level", help="the level to record (default: info)")
    send.add_argument("--source", help="the source host to record (default: the address the server sees)")
    # The earlier name of --source, kept working.
    send.add_argument("--host", dest="source", help=argparse.SUPPRESS)

    query = commands.add_parser("query", help="print matching records, newest first")
    _filterArguments(query)
    query.add_argument("--limit", type=int, default=100, help="records per page, 1..10000 (default 100)")
    query.add_argument(
        "--order", choices=["asc", "desc"], default="desc", help="desc: newest first; asc: oldest first (default desc)"
    )
    query.add_argument("--all", action="store_true", help="follow every page (default: the first page only)")
    query.add_argument(
        "--cursor", help="start after this position, the one a previous page printed (default: the start)"
    )
    query.add_argument("--json", action="store_true", help="print NDJSON records, as the API returns them")

    stats = commands.add_parser("stats", help="print counts over time, or the top values of a column")
    _filterArguments(stats)
    stats.add_argument("--interval", help="bucket width, e.g. 1m, 1h, 1d (default: chosen for at most 120 buckets)")
    stats.add_argument("--tz", help="zone buckets align in: UTC, +05:30 or Europe/Berlin (default UTC)")
    stats.add_argument(
        "--by", choices=["service", "source", "level"],
        help="print the top values of this column instead (default: counts over time)",
    )
    stats.add_argument("--limit", type=int, help="with --by: how many values (default 10)")

    tail = commands.add_parser(
        "tail",
        help="print new records as they arrive (Ctrl-C stops)",
        description=(
            "Print matching records as they are stored. If the server cannot be reached at first, "
            "exit 2; once streaming, a lost connection is retried until it comes back (one line "
            "on standard error per attempt), resuming where it stopped."
        ),
    )
    _filterArguments(tail)
    tail.add_argument("--json", action="store_true", help="print NDJSON records, as the API returns them")

    copy = commands.add_parser(
        "copy", help="copy every record of one store into another (SQLite and PostgreSQL, either way; resumable)"
    )
    copy.add_argument("source", help="the store to read: a SQLite file or a postgresql:// URL, as --db names it")
    copy.add_argument("dest", help="the store to write (created if missing; should be empty)")
    copy.add_argument("--state", help="the resume state file (default: logsvc-copy-<hash>.json here)")
    return parser


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    fields = {}
    for item in args.field:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--field wants KEY=VALUE, not {item!r}")
        fields[key] = value
    found: dict[str, Any] = {
        "since": args.since,
        "until": args.until,
        "level": args.level,
        "service": args.service,
        "source": args.source,
        "q": args.q,
    }
    if fields:
        found["fields"] = fields
    return {k: v for k, v in found.items() if v is not None}


class UsageError(Exception):
    """
    The command line cannot be run as given (exit status 2).
    """


class Command:
    """
    Runs one parsed command line against a L{LogClient}, writing records to
    C{out} and notes to C{err}.
    """

    def __init__(
        self,
        client: LogClient,
        out: IO[str],
        stdin: IO[str] | None = None,
        err: IO[str] | None = None,
        style: Style | None = None,
        url: str = "",
    ) -> None:
        self.client = client
        self.out = out
        self.stdin = stdin if stdin is not None else sys.stdin
        self.err = err if err is not None else sys.stderr
        self.style = style or Style(False)
        self.url = url

    def run(self, args: argparse.Namespace) -> Deferred[Any]:
        handler: Callable[[argparse.Namespace], Deferred[Any]] = getattr(self, "do_" + args.command)
        return maybeDeferred(handler, args)

    @inlineCallbacks
    def do_send(self, args: argparse.Namespace) -> Any:
        base = {k: v for k, v in (("service", args.service), ("level", args.level), ("source", args.source)) if v}
        if args.message:
            lines: Any = [" ".join(args.message)]
        else:
            lines = (line.rstrip("\n") for line in self.stdin)
        batch: list[dict[str, Any]] = []
        total = 0
        for line in lines:
            if not line:
                continue
            batch.append(dict(base, message=line))
            if len(batch) >= SEND_BATCH:
                total += yield self.client.send(batch)
                batch = []
        if batch:
            total += yield self.client.send(batch)
        self.out.write(f"accepted {total}\n")

    @inlineCallbacks
    def do_query(self, args: argparse.Namespace) -> Any:
        filters = _filters(args)
        cursor = args.cursor
        while True:
            page = yield self.client.query(limit=args.limit, order=args.order, cursor=cursor, **filters)
            for record in page.logs:
                self._print(record, args.json)
            if page.next is None:
                return
            if not args.all:
                self.out.flush()
                self.err.write(
                    f"logsvc: more records are available: add --all for every page, "
                    f"or --cursor {page.next} for the next one\n"
                )
                return
            cursor = page.next

    @inlineCallbacks
    def do_stats(self, args: argparse.Namespace) -> Any:
        extra = {"interval": args.interval, "tz": args.tz, "by": args.by, "limit": args.limit}
        result = yield self.client.stats(**_filters(args), **{k: v for k, v in extra.items() if v is not None})
        if args.by:
            for entry in result["values"]:
                value = entry.get("value")
                label = value if value not in (None, "") else f"(no {args.by})"
                self.out.write(f"{entry.get('count', 0):>10} {label}\n")
            return
        self.out.write(f"total {result['total']}\n")
        for bucket in result.get("buckets", []):
            levels = " ".join(f"{k}={v}" for k, v in sorted(bucket.get("levels", {}).items()))
            self.out.write(f"{bucket['start']} {bucket['count']:>8} {levels}\n")

    def do_copy(self, args: argparse.Namespace) -> Deferred[Any]:
        from twisted.internet import reactor

        from logsvc.storecopy import copyStore

        def done(copied: int) -> None:
            self.out.write(f"copied {copied:,} records; count check passed\n")

        d: Deferred[Any] = copyStore(args.source, args.dest, reactor=reactor, progress=self.err, statePath=args.state)
        return d.addCallback(done)

    def do_tail(self, args: argparse.Namespace) -> Deferred[Any]:
        def received(record: dict[str, Any]) -> None:
            self._print(record, args.json)
            self.out.flush()

        def reconnecting(why: Exception | None, delay: float) -> None:
            if why is None:
                reason = "the server ended the stream"
            elif isinstance(why, LogServiceUnreachable):
                reason = why.description
            else:
                reason = str(why)
            self.err.write(f"logsvc: tail: lost {self.url} ({reason}); reconnecting in {delay:g} s\n")
            self.err.flush()

        return self.client.tail(received, onReconnect=reconnecting, **_filters(args)).done

    def _print(self, record: dict[str, Any], asJSON: bool) -> None:
        if asJSON:
            self.out.write(orjson.dumps(record).decode() + "\n")
        else:
            self.out.write(formatRecord(record, self.style) + "\n")


def explain(failure: Failure, url: str) -> tuple[int, str]:
    """
    @return: the exit status and the one line of standard error for a
        command that failed with C{failure}.
    """
    if failure.check(LogServiceError):
        return REFUSED, f"logsvc: server refused: {failure.value}"
    error = failure.value
    if isinstance(error, LogServiceUnreachable):
        if error.notHTTP is not None:
            return UNREACHABLE, (
                f"logsvc: {url} is not logsvc's HTTP API; it answered: {error.notHTTP!r} "
                "(is it a TCP ingest port? the HTTP API is the server's --http endpoint, default port 8080)"
            )
        return UNREACHABLE, f"logsvc: cannot reach {url}: {error.description}"
    if isinstance(error, UsageError):
        return UNREACHABLE, f"logsvc: {error}"
    return UNREACHABLE, f"logsvc: {failure.getErrorMessage()}"


def run(
    argv: Sequence[str],
    client: LogClient | None = None,
    out: IO[str] | None = None,
    stdin: IO[str] | None = None,
    err: IO[str] | None = None,
) -> Deferred[int]:
    """
    Run the command line C{argv} (without the program name).

    @param client: the client to use; by default one for C{--url}, closed at
        the end.
    @return: a Deferred firing with the exit status (errors are printed to
        C{err}, not raised).
    """
    args = buildParser().parse_args(list(argv))
    output = out if out is not None else sys.stdout
    errors = err if err is not None else sys.stderr
    owned = client is None
    if client is None:
        client = LogClient(
            args.url, token=args.token, connectTimeout=args.connect_timeout, timeout=args.timeout or None
        )
    style = Style(wantsColour(args.color, output))
    d = Command(client, output, stdin, errors, style, args.url).run(args)

    def succeeded(_: object) -> int:
        return OK

    def failed(failure: Failure) -> int:
        status, line = explain(failure, args.url)
        errors.write(line + "\n")
        return status

    d.addCallbacks(succeeded, failed)
    if owned:

        def close(status: int) -> Deferred[int]:
            assert client is not None
            return client.close().addBoth(lambda _: status)

        d.addCallback(close)
    return d


def main() -> None:
    """
    The C{logsvc} console script.
    """
    from twisted.internet.task import react

    def go(_: Any) -> Deferred[None]:
        d = run(sys.argv[1:])

        def finish(status: int) -> None:
            if status:
                raise SystemExit(status)

        return d.addCallback(finish)

    react(go)
