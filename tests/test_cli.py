"""
The C{logsvc} command line against the in-memory service.
"""

from __future__ import annotations

import argparse
import io

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.cli import Style, buildParser, formatRecord, run, wantsColour
from logsvc.record import normalize
from logsvc.testing import MemoryLogService


class CommandLineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()
        self.out = io.StringIO()
        self.err = io.StringIO()

    def run_(self, *argv: str, stdin: str = "") -> int:
        d = run(list(argv), client=self.client, out=self.out, stdin=io.StringIO(stdin), err=self.err)
        return int(self.successResultOf(d))

    def test_send_message(self) -> None:
        """
        C{send MESSAGE...} stores one record with the given service and level.
        """
        self.assertEqual(self.run_("send", "--service", "deploy", "--level", "warn", "rolled", "out"), 0)
        self.assertEqual(self.out.getvalue(), "accepted 1\n")
        row = self.service.store.rows[0]
        self.assertEqual((row[3], row[5], row[6]), (4, "deploy", "rolled out"))

    def test_send_stdin_in_batches(self) -> None:
        """
        Without a message, every non-empty stdin line becomes a record, sent in
        batches of 1000.
        """
        lines = "".join(f"line {i}\n" for i in range(2500)) + "\n"
        self.assertEqual(self.run_("send", stdin=lines), 0)
        self.assertEqual(self.out.getvalue(), "accepted 2500\n")
        self.assertEqual(len(self.service.store.rows), 2500)
        self.assertEqual(self.service.metrics.registry.get_sample_value("logsvc_store_batches_total"), 3)

    def test_query_all_pages(self) -> None:
        """
        C{query --all} follows every page and prints one line per record.
        """
        self.successResultOf(self.client.send([{"message": f"m{i}", "service": "api"} for i in range(7)]))
        self.assertEqual(self.run_("query", "--all", "--limit", "3", "--order", "asc", "--service", "api"), 0)
        lines = self.out.getvalue().splitlines()
        self.assertEqual([line.split()[-1] for line in lines], [f"m{i}" for i in range(7)])

    def test_query_json(self) -> None:
        """
        C{query --json} prints NDJSON records in the API's shape.
        """
        self.successResultOf(self.client.send({"message": "x", "k": [1, 2]}))
        self.run_("query", "--json")
        record = orjson.loads(self.out.getvalue())
        self.assertEqual((record["message"], record["fields"]), ("x", {"k": [1, 2]}))

    def test_refusal_exit_status(self) -> None:
        """
        A refused request exits 1 and prints the server's reason.
        """
        self.assertEqual(self.run_("query", "--since", "never"), 1)
        self.assertIn("since: cannot parse 'never'", self.err.getvalue())

    def test_format_record(self) -> None:
        """
        The human format is time, level, service, source, message, fields.
        """
        line = formatRecord(
            {"ts": "T", "level": "error", "service": "", "source": "h", "message": "m",
             "fields": {"a": "b", "n": 1}}
        )
        self.assertEqual(line, "T error    - h m  a=b n=1")

    def test_format_multiline(self) -> None:
        """
        A multi-line message continues indented, and its fields follow on a
        line of their own.
        """
        text = formatRecord(
            {"ts": "T", "level": "error", "service": "api", "source": "h",
             "message": "Traceback:\n  File x\nValueError: y=1\n", "fields": {"a": "b"}}
        )
        self.assertEqual(
            text.split("\n"),
            ["T error    api h Traceback:", "      File x", "    ValueError: y=1", "    fields: a=b"],
        )

    def test_colours(self) -> None:
        """
        With colours, the level is coloured by severity and fields dimmed;
        without, the text is plain.
        """
        record = {"ts": "T", "level": "error", "service": "", "source": "h", "message": "m", "fields": {"a": 1}}
        self.assertEqual(formatRecord(record, Style(True)), "T \x1b[31merror   \x1b[0m - h m  \x1b[2ma=1\x1b[0m")
        self.assertNotIn("\x1b", formatRecord(dict(record, level="info", fields={}), Style(True)))
        self.assertNotIn("\x1b", formatRecord(record, Style(False)))

    def test_wantsColour(self) -> None:
        """
        Colours: always / never as told; auto only on a terminal, and not
        with NO_COLOR or TERM=dumb.
        """

        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        self.assertTrue(wantsColour("auto", Terminal(), {}))
        self.assertFalse(wantsColour("auto", io.StringIO(), {}))
        self.assertFalse(wantsColour("auto", Terminal(), {"NO_COLOR": "1"}))
        self.assertFalse(wantsColour("auto", Terminal(), {"TERM": "dumb"}))
        self.assertTrue(wantsColour("always", io.StringIO(), {"NO_COLOR": "1"}))
        self.assertFalse(wantsColour("never", Terminal(), {}))

    def test_query_says_more(self) -> None:
        """
        When a page is not the last, query says so on standard error (not in
        the records) with the cursor that continues, and --cursor does.
        """
        self.successResultOf(self.client.send([{"message": f"m{i}"} for i in range(3)]))
        self.assertEqual(self.run_("query", "--limit", "2", "--order", "asc"), 0)
        self.assertEqual([line.split()[-1] for line in self.out.getvalue().splitlines()], ["m0", "m1"])
        note = self.err.getvalue()
        self.assertIn("more records are available", note)
        cursor = note.split("--cursor ")[1].split()[0]
        self.out, self.err = io.StringIO(), io.StringIO()
        self.assertEqual(self.run_("query", "--limit", "2", "--order", "asc", "--cursor", cursor), 0)
        self.assertEqual([line.split()[-1] for line in self.out.getvalue().splitlines()], ["m2"])
        self.assertEqual(self.err.getvalue(), "")

    def test_send_source(self) -> None:
        """
        send --source records the source; --host, its earlier name, still
        works.
        """
        self.run_("send", "--source", "web-1", "a")
        self.run_("send", "--host", "web-2", "b")
        self.assertEqual([row[4] for row in self.service.store.rows], ["web-1", "web-2"])

    def test_help_states_defaults(self) -> None:
        """
        Every option's help says what it means, and every option that takes a
        value its default; --url and --token name their environment variables.
        """
        parser = buildParser()
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
        for name, sub in [("logsvc", parser), *subparsers.choices.items()]:
            for action in sub._actions:
                if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
                    continue
                self.assertTrue(action.help, (name, action.option_strings))
                if action.nargs != 0:
                    self.assertIn("default", action.help or "", (name, action.option_strings))
        helpText = parser.format_help()
        for needed in ("LOGSVC_URL", "LOGSVC_TOKEN", "NO_COLOR", "exit status"):
            self.assertIn(needed, helpText)


class StatsAndTailTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()
        self.out = io.StringIO()
        self.successResultOf(
            self.client.send(
                [{"message": f"m{i}", "service": "api" if i % 3 else "web", "level": "error" if i % 2 else "info",
                  "ts": 1_700_000_000 + i * 60} for i in range(6)]
            )
        )

    def test_stats_by(self) -> None:
        """
        C{stats --by service} prints each value with its count, most first.
        """
        d = run(["stats", "--by", "service"], client=self.client, out=self.out, err=io.StringIO())
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.out.getvalue().split(), ["4", "api", "2", "web"])

    def test_stats_histogram(self) -> None:
        """
        C{stats --interval 1h} prints the total and one line per bucket with
        its level counts.
        """
        d = run(["stats", "--interval", "1h", "--since", "1700000000", "--until", "1700003600"],
                client=self.client, out=self.out, err=io.StringIO())
        self.assertEqual(self.successResultOf(d), 0)
        lines = self.out.getvalue().splitlines()
        self.assertEqual(lines[0], "total 6")
        self.assertIn("6", lines[1].split())
        self.assertIn("error=3", lines[1])

    def test_stats_labels_empty(self) -> None:
        """
        C{stats --by service} names records without a service, rather than
        printing a blank.
        """
        self.successResultOf(self.client.send({"message": "no service"}))
        d = run(["stats", "--by", "service"], client=self.client, out=self.out, err=io.StringIO())
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.out.getvalue().splitlines()[-1].split(), ["1", "(no", "service)"])

    def test_tail_prints_records(self) -> None:
        """
        C{tail} prints each new record, and a line on standard error for each
        reconnection attempt once it streamed.
        """
        err = io.StringIO()
        d = run(["tail", "--level", "warning"], client=self.client, out=self.out, err=err)
        self.service.treq.flush()
        self.service.pipeline.submit([normalize({"message": "live", "level": "warning", "service": "s"}, "h", 1)])
        self.service.pipeline.submit([normalize({"message": "quiet", "level": "info"}, "h", 1)])
        self.service.treq.flush()
        self.assertEqual(self.out.getvalue(), "1970-01-01T00:00:00.000001Z warning  s h live\n")
        for session in list(self.service.root.children[b"logs"].children[b"tail"].hub.sessions):
            session._overflow()
        self.service.treq.flush()
        self.assertIn("logsvc: tail: lost ", err.getvalue())
        self.assertIn("(the server ended the stream); reconnecting in 0.5 s\n", err.getvalue())
        self.assertEqual(len(err.getvalue().splitlines()), 1)
        self.assertNoResult(d)
