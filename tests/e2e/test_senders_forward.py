"""
End to end with the C{fluent-logger} package (Fluentd's Python sender,
unchanged) against a real C{twistd -n logsvc --forward}, and Fluent Bit's
PackedForward with acks over a plain socket (Fluent Bit is not packaged for
this machine: its frames are built as its forward output writes them).
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any

import msgpack
from twisted.trial.unittest import TestCase

from logsvc.formats.forward import EventTime, packEventTime
from logsvc.ingest.forward import sharedKeyDigest
from tests.e2e.server import TwistdServer, startWithTokens
from tests.e2e.test_senders import storedRows
from tests.ports import freePort


class ForwardServerTestCase(TestCase):
    def setUp(self) -> None:
        self.forwardPort = freePort()
        self.server = TwistdServer(self.mktemp(), "--forward", f"tcp:{self.forwardPort}:interface=127.0.0.1")
        self.server.start()
        self.addCleanup(self.server.kill)


class FluentLoggerTests(ForwardServerTestCase):
    def test_sender(self) -> None:
        """fluent-logger's FluentSender (Message mode, integer and EventTime times) maps tag, message, level, fields."""
        from fluent import sender

        plain = sender.FluentSender("app", host="127.0.0.1", port=self.forwardPort)
        precise = sender.FluentSender("svc", host="127.0.0.1", port=self.forwardPort, nanosecond_precision=True)
        self.addCleanup(plain.close)
        self.addCleanup(precise.close)
        self.assertTrue(plain.emit("web", {"message": "hello", "level": "warning", "user": "bob"}))
        self.assertTrue(precise.emit_with_time("jobs", 1767323045.25, {"log": "job done", "service": "worker"}))
        rows = storedRows(self.server, 2)
        self.assertEqual(
            [(r["service"], r["message"], r["level"], r["source"]) for r in rows],
            [("app.web", "hello", 4, "127.0.0.1"), ("worker", "job done", 6, "127.0.0.1")],
        )
        self.assertEqual(rows[0]["fields"], {"user": "bob", "tag": "app.web"})
        self.assertEqual(rows[1]["fields"], {"tag": "svc.jobs"})
        self.assertEqual(rows[1]["ts"], 1767323045250000)
        self.assertLess(abs(rows[0]["ts"] - time.time() * 1_000_000), 600 * 1_000_000)


class UDPHeartbeatTests(ForwardServerTestCase):
    def test_heartbeat(self) -> None:
        """
        Fluentd's UDP heartbeat (one NUL byte to the forward port's number
        over UDP) is answered with one NUL byte from that port.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            answer = None
            # UDP: a datagram may be lost on a loaded machine; Fluentd too
            # sends one per heartbeat interval.
            for _ in range(6):
                s.sendto(b"\0", ("127.0.0.1", self.forwardPort))
                try:
                    answer = s.recvfrom(128)
                    break
                except TimeoutError:
                    continue
        self.assertEqual(answer, (b"\0", ("127.0.0.1", self.forwardPort)))


class PackedForwardTests(ForwardServerTestCase):
    def test_packedWithAck(self) -> None:
        """A PackedForward chunk with require_ack (Fluent Bit's frame) is acked with its chunk id once stored."""
        entries = b"".join(
            msgpack.packb([EventTime(1767323045, n * 1000), {"log": f"line {n}"}], default=packEventTime)
            for n in range(100)
        )
        frame = msgpack.packb(["kube.app", entries, {"size": 100, "chunk": "Zmx1ZW50Yml0"}], use_bin_type=True)
        with socket.create_connection(("127.0.0.1", self.forwardPort), timeout=30) as s:
            s.sendall(frame)
            stream = msgpack.Unpacker(raw=False)
            while True:
                data = s.recv(4096)
                self.assertTrue(data, "connection closed without an ack")
                stream.feed(data)
                answers = list(stream)
                if answers:
                    break
        self.assertEqual(answers, [{"ack": "Zmx1ZW50Yml0"}])
        rows = storedRows(self.server, 100)
        self.assertEqual([r["message"] for r in rows], [f"line {n}" for n in range(100)])


def readValues(sock: socket.socket, count: int) -> list[Any]:
    """
    @return: the next C{count} msgpack values the server writes on C{sock}.
    """
    stream = msgpack.Unpacker(raw=False)
    values: list[Any] = []
    while len(values) < count:
        data = sock.recv(4096)
        if not data:
            raise AssertionError(f"connection closed after {values!r}")
        stream.feed(data)
        values.extend(stream)
    return values


class HandshakeTLSTests(TestCase):
    def test_sharedKeyOverTLS(self) -> None:
        """Over an ssl: endpoint with --token-file, HELO/PING/PONG with an ingest token as shared key, then events."""
        import twisted.test

        pem = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")
        port = freePort()
        server, _ = startWithTokens(
            self, TwistdServer, "ingest fwd-key\n",
            "--forward", f"ssl:{port}:privateKey={pem}:interface=127.0.0.1",
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30)) as s:
            ((helo, options),) = readValues(s, 1)
            self.assertEqual(helo, "HELO")
            nonce = options["nonce"]
            digest = sharedKeyDigest(b"salt", b"client", nonce, b"fwd-key")
            s.sendall(msgpack.packb(["PING", "client", b"salt", digest, "", ""], use_bin_type=True))
            ((pong, ok, _, host, serverDigest),) = readValues(s, 1)
            self.assertEqual((pong, ok), ("PONG", True))
            self.assertEqual(serverDigest, sharedKeyDigest(b"salt", host.encode(), nonce, b"fwd-key"))
            s.sendall(msgpack.packb(["secure", 1767323045, {"log": "over tls"}, {"chunk": "dGxz"}]))
            self.assertEqual(readValues(s, 1), [{"ack": "dGxz"}])
        self.assertEqual([(r["service"], r["message"]) for r in storedRows(server, 1)], [("secure", "over tls")])
