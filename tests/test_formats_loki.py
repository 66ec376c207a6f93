"""Tests for L{logsvc.formats.loki}: Loki push bodies as plain functions."""

from __future__ import annotations

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.jsonline import DocumentError, JSONSyntaxError
from logsvc.formats.loki import parseLokiPush
from logsvc.record import RecordError


def push(*streams: dict) -> bytes:
    return orjson.dumps({"streams": list(streams)})


class LokiPushTests(SynchronousTestCase):
    """
    Streams, labels and values map to records.
    """

    def test_labelPriority(self) -> None:
        """
        service_name beats service, app and job; host beats instance; the
        losers stay in fields.
        """
        [record] = parseLokiPush(
            push(
                {
                    "stream": {"job": "j", "app": "a", "service_name": "s", "instance": "i:9", "host": "h"},
                    "values": [["1795000000000000001", "x"]],
                }
            ),
            "p",
            5,
        )
        self.assertEqual((record.service, record.source, record.ts), ("s", "h", 1795000000000000))
        self.assertEqual(orjson.loads(record.fields or "{}"), {"job": "j", "app": "a", "instance": "i:9"})

    def test_levels(self) -> None:
        """
        level, severity and detected_level map through the level aliases.
        """
        levels = [
            parseLokiPush(push({"stream": {name: value}, "values": [["1", "x"]]}), "p", 5)[0].level
            for name, value in (("level", "ERROR"), ("severity", "warn"), ("detected_level", "debug"))
        ]
        self.assertEqual(levels, [3, 4, 7])

    def test_numericTimestampAndEmpty(self) -> None:
        """
        A numeric timestamp works; a push without values stores nothing.
        """
        [record] = parseLokiPush(push({"stream": {}, "values": [[1795000000000000000, "x"]]}), "p", 5)
        self.assertEqual(record.ts, 1795000000000000)
        self.assertEqual(parseLokiPush(push({"stream": {}, "values": []}), "p", 5), [])

    def test_errors(self) -> None:
        """
        Invalid JSON, a body without streams, and bad entries are refused,
        entries with their position.
        """
        self.assertRaises(JSONSyntaxError, parseLokiPush, b"{", "p", 5)
        self.assertRaises(RecordError, parseLokiPush, b'{"streams": 1}', "p", 5)
        for bad in (["1"], ["1", 2], "x", ["1", "x", "meta"], ["soon", "x"]):
            error = self.assertRaises(
                DocumentError,
                parseLokiPush,
                push({"stream": {}, "values": [["1", "ok"], bad]}),
                "p",
                5,
            )
            self.assertEqual(error.index, 1)
            self.assertIn("values[1]", str(error))
