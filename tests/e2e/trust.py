"""
Helpers for the issue-5 end-to-end tests: a twistd server with an
acknowledged TCP port, optional TLS and resource limits; a self-signed
certificate; blocking acked-TCP and HTTP senders that keep exact books of
what was sent and acknowledged.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import Counter
from typing import Any

from tests.e2e.server import TwistdServer
from tests.ports import freePort


def makeCertificate(directory: str) -> tuple[str, str]:
    """
    Write a self-signed certificate for C{localhost} / 127.0.0.1 and its key.

    @return: (key file, certificate file), both PEM.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyPath = os.path.join(directory, "key.pem")
    certPath = os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(certPath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


class TrustServer(TwistdServer):
    """
    A L{TwistdServer} that also listens for acknowledged TCP, can run every
    listener over TLS, and can start under a low open-file limit.

    @ivar ackedPort: the C{--tcp-acked} port.
    """

    def __init__(
        self,
        directory: str,
        *extra: str,
        tls: tuple[str, str] | None = None,
        fileLimit: int | None = None,
    ) -> None:
        super().__init__(directory, *extra)
        self.ackedPort = freePort()
        self.tls = tls
        self.fileLimit = fileLimit

    def endpoint(self, port: int) -> str:
        if self.tls is not None:
            key, cert = self.tls
            return f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1:backlog=1024"
        # A deep accept queue: thousands of connects arrive in a burst.
        return f"tcp:{port}:interface=127.0.0.1:backlog=1024"

    @property
    def httpURL(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self.httpPort}"

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--tcp") + 1] = self.endpoint(self.tcpPort)
        command[command.index("--http") + 1] = self.endpoint(self.httpPort)
        return [*command, "--tcp-acked", self.endpoint(self.ackedPort)]

    def sslContext(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        return ssl.create_default_context(cafile=self.tls[1])

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        """
        @return: a new HTTP(S) connection to the server.
        """
        if self.tls is not None:
            return http.client.HTTPSConnection(
                "localhost", self.httpPort, timeout=timeout, context=self.sslContext()
            )
        return http.client.HTTPConnection("127.0.0.1", self.httpPort, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """
        One blocking HTTP request.

        @return: (status, headers lower-cased, body).
        """
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def listeningPorts(self) -> list[int]:
        return [*super().listeningPorts(), self.ackedPort]

    def healthy(self) -> bool:
        status, _, _ = self.request("GET", "/health")
        return status == 200


class AckedTCPClient:
    """
    A blocking acknowledged-TCP sender with exact books, for crash tests.
    Each record is the plain-text line C{"<prefix>:<n>"}.  Lines not
    acknowledged when a connection ends are resent first on the next one.

    @ivar sends: id -> how many times its line was written to a connection.
    @ivar acked: ids the server acknowledged.
    """

    def __init__(self, prefix: str, *, chunk: int = 200, window: int = 5000, padding: int = 0) -> None:
        """
        @param padding: bytes of filler after each id (the stored message is
            then not the bare id).
        """
        self.prefix = prefix
        self.padding = b" " + b"x" * padding if padding else b""
        self.chunk = chunk
        self.window = window
        self.sends: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.unacked: list[str] = []
        self.finalAcks: list[int] = []
        self.connectionIds: list[list[str]] = []
        self._next = 0

    def _newIds(self) -> list[str]:
        ids = [f"{self.prefix}:{n}" for n in range(self._next, self._next + self.chunk)]
        self._next += self.chunk
        return ids

    def run(self, port: int, stop: threading.Event, *, sslContext: ssl.SSLContext | None = None) -> None:
        """
        Send until C{stop} is set or the connection ends; then book acks.
        """
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return
        sock: Any = raw
        if sslContext is not None:
            sock = sslContext.wrap_socket(raw, server_hostname="localhost")
        sent: list[str] = []
        self.connectionIds.append(sent)
        acked = 0
        pending = b""
        resend, self.unacked = self.unacked, []
        def takeAcks(data: bytes) -> None:
            nonlocal pending, acked
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"OK "):
                    acked = max(acked, int(line[3:]))

        try:
            try:
                while not stop.is_set():
                    if len(sent) - acked < self.window:
                        ids = resend or self._newIds()
                        resend = []
                        for i in ids:
                            self.sends[i] += 1
                        sent.extend(ids)
                        # A send that stalls (the server stopped reading)
                        # times out and ends the sending phase.
                        sock.settimeout(1)
                        sock.sendall(b"".join(i.encode() + self.padding + b"\n" for i in ids))
                    sock.settimeout(0.001 if len(sent) - acked < self.window else 0.2)
                    try:
                        data = sock.recv(65536)
                    except (TimeoutError, ssl.SSLWantReadError):
                        continue
                    if data == b"":
                        break
                    takeAcks(data)
            except OSError:
                pass
            # Collect the acks still on their way, until the server closes.
            sock.settimeout(3)
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                takeAcks(data)
        except OSError:
            pass
        finally:
            sock.close()
        self.finalAcks.append(acked)
        self.acked.update(sent[:acked])
        self.unacked = sent[acked:] + resend


class HTTPBatchClient:
    """
    A blocking HTTP sender of NDJSON batches with exact books: a batch is
    acknowledged by its 201; a batch without an answer is resent first next
    time.  Records are C{{"message": "<prefix>:<n>"}}.
    """

    def __init__(self, prefix: str, *, batch: int = 100) -> None:
        self.prefix = prefix
        self.batch = batch
        self.sends: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.unacked: list[list[str]] = []
        self._next = 0

    def run(self, server: TrustServer, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.unacked:
                ids = self.unacked.pop(0)
            else:
                ids = [f"{self.prefix}:{n}" for n in range(self._next, self._next + self.batch)]
                self._next += self.batch
            for i in ids:
                self.sends[i] += 1
            body = b"".join(b'{"message": "%s"}\n' % i.encode() for i in ids)
            try:
                status, _, _ = server.request(
                    "POST", "/logs", body, {"content-type": "application/x-ndjson"}
                )
            except OSError:
                self.unacked.insert(0, ids)
                return
            if status == 201:
                self.acked.update(ids)
            else:
                self.unacked.insert(0, ids)
                time.sleep(0.05)
