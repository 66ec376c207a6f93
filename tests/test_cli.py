"""
The C{logsvc} command line against the in-memory service.
"""

from __future__ import annotations

import io

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.cli import formatRecord, run
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
        self.assertEqual(line, "T error    - h m a=b n=1")


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

    def test_tail_prints_records(self) -> None:
        """
        C{tail} prints each record the client's tail delivers, and ends when
        the tail does.
        """
        from twisted.internet.defer import Deferred

        class FakeTail:
            done: Deferred[None] = Deferred()

        class FakeClient:
            def tail(self, onRecord, **filters):  # type: ignore[no-untyped-def]
                self.filters = filters
                onRecord({"ts": "T", "level": "warning", "service": "s", "source": "h", "message": "live"})
                return FakeTail()

        fake = FakeClient()
        d = run(["tail", "--level", "warning"], client=fake, out=self.out)  # type: ignore[arg-type]
        self.assertEqual(self.out.getvalue(), "T warning  s h live\n")
        self.assertEqual(fake.filters, {"level": "warning"})
        self.assertNoResult(d)
        FakeTail.done.callback(None)
        self.assertEqual(self.successResultOf(d), 0)
