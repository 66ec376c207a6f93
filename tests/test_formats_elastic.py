"""Tests for L{logsvc.formats.elastic}: bulk bodies and ECS documents as plain functions."""

from __future__ import annotations

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.elastic import documentRecord, parseBulk
from logsvc.record import RecordError


def lines(*values: object) -> bytes:
    return b"".join(orjson.dumps(v) + b"\n" for v in values)


class DocumentTests(SynchronousTestCase):
    """
    ECS objects unfold into the record.
    """

    def test_ecs(self) -> None:
        """
        host.name, service.name and log.level map; their other keys become
        dotted fields; @timestamp is the event time.
        """
        record = documentRecord(
            {
                "@timestamp": "2026-11-22T10:00:00.5Z",
                "message": "m",
                "host": {"name": "h", "os": {"family": "linux"}},
                "service": {"name": "s", "version": "1"},
                "log": {"level": "WARN", "logger": "x"},
            },
            "idx",
            None,
            "p",
            5,
        )
        self.assertEqual(record[:6], (1795341600500000, 5, 4, "h", "s", "m"))
        self.assertEqual(
            orjson.loads(record.fields or "{}"),
            {"host.os": {"family": "linux"}, "service.version": "1", "log.logger": "x", "_index": "idx"},
        )

    def test_plainKeysWin(self) -> None:
        """
        A plain level and host string are taken over the ECS ones.
        """
        record = documentRecord(
            {"level": "error", "log": {"level": "info"}, "host": "web1"}, "i", "7", "p", 5
        )
        self.assertEqual((record.level, record.source), (3, "web1"))
        fields = orjson.loads(record.fields or "{}")
        self.assertEqual((fields["log.level"], fields["_id"]), ("info", "7"))

    def test_fluentBitLog(self) -> None:
        """
        A document with only a log string takes it as the message.
        """
        self.assertEqual(documentRecord({"log": "line"}, "i", None, "p", 5).message, "line")

    def test_notAnObject(self) -> None:
        """
        A document that is not an object is refused.
        """
        self.assertRaises(RecordError, documentRecord, [1], "i", None, "p", 5)


class ParseBulkTests(SynchronousTestCase):
    """
    Action and document lines become items, failures in their item.
    """

    def test_items(self) -> None:
        """
        Every action yields one item in order; blank lines are skipped.
        """
        body = lines({"index": {"_index": "a", "_id": 1}}, {"message": "x"}) + b"\n" + lines(
            {"create": {}}, {"message": "y"}
        )
        items = parseBulk(body, "p", 5, "dflt")
        self.assertEqual(
            [(i.action, i.index, i.docID, i.record.message if i.record else None) for i in items],
            [("index", "a", "1", "x"), ("create", "dflt", None, "y")],
        )

    def test_failures(self) -> None:
        """
        Unknown, update and delete actions, a bad action line and a final
        action without a document fail alone.
        """
        body = (
            lines({"upsert": {}}, {"message": "skipped"}, {"update": {"_id": "1"}}, {"doc": {}})
            + lines({"delete": {"_id": "2"}}, [1, 2], {"message": "skipped too"})
            + lines({"index": {}}, {"message": "kept"}, {"index": {}})
        )
        items = parseBulk(body, "p", 5)
        self.assertEqual(
            [(i.action, i.status, i.errorType) for i in items],
            [
                ("upsert", 400, "illegal_argument_exception"),
                ("update", 400, "illegal_argument_exception"),
                ("delete", 400, "illegal_argument_exception"),
                ("index", 400, "illegal_argument_exception"),
                ("index", 201, ""),
                ("index", 400, "action_request_validation_exception"),
            ],
        )
        self.assertEqual(items[4].record.message if items[4].record else None, "kept")

    def test_empty(self) -> None:
        """
        A body without actions is refused as a whole.
        """
        self.assertRaises(RecordError, parseBulk, b"\n\n", "p", 5)
