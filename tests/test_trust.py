"""
Tests for L{logsvc.trust}: the protections' options and their metrics.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.service import Options
from logsvc.store.memory import MemoryStore
from logsvc.trust import Protection


class OptionTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_defaults(self) -> None:
        """Without options, TCP needs no token and nothing is retained or limited but the defaults."""
        options = self.parse()
        self.assertEqual(options["tcp-auth"], "none")
        self.assertIsNone(options["retain"])
        self.assertEqual(options["idle-timeout"], 300.0)

    def test_conversions(self) -> None:
        """Durations and sizes are parsed into seconds and bytes."""
        options = self.parse("--retain", "30d", "--max-db-size", "20GB", "--max-connections", "50")
        self.assertEqual(options["retain"], 30 * 86400)
        self.assertEqual(options["max-db-size"], 20 * 1000**3)
        self.assertEqual(options["max-connections"], 50)

    def test_tokenFileMakesTCPAuth(self) -> None:
        """A token file turns on the TCP AUTH line unless --tcp-auth none."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("ingest abc\n")
        self.assertEqual(self.parse("--token-file", path)["tcp-auth"], "token")
        self.assertEqual(self.parse("--token-file", path, "--tcp-auth", "none")["tcp-auth"], "none")

    def test_errorsNameTheOption(self) -> None:
        """Bad values are usage errors naming the option; a bad token file does not leak its tokens."""
        for args, name in (
            (("--retain", "soon"), "--retain"),
            (("--max-db-size", "big"), "--max-db-size"),
            (("--idle-timeout", "-1"), "--idle-timeout"),
            (("--tcp-auth", "token"), "--tcp-auth"),
            (("--max-connections", "0"), "--max-connections"),
        ):
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*args)
            self.assertIn(name, str(caught.exception))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("admin topsecret\n")
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--token-file", path)
        self.assertNotIn("topsecret", str(caught.exception))


class MetricsTests(SynchronousTestCase):
    def test_protectionMetrics(self) -> None:
        """/metrics carries the connection budget, refusals, idle drops, retention and disk figures."""
        directory = self.mktemp()
        os.makedirs(directory)
        clock = Clock()
        pipeline = Pipeline(MemoryStore(), reactor=clock)
        store = SimpleNamespace(dataPath=os.path.join(directory, "db.sqlite3"))
        options = {"max-connections": 1, "idle-timeout": 5.0}
        protection = Protection(options, pipeline, store, clock)
        guarded = protection.guardIngest(IngestFactory(pipeline))
        http = protection.guardHTTP(Factory.forProtocol(Protocol))
        self.assertIsNotNone(guarded.buildProtocol(None))
        self.assertIsNone(http.buildProtocol(None))
        text = pipeline.metrics.render().decode()
        self.assertIn("logsvc_connections_open 1.0", text)
        self.assertIn("logsvc_connections_max 1.0", text)
        self.assertIn("logsvc_connections_refused_total 1.0", text)
        for name in ("logsvc_connections_idle_dropped", "logsvc_http_refused", "logsvc_retention_deleted"):
            self.assertIn(name, text)
        self.assertIn("logsvc_disk_low 0.0", text)
