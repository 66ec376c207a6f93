"""Tests for C{POST /gelf} (L{logsvc.web.gelf}, L{logsvc.formats.gelf})."""

from __future__ import annotations

import gzip
import zlib

import orjson

from logsvc.formats.gelf import gelfRecord
from tests.shippers import ShipperTestCase

MESSAGE = {
    "version": "1.1",
    "host": "example.org",
    "short_message": "A short message",
    "full_message": "Backtrace here\n\nmore stuff",
    "timestamp": 1795000000.307,
    "level": 3,
    "_user_id": 9001,
    "_service": "billing",
    "line": 356,
}


class GelfMappingTests(ShipperTestCase):
    """
    L{gelfRecord} maps GELF 1.1 fields to the record.
    """

    def test_specExample(self) -> None:
        """
        short_message, full_message, level, host, timestamp and _extras map.
        """
        record = gelfRecord(dict(MESSAGE), "p", 5)
        self.assertEqual(
            record[:6], (1795000000307000, 5, 3, "example.org", "billing", "A short message")
        )
        self.assertEqual(
            orjson.loads(record.fields or "{}"),
            {"full_message": "Backtrace here\n\nmore stuff", "user_id": 9001, "line": 356},
        )

    def test_defaults(self) -> None:
        """
        Without level, host and timestamp: info, the peer, receive time.
        """
        record = gelfRecord({"short_message": "x"}, "p", 5)
        self.assertEqual(record[:7], (5, 5, 6, "p", "", "x", None))


class GelfHTTPTests(ShipperTestCase):
    """
    The GELF HTTP endpoint.
    """

    def test_plainGzipZlib(self) -> None:
        """
        Plain, gzip and zlib bodies (with or without Content-Encoding) are
        stored and answered 202.
        """
        data = orjson.dumps(MESSAGE)
        for body, headers in (
            (data, {}),
            (gzip.compress(data), {}),
            (zlib.compress(data), {}),
            (gzip.compress(data), {"content-encoding": "gzip"}),
        ):
            self.assertEqual(self.request("POST", "/gelf", body, headers)[:2], (202, b""))
        self.assertEqual([r["message"] for r in self.rows()], ["A short message"] * 4)

    def test_mislabeledEncoding(self) -> None:
        """
        One zlib layer labelled C{gzip,deflate} (as graypy sends it) is taken.
        """
        body = zlib.compress(orjson.dumps(MESSAGE))
        code, _, _ = self.request("POST", "/gelf", body, {"content-encoding": "gzip,deflate"})
        self.assertEqual(code, 202)
        self.assertEqual(self.rows()[0]["message"], "A short message")

    def test_missingMessage(self) -> None:
        """
        A message without short_message is a 400 naming it.
        """
        code, body, _ = self.request("POST", "/gelf", b'{"host": "h"}')
        self.assertEqual(code, 400)
        self.assertIn("short_message", body["error"])

    def test_bomb(self) -> None:
        """
        A compressed body that inflates past max-body is a 413.
        """
        self.assertEqual(self.request("POST", "/gelf", gzip.compress(b" " * (11 * 1024 * 1024)))[0], 413)
