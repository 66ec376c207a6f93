"""
Tests for L{logsvc.web.body}: Content-Encoding on POST bodies, the decoded
size cap, and Python HTTPHandler forms on C{POST /logs}.
"""

from __future__ import annotations

import gzip
import zlib
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.compression import sniffCompression
from logsvc.web.body import BodyError, decompress
from tests.shippers import ShipperTestCase

NDJSON = b'{"message": "one"}\n{"message": "two"}\n'


class DecompressTests(SynchronousTestCase):
    """
    L{decompress} decodes incrementally and stops at the limit.
    """

    def test_bomb(self) -> None:
        """
        A gzip bomb is refused with 413 once the limit is passed.
        """
        bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))
        error = self.assertRaises(BodyError, decompress, bomb, "gzip", 1024 * 1024)
        self.assertEqual(error.code, 413)

    def test_exactLimit(self) -> None:
        """
        A body exactly at the limit is taken.
        """
        self.assertEqual(decompress(gzip.compress(b"x" * 1000), "gzip", 1000), b"x" * 1000)

    def test_membersAndFormats(self) -> None:
        """
        Concatenated gzip members, zlib and raw deflate all decode.
        """
        self.assertEqual(decompress(gzip.compress(b"a") + gzip.compress(b"b"), "gzip", 10), b"ab")
        self.assertEqual(decompress(zlib.compress(b"abc"), "zlib", 10), b"abc")
        raw = zlib.compressobj(wbits=-15)
        self.assertEqual(decompress(raw.compress(b"abc") + raw.flush(), "raw", 10), b"abc")

    def test_corruptAndTruncated(self) -> None:
        """
        Corrupt or truncated data is a 400.
        """
        self.assertEqual(self.assertRaises(BodyError, decompress, b"nope", "gzip", 10).code, 400)
        cut = gzip.compress(b"x" * 1000)[:-10]
        self.assertEqual(self.assertRaises(BodyError, decompress, cut, "gzip", 10_000).code, 400)

    def test_sniff(self) -> None:
        """
        gzip and zlib are recognized by their magic bytes, JSON is not.
        """
        self.assertEqual(
            [sniffCompression(d) for d in (gzip.compress(b"{}"), zlib.compress(b"{}"), b"{}")],
            ["gzip", "zlib", None],
        )


class EncodedLogsTests(ShipperTestCase):
    """
    C{POST /logs} with C{Content-Encoding}.
    """

    def test_gzip(self) -> None:
        """
        A gzip NDJSON body is stored.
        """
        code, body, _ = self.request(
            "POST",
            "/logs",
            gzip.compress(NDJSON),
            {"content-type": "application/x-ndjson", "content-encoding": "gzip"},
        )
        self.assertEqual((code, body), (201, {"accepted": 2}))
        self.assertEqual([r["message"] for r in self.rows()], ["one", "two"])

    def test_deflate(self) -> None:
        """
        A deflate (zlib-wrapped, or raw as some clients send) body is stored.
        """
        raw = zlib.compressobj(wbits=-15)
        for data in (zlib.compress(NDJSON), raw.compress(NDJSON) + raw.flush()):
            code, _, _ = self.request(
                "POST", "/logs", data, {"content-type": "application/x-ndjson", "content-encoding": "deflate"}
            )
            self.assertEqual(code, 201)
        self.assertEqual(len(self.rows()), 4)

    def test_bombRefused(self) -> None:
        """
        A gzip body that inflates past max-body is a 413 and nothing is stored.
        """
        bomb = gzip.compress(b"\n" * (11 * 1024 * 1024))
        code, body, _ = self.request(
            "POST", "/logs", bomb, {"content-type": "text/plain", "content-encoding": "gzip"}
        )
        self.assertEqual(code, 413)
        self.assertIn("max-body", body["error"])
        self.assertEqual(self.rows(), [])

    def test_unknownEncoding(self) -> None:
        """
        An unknown encoding is a 415 naming the ones taken.
        """
        code, body, _ = self.request("POST", "/logs", b"x", {"content-encoding": "br"})
        self.assertEqual(code, 415)
        self.assertIn("gzip", body["error"])

    def test_corruptGzip(self) -> None:
        """
        A corrupt gzip body is a 400.
        """
        code, body, _ = self.request("POST", "/logs", b"\x1f\x8bgarbage", {"content-encoding": "gzip"})
        self.assertEqual(code, 400)
        self.assertIn("gzip", body["error"])


class PythonFormTests(ShipperTestCase):
    """
    C{POST /logs} with the form Python's HTTPHandler sends.
    """

    def test_logRecordForm(self) -> None:
        """
        A LogRecord's attributes map to message, level, service, ts and fields.
        """
        import logging

        record = logging.LogRecord("app.db", logging.WARNING, "/src/db.py", 42, "slow %s: %d ms", ("query", 1500), None)
        record.created = 1795000000.25
        form = urlencode(record.__dict__).encode()
        code, _, _ = self.request(
            "POST", "/logs", form, {"content-type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(code, 201)
        [row] = self.rows()
        self.assertEqual(
            (row["ts"], row["level"], row["service"], row["message"]),
            (1795000000250000, 4, "app.db", "slow query: 1500 ms"),
        )
        self.assertEqual(row["fields"]["lineno"], 42)
        self.assertEqual(row["fields"]["pathname"], "/src/db.py")
        self.assertNotIn("exc_info", row["fields"])
        self.assertNotIn("msg", row["fields"])

    def test_notALogRecord(self) -> None:
        """
        A form without msg or message is a 400 saying what was expected.
        """
        code, body, _ = self.request(
            "POST", "/logs", b"a=1", {"content-type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(code, 400)
        self.assertIn("HTTPHandler", body["error"])
