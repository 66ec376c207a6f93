"""Tests for L{logsvc.formats.loki}: Loki push bodies as plain functions."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.jsonline import DocumentError, JSONSyntaxError
from logsvc.formats.loki import parseLabels, parseLokiProtobuf, parseLokiPush
from logsvc.record import RecordError
from tests.protowire import field


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


def entry(seconds: int, nanos: int, line: str, **metadata: str) -> bytes:
    """
    @return: an C{EntryAdapter} as push.proto numbers it: timestamp 1
        (google.protobuf.Timestamp: seconds 1, nanos 2), line 2,
        structuredMetadata 3 (LabelPairAdapter: name 1, value 2).
    """
    stamp = field(1, seconds) + (field(2, nanos) if nanos else b"")
    pairs = b"".join(field(3, field(1, k.encode()) + field(2, v.encode())) for k, v in metadata.items())
    return field(1, stamp) + field(2, line.encode()) + pairs


def pushRequest(*streams: tuple[str, list[bytes]]) -> bytes:
    """
    @return: a C{PushRequest} (streams 1; StreamAdapter: labels 1, entries 2)
        written byte by byte from push.proto's field numbers, independent of
        the descriptor logsvc builds, as Promtail's marshaller writes it.
    """
    return b"".join(
        field(1, field(1, labels.encode()) + b"".join(field(2, e) for e in entries)) for labels, entries in streams
    )


#: What Promtail sends for two lines of one stream: labels in Prometheus'
#: String() form, a structured metadata pair on the second entry.
PROMTAIL_PUSH = pushRequest(
    (
        '{filename="/var/log/app.log", host="web1", job="varlogs", level="warn"}',
        [entry(1795000000, 123456789, "first"), entry(1795000001, 0, "second", trace_id="abc")],
    ),
    ('{service_name="api", note="a \\"quoted\\" \\\\ value\\n"}', [entry(1795000002, 0, "third")]),
)


class LokiProtobufTests(SynchronousTestCase):
    """
    The protobuf flavour maps as the JSON one.
    """

    def test_goldenPush(self) -> None:
        """
        A push written from push.proto's field numbers maps labels (escapes
        undone), lines, nanosecond timestamps and structured metadata.
        """
        records = parseLokiProtobuf(PROMTAIL_PUSH, "p", 5)
        self.assertEqual(
            [r[:6] for r in records],
            [
                (1795000000123456, 5, 4, "web1", "varlogs", "first"),
                (1795000001000000, 5, 4, "web1", "varlogs", "second"),
                (1795000002000000, 5, 6, "p", "api", "third"),
            ],
        )
        self.assertEqual(orjson.loads(records[0].fields or "{}"), {"filename": "/var/log/app.log"})
        self.assertEqual(orjson.loads(records[1].fields or "{}"), {"filename": "/var/log/app.log", "trace_id": "abc"})
        self.assertEqual(orjson.loads(records[2].fields or "{}"), {"note": 'a "quoted" \\ value\n'})

    def test_sameAsJSON(self) -> None:
        """A push gives the same records as the JSON push of the same streams."""
        asJSON = push(
            {
                "stream": {"filename": "/var/log/app.log", "host": "web1", "job": "varlogs", "level": "warn"},
                "values": [["1795000000123456789", "first"], ["1795000001000000000", "second", {"trace_id": "abc"}]],
            },
            {"stream": {"service_name": "api", "note": 'a "quoted" \\ value\n'}, "values": [["1795000002000000000", "third"]]},
        )
        self.assertEqual(parseLokiProtobuf(PROMTAIL_PUSH, "p", 5), parseLokiPush(asJSON, "p", 5))

    def test_noTimestamp(self) -> None:
        """An entry without a timestamp takes the receive time."""
        [record] = parseLokiProtobuf(pushRequest(("{}", [field(2, b"x")])), "p", 5)
        self.assertEqual((record.ts, record.message, record.fields), (5, "x", None))

    def test_labels(self) -> None:
        """Label sets parse with spaces, a trailing comma, dots and escapes; malformed ones are refused."""
        self.assertEqual(parseLabels('{ a = "1" ,b="2",}'), {"a": "1", "b": "2"})
        self.assertEqual(parseLabels("{}"), {})
        self.assertEqual(parseLabels('{k.x="\\n\\"\\\\"}'), {"k.x": '\n"\\'})
        for bad in ("", "a=1", '{a="1"', '{a=1}', '{a="1" b="2"}', '{1a="x"}', '{a="\\"}'):
            self.assertRaises(RecordError, parseLabels, bad)

    def test_hostile(self) -> None:
        """
        Truncated and garbage bytes are a RecordError; bad labels and an
        out-of-range time a DocumentError naming the stream and entry.
        """
        for bad in (PROMTAIL_PUSH[:-3], b"\xff" * 20, b"\x0a\xff\xff\xff\xff\x0f"):
            self.assertRaises(RecordError, parseLokiProtobuf, bad, "p", 5)
        error = self.assertRaises(DocumentError, parseLokiProtobuf, pushRequest(("{a=b}", [entry(1, 0, "x")])), "p", 5)
        self.assertIn("streams[0]", str(error))
        far = pushRequest(("{}", [entry(1795000000, 0, "ok")]), ("{}", [entry(1795000000, 0, "ok"), entry(10**12, 0, "far")]))
        error = self.assertRaises(DocumentError, parseLokiProtobuf, far, "p", 5)
        self.assertIn("streams[1].entries[1]", str(error))
        self.assertEqual(error.index, 2)


class LokiProtobufFuzzTests(SynchronousTestCase):
    """
    Whatever the bytes or the label text, the protobuf push parser returns
    records or raises RecordError.
    """

    @settings(max_examples=150, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda position, byte, cut: (PROMTAIL_PUSH[:position] + bytes([byte]) + PROMTAIL_PUSH[position + 1 :])[:cut],
                st.integers(0, len(PROMTAIL_PUSH) - 1),
                st.integers(0, 255),
                st.integers(1, len(PROMTAIL_PUSH)),
            ),
            st.text(max_size=60).map(lambda labels: pushRequest((labels, [entry(1795000000, 0, "x")]))),
        )
    )
    def test_push(self, data: bytes) -> None:
        """Random, mutated and random-label pushes give records or a RecordError."""
        try:
            records = parseLokiProtobuf(data, "p", 5)
        except RecordError:
            return
        for record in records:
            self.assertIn(record.level, range(8))
            self.assertIsInstance(record.message, str)
