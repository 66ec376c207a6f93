"""Tests for C{POST /loki/api/v1/push} (L{logsvc.web.loki}, L{logsvc.formats.loki})."""

from __future__ import annotations

import gzip

import cramjam
import orjson

from tests.shippers import ShipperTestCase
from tests.test_extras import withoutModule
from tests.test_formats_loki import PROMTAIL_PUSH, entry, pushRequest

JSON = {"content-type": "application/json"}
PROTOBUF = {"content-type": "application/x-protobuf"}


def push(*streams: dict) -> bytes:
    return orjson.dumps({"streams": list(streams)})


class LokiPushTests(ShipperTestCase):
    """
    The Loki push API, JSON flavour.
    """

    def test_labelsMapped(self) -> None:
        """
        service/source/level labels map to the record, the rest and the
        structured metadata to fields; the answer is 204.
        """
        body = push(
            {
                "stream": {"service_name": "api", "job": "j", "host": "web1", "level": "warn", "env": "prod"},
                "values": [
                    ["1795000000123456789", "first"],
                    ["1795000001000000000", "second", {"trace_id": "abc"}],
                ],
            }
        )
        code, raw, _ = self.request("POST", "/loki/api/v1/push", body, JSON)
        self.assertEqual((code, raw), (204, b""))
        rows = self.rows()
        self.assertEqual(
            [(r["ts"], r["level"], r["source"], r["service"], r["message"]) for r in rows],
            [(1795000000123456, 4, "web1", "api", "first"), (1795000001000000, 4, "web1", "api", "second")],
        )
        self.assertEqual(rows[0]["fields"], {"job": "j", "env": "prod"})
        self.assertEqual(rows[1]["fields"], {"job": "j", "env": "prod", "trace_id": "abc"})

    def test_fallbackLabels(self) -> None:
        """
        job names the service and instance the source when nothing better is
        there; no level label means info; an unknown level stays in fields.
        """
        body = push(
            {"stream": {"job": "varlogs", "instance": "10.0.0.1:9100"}, "values": [["1795000000000000000", "a"]]},
            {"stream": {"app": "x", "detected_level": "bogus"}, "values": [["1795000000000000000", "b"]]},
        )
        self.assertEqual(self.request("POST", "/loki/api/v1/push", body, JSON)[0], 204)
        first, second = self.rows()
        self.assertEqual((first["service"], first["source"], first["level"]), ("varlogs", "10.0.0.1:9100", 6))
        self.assertEqual((second["service"], second["source"], second["level"]), ("x", "127.0.0.1", 6))
        self.assertEqual(second["fields"], {"detected_level": "bogus"})

    def test_gzip(self) -> None:
        """
        A gzip push body is taken.
        """
        body = gzip.compress(push({"stream": {}, "values": [["1795000000000000000", "z"]]}))
        code, _, _ = self.request(
            "POST", "/loki/api/v1/push", body, {**JSON, "content-encoding": "gzip"}
        )
        self.assertEqual(code, 204)
        self.assertEqual(self.rows()[0]["message"], "z")

    def test_badEntry(self) -> None:
        """
        A bad entry is a 400 naming it, and nothing of the push is stored.
        """
        body = push({"stream": {}, "values": [["1795000000000000000", "ok"], ["yesterday", "bad"]]})
        code, error, _ = self.request("POST", "/loki/api/v1/push", body, JSON)
        self.assertEqual(code, 400)
        self.assertIn("streams[0].values[1]", error["error"])
        self.assertEqual(error["index"], 1)
        self.assertEqual(self.rows(), [])

    def test_notAPush(self) -> None:
        """
        A body without streams is a 400.
        """
        code, error, _ = self.request("POST", "/loki/api/v1/push", b"{}", JSON)
        self.assertEqual(code, 400)
        self.assertIn("streams", error["error"])

    def test_protobufPush(self) -> None:
        """
        A snappy-compressed protobuf push (Promtail's default) is stored as
        its JSON equivalent would be and answered 204.
        """
        body = bytes(cramjam.snappy.compress_raw(PROMTAIL_PUSH))
        code, raw, _ = self.request("POST", "/loki/api/v1/push", body, PROTOBUF)
        self.assertEqual((code, raw), (204, b""))
        self.assertEqual(
            [(r["level"], r["source"], r["service"], r["message"]) for r in self.rows()],
            [(4, "web1", "varlogs", "first"), (4, "web1", "varlogs", "second"), (6, "127.0.0.1", "api", "third")],
        )
        self.assertIn(b'logsvc_records_accepted_total{transport="loki"} 3.0', self.service.metrics.render())

    def test_protobufRefusals(self) -> None:
        """
        A snappy block declaring more than max-body is a 413 before it is
        inflated; corrupt snappy, a body that is no PushRequest or bad labels
        a 400; another content type a 415; nothing is stored.
        """
        maxBody = self.service.root.children[b"loki"].children[b"api"].children[b"v1"].children[b"push"].maxBody
        bomb = bytes(cramjam.snappy.compress_raw(b"\x00" * (maxBody + 1)))
        # A snappy block starts with a varint of its decoded size: this one
        # declares 2 GiB and holds one byte.
        liar = b"\x80\x80\x80\x80\x08\x00a"
        for body in (bomb, liar):
            code, error, _ = self.request("POST", "/loki/api/v1/push", body, PROTOBUF)
            self.assertEqual(code, 413)
            self.assertIn("max-body", error["error"])
        code, error, _ = self.request("POST", "/loki/api/v1/push", b"\x05\xff\xff", PROTOBUF)
        self.assertEqual(code, 400)
        self.assertIn("snappy", error["error"])
        code, error, _ = self.request("POST", "/loki/api/v1/push", bytes(cramjam.snappy.compress_raw(b"\xff" * 9)), PROTOBUF)
        self.assertEqual(code, 400)
        self.assertIn("protobuf", error["error"])
        badLabels = bytes(cramjam.snappy.compress_raw(pushRequest(("{a=b}", [entry(1795000000, 0, "x")]))))
        code, error, _ = self.request("POST", "/loki/api/v1/push", badLabels, PROTOBUF)
        self.assertEqual((code, error["index"]), (400, 0))
        self.assertIn("labels", error["error"])
        code, error, _ = self.request("POST", "/loki/api/v1/push", b"x", {"content-type": "text/plain"})
        self.assertEqual(code, 415)
        self.assertEqual(self.rows(), [])

    def test_unknownPath(self) -> None:
        """
        Other paths under /loki are JSON 404s.
        """
        self.assertEqual(self.request("POST", "/loki/api/v1/nope", b"{}", JSON)[0], 404)


class LokiWithoutExtraTests(ShipperTestCase):
    """
    Without the extra C{logsvc[loki]}, a protobuf push is a 501 naming the
    command that installs it; JSON pushes still work.
    """

    def test_withoutCramjam(self) -> None:
        """Without cramjam: 501, nothing stored."""
        withoutModule(self, "cramjam")
        body = bytes(cramjam.snappy.compress_raw(PROMTAIL_PUSH))
        code, error, _ = self.request("POST", "/loki/api/v1/push", body, PROTOBUF)
        self.assertEqual(code, 501)
        self.assertIn("pip install 'logsvc[loki]'", error["error"])
        self.assertEqual(self.rows(), [])

    def test_withoutProtobuf(self) -> None:
        """Without the protobuf runtime: 501; a JSON push is stored."""
        withoutModule(self, "google.protobuf.message")
        body = bytes(cramjam.snappy.compress_raw(PROMTAIL_PUSH))
        code, error, _ = self.request("POST", "/loki/api/v1/push", body, PROTOBUF)
        self.assertEqual(code, 501)
        self.assertIn("Loki protobuf needs the extra logsvc[loki]", error["error"])
        json = push({"stream": {"job": "j"}, "values": [["1795000000000000000", "a"]]})
        self.assertEqual(self.request("POST", "/loki/api/v1/push", json, JSON)[0], 204)
        self.assertEqual([r["message"] for r in self.rows()], ["a"])
