"""
C{logsvc}: the command-line client.

    logsvc send --service deploy "release 1.4 rolled out"
    some-program 2>&1 | logsvc send --service some-program
    logsvc query --level error --service api --since 2026-11-22T00:00:00Z
    logsvc query --all --json -q '"connection reset"' > errors.ndjson
    logsvc stats --by service
    logsvc tail --level warning

The server is C{--url} (or C{$LOGSVC_URL}, default C{http://127.0.0.1:8080});
a bearer token comes from C{--token} or C{$LOGSVC_TOKEN}.  Exit status: 0 on
success, 1 when the server refused (its error is printed), 2 when it could
not be reached or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson
from twisted.internet.defer import Deferred, inlineCallbacks

from logsvc.client import LogClient, LogServiceError, LogServiceUnreachable

DEFAULT_URL = "http://127.0.0.1:8080"
#: Records per request when sending lines from standard input.
SEND_BATCH = 1000


def formatRecord(record: dict[str, Any]) -> str:
    """
    @return: one human-readable line for a record:
        C{TS LEVEL SERVICE SOURCE MESSAGE key=value ...}.
    """
    fields = record.get("fields") or {}
    extra = "".join(
        f" {key}={value if isinstance(value, str) else orjson.dumps(value).decode()}"
        for key, value in fields.items()
    )
    return (
        f"{record['ts']} {record['level']:<8} {record.get('service') or '-'} "
        f"{record.get('source') or '-'} {record['message']}{extra}"
    )


def _filterArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="RFC 3339 time or epoch seconds (inclusive)")
    parser.add_argument("--until", help="RFC 3339 time or epoch seconds (exclusive)")
    parser.add_argument("--level", help="that severity or worse, e.g. warning")
    parser.add_argument("--service", action="append", help="repeat for several")
    parser.add_argument("--source", action="append", help="repeat for several")
    parser.add_argument("-q", "--query", dest="q", help="search text (syntax: docs/api.rst, Search)")
    parser.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="field filter, repeatable"
    )


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the argument parser of the C{logsvc} command.
    """
    parser = argparse.ArgumentParser(prog="logsvc", description="Send to and read from a logsvc server.")
    parser.add_argument("--url", default=os.environ.get("LOGSVC_URL", DEFAULT_URL))
    parser.add_argument("--token", default=os.environ.get("LOGSVC_TOKEN"))
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser("send", help="send a message, or each line of standard input")
    send.add_argument("message", nargs="*", help="the message (default: read lines from stdin)")
    send.add_argument("--service")
    send.add_argument("--level")
    send.add_argument("--host", help="source to record (default: the server sees your address)")

    query = commands.add_parser("query", help="print matching records")
    _filterArguments(query)
    query.add_argument("--limit", type=int, default=100, help="records per page (1..10000)")
    query.add_argument("--order", choices=["asc", "desc"], default="desc")
    query.add_argument("--all", action="store_true", help="follow every page")
    query.add_argument("--json", action="store_true", help="print NDJSON records")

    stats = commands.add_parser("stats", help="print counts over time, or top values")
    _filterArguments(stats)
    stats.add_argument("--interval", help="bucket width, e.g. 1m, 1h (default: automatic)")
    stats.add_argument("--by", choices=["service", "source", "level"], help="top values instead")

    tail = commands.add_parser("tail", help="print new records as they arrive (Ctrl-C stops)")
    _filterArguments(tail)
    tail.add_argument("--json", action="store_true", help="print NDJSON records")

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
            raise SystemExit(f"logsvc: --field wants KEY=VALUE, not {item!r}")
        fields[key] = value
    found = {
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


class Command:
    """
    Runs one parsed command line against a L{LogClient}, writing to C{out}.
    """

    def __init__(self, client: LogClient, out: IO[str], stdin: IO[str] | None = None) -> None:
        self.client = client
        self.out = out
        self.stdin = stdin if stdin is not None else sys.stdin

    def run(self, args: argparse.Namespace) -> Deferred[Any]:
        handler: Callable[[argparse.Namespace], Deferred[Any]] = getattr(self, "do_" + args.command)
        return handler(args)

    @inlineCallbacks
    def do_send(self, args: argparse.Namespace) -> Any:
        base = {k: v for k, v in (("service", args.service), ("level", args.level), ("host", args.host)) if v}
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
        cursor = None
        while True:
            page = yield self.client.query(limit=args.limit, order=args.order, cursor=cursor, **filters)
            for record in page.logs:
                self._print(record, args.json)
            if not args.all or page.next is None:
                break
            cursor = page.next

    @inlineCallbacks
    def do_stats(self, args: argparse.Namespace) -> Any:
        filters = _filters(args)
        if args.interval:
            filters["interval"] = args.interval
        if args.by:
            filters["by"] = args.by
        result = yield self.client.stats(**filters)
        if args.by:
            for entry in result["values"]:
                self.out.write(f"{entry.get('count', 0):>10} {entry.get('value')}\n")
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

        d: Deferred[Any] = copyStore(args.source, args.dest, reactor=reactor, progress=sys.stderr, statePath=args.state)
        return d.addCallback(done)

    def do_tail(self, args: argparse.Namespace) -> Deferred[Any]:
        def received(record: dict[str, Any]) -> None:
            self._print(record, args.json)
            self.out.flush()

        return self.client.tail(received, **_filters(args)).done

    def _print(self, record: dict[str, Any], asJSON: bool) -> None:
        if asJSON:
            self.out.write(orjson.dumps(record).decode() + "\n")
        else:
            self.out.write(formatRecord(record) + "\n")


def run(argv: Sequence[str], client: LogClient | None = None, out: IO[str] | None = None,
        stdin: IO[str] | None = None, err: IO[str] | None = None) -> Deferred[int]:
    """
    Run the command line C{argv} (without the program name).

    @return: a Deferred firing with the exit status (errors are printed to
        standard error, not raised).
    """
    args = buildParser().parse_args(list(argv))
    if client is None:
        client = LogClient(args.url, token=args.token)
    output = out if out is not None else sys.stdout
    errors = err if err is not None else sys.stderr
    d = Command(client, output, stdin).run(args)

    def succeeded(_: object) -> int:
        return 0

    def failed(failure: Any) -> int:
        if failure.check(LogServiceError):
            errors.write(f"logsvc: server refused: {failure.value}\n")
            return 1
        if failure.check(LogServiceUnreachable):
            errors.write(f"logsvc: {failure.value}\n")
            return 2
        errors.write(f"logsvc: {failure.getErrorMessage()}\n")
        return 2

    return d.addCallbacks(succeeded, failed)


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
