"""
Senders benchmark: syslog and Elasticsearch bulk ingest next to plain lines.

Each measurement starts a fresh ``twistd -n logsvc`` on free loopback ports
(so no run pays for the store another one filled) and counts records back from
the store, so loss shows.  Prints records/s for:

- plain lines over TCP (the spine's baseline, measured here in the same run);
- RFC 5424 syslog over TCP, non-transparent framing (LF), 4 connections;
- RFC 5424 syslog over TCP, octet counting (``LEN SP MSG``), 4 connections;
- RFC 3164 syslog over TCP, LF framing (rsyslog's traditional forward format);
- ``POST /logs`` NDJSON (the spine's HTTP path; 1,000 flat documents per request,
  8 keep-alive clients) and ``POST /_bulk`` (the same documents in ECS shape, with
  ``create`` actions, 1,000 per request, 8 clients);

- ``POST /v1/logs`` OTLP protobuf (1,000 log records per request under 8
  resources, as an SDK batches them, 8 clients) and ``POST /loki/api/v1/push``
  Loki protobuf (snappy, 1,000 entries per request in streams by service, host
  and level, as Promtail batches them, 8 clients);

- UDP (``--udp``): RFC 5424 and RFC 3164 syslog, one datagram each; GELF,
  zlib-compressed in one datagram each (graypy's default); GELF in chunks
  (messages of about 12 KB, zlib-compressed into 5 chunks of at most 1,420
  bytes, graypy's chunk size), also as bytes/s against plain lines' bytes/s.  The sender keeps the
  server socket's receive queue under 6 MiB (reading ``/proc/net/udp``), so
  the kernel's buffer never overflows and the rate is the server's; it sends
  1,024 datagrams a ``sendmmsg`` call, as the TCP sender writes many lines
  a call, so it takes less of the 2 cores from the server;
- Fluent forward (``--forward``): PackedForward messages of 1,000 entries
  (EventTime, ``log`` and two more keys), as Fluent Bit sends them, 4
  connections;

and each as a ratio of the plain-line rate, with the server's CPU time per
record (all its threads, and its reactor thread alone), and ``_bulk``
against NDJSON.

Then, for UDP: the highest rate (datagrams/s, paced by the sender) at which
nothing is lost over 10 s, for RFC 5424 datagrams and for plain-text ones,
trying 5,000/s and up until a datagram is lost; the kernel's count of drops
and the receive buffer the kernel granted (``SO_RCVBUF``), read from
``/metrics``.

Usage: python bench/bench_senders.py [--records 500000] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable

import msgpack
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import BenchServer, sendTCP, timedPosts, timedTCPIngest  # noqa: E402
from logsvc import speedups  # noqa: E402
from tests.ports import (
    freePort,  # noqa: E402
    freeUDPPort,  # noqa: E402
)

SERVICES = ["api", "web", "db", "auth", "billing", "search", "queue", "mailer"]
HOSTS = [f"node-{n:02d}" for n in range(12)]
PATHS = ["/api/v1/items", "/api/v1/users", "/login", "/checkout", "/search"]


class Server(BenchServer):
    """
    A fresh ``twistd -n logsvc`` in its own directory.
    """


#: A measured run: records/s (wall clock), and the server's CPU time per
#: record in microseconds (which a loaded machine changes much less), all
#: threads and the reactor thread's alone.
Rate = tuple[float, float, float]


class CPUMeter:
    """
    The server's CPU time per record over a run: all its threads, and its
    reactor thread alone.
    """

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.total = server.cpuSeconds()
        self.reactor = server.reactorCpuSeconds()

    def perRecord(self, records: int) -> tuple[float, float]:
        """
        @return: microseconds per record since made: all threads, reactor.
        """
        total = (self.server.cpuSeconds() - self.total) * 1e6 / records
        return total, (self.server.reactorCpuSeconds() - self.reactor) * 1e6 / records


def plainLine(rng: random.Random, i: int) -> bytes:
    return (
        f"{rng.choice(SERVICES)} GET {rng.choice(PATHS)}?page={rng.randint(1, 50)} "
        f"from 10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)} took {rng.randint(1, 900)} ms"
    ).encode()


# Stamps advance one second per STAMP_RATE messages, as a busy sender's do.
STAMP_RATE = 2000


def rfc5424(rng: random.Random, i: int) -> bytes:
    pri = 8 * rng.choice((1, 3, 16, 23)) + rng.choice((3, 4, 6, 6, 6, 7))
    sd = f'[req@32473 id="{i}" path="{rng.choice(PATHS)}"]' if i % 2 else "-"
    second = i // STAMP_RATE
    return (
        f"<{pri}>1 2026-11-22T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        f".{i % STAMP_RATE * 400:06d}+01:00 "
        f"{rng.choice(HOSTS)} {rng.choice(SERVICES)} {rng.randint(100, 9999)} ID{i % 50} {sd} "
        f"GET {rng.choice(PATHS)} answered {rng.choice((200, 201, 404, 500))} in {rng.randint(1, 900)} ms"
    ).encode()


def rfc3164(rng: random.Random, i: int) -> bytes:
    pri = 8 * rng.choice((1, 3, 16)) + rng.choice((3, 4, 6, 6, 7))
    second = i // STAMP_RATE
    return (
        f"<{pri}>Nov 22 {10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} "
        f"{rng.choice(HOSTS)} {rng.choice(SERVICES)}[{rng.randint(100, 9999)}]: "
        f"GET {rng.choice(PATHS)} answered {rng.choice((200, 404))} in {rng.randint(1, 900)} ms"
    ).encode()


def makeMessages(make: Callable[[random.Random, int], bytes], count: int) -> list[bytes]:
    rng = random.Random(count)
    return [make(rng, i) for i in range(count)]


def lineFramed(messages: list[bytes]) -> list[bytes]:
    return [b"\n".join(messages[i : i + 2000]) + b"\n" for i in range(0, len(messages), 2000)]


def octetCounted(messages: list[bytes]) -> list[bytes]:
    return [
        b"".join(b"%d %s" % (len(m), m) for m in messages[i : i + 2000])
        for i in range(0, len(messages), 2000)
    ]


def tcpRate(messages: list[bytes], frame: Callable[[list[bytes]], list[bytes]], connections: int = 4) -> Rate:
    """
    @return: records/s from the first byte sent until the store holds them
        all, and the server's CPU microseconds per record.
    """
    server = Server()
    try:
        payloads = [frame(messages[i::connections]) for i in range(connections)]
        cpu = CPUMeter(server)
        rate = timedTCPIngest(server, payloads, len(messages))
        return rate, *cpu.perRecord(len(messages))
    finally:
        server.stop()


def _documents(count: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    return [
        {
            "@timestamp": f"2026-11-22T10:00:{i % 60:02d}.{i % 1000:03d}Z",
            "message": plainLine(rng, i).decode(),
            "level": rng.choice(("info", "info", "warn", "error")),
            "host": rng.choice(HOSTS),
            "service": rng.choice(SERVICES),
            "user_id": rng.randint(1, 5000),
        }
        for i in range(count)
    ]


def _ecs(doc: dict[str, object]) -> dict[str, object]:
    """The same document as Beats would write it (ECS objects)."""
    return {
        "@timestamp": doc["@timestamp"],
        "message": doc["message"],
        "log": {"level": doc["level"]},
        "host": {"name": doc["host"]},
        "service": {"name": doc["service"]},
        "user_id": doc["user_id"],
    }


def httpRate(
    path: str,
    bodies: list[bytes],
    count: int,
    ok: Callable[[int, bytes], bool],
    clients: int = 8,
    contentType: str = "application/x-ndjson",
) -> Rate:
    """
    @return: records/s posting C{bodies} to C{path} from C{clients} keep-alive
        clients until every one is answered (and so durable), and the
        server's CPU microseconds per record.
    """
    server = Server()
    try:
        cpu = CPUMeter(server)
        elapsed = timedPosts(server, path, bodies, ok, clients=clients, contentType=contentType)
        stored = server.count()
        if stored != count:
            raise RuntimeError(f"store has {stored} of {count} records")
        return count / elapsed, *cpu.perRecord(count)
    finally:
        server.stop()


def bulkRate(count: int, batch: int = 1000) -> Rate:
    """
    @return: records/s of C{POST /_bulk} (ECS documents, C{create} actions).
    """
    action = b'{"create":{"_index":"logs-app"}}\n'
    docs = [orjson.dumps(_ecs(doc)) + b"\n" for doc in _documents(count)]
    bodies = [b"".join(action + doc for doc in docs[i : i + batch]) for i in range(0, count, batch)]
    return httpRate(
        "/_bulk", bodies, count, lambda status, body: status == 200 and b'"errors":false' in body[:200]
    )


def ndjsonRate(count: int, batch: int = 1000) -> Rate:
    """
    @return: records/s of C{POST /logs} with the same documents as flat NDJSON.
    """
    docs = [orjson.dumps(doc) + b"\n" for doc in _documents(count)]
    bodies = [b"".join(docs[i : i + batch]) for i in range(0, count, batch)]
    return httpRate("/logs", bodies, count, lambda status, body: status == 201)


def otlpBodies(count: int, batch: int = 1000) -> list[bytes]:
    """
    @return: protobuf C{ExportLogsServiceRequest}s of the same documents,
        C{batch} log records each, grouped by resource (service and host).
    """
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    severities = {"info": 9, "warn": 13, "error": 17}
    docs = _documents(count)
    bodies = []
    for start in range(0, count, batch):
        request = ExportLogsServiceRequest()
        byResource: dict[tuple[object, object], object] = {}
        for i, doc in enumerate(docs[start : start + batch], start):
            key = (doc["service"], doc["host"])
            scopeLogs = byResource.get(key)
            if scopeLogs is None:
                resourceLogs = request.resource_logs.add()
                for name, value in (("service.name", doc["service"]), ("host.name", doc["host"])):
                    resourceLogs.resource.attributes.add(key=name, value=AnyValue(string_value=str(value)))
                scopeLogs = byResource[key] = resourceLogs.scope_logs.add()
                scopeLogs.scope.name = "bench"
            log = scopeLogs.log_records.add()  # type: ignore[attr-defined]
            log.time_unix_nano = 1_795_000_000_000_000_000 + i * 1_000_000
            log.severity_number = severities[str(doc["level"])]
            log.body.string_value = str(doc["message"])
            log.attributes.append(KeyValue(key="user_id", value=AnyValue(int_value=int(doc["user_id"]))))  # type: ignore[call-overload]
        bodies.append(request.SerializeToString())
    return bodies


def lokiBodies(count: int, batch: int = 1000) -> list[bytes]:
    """
    @return: snappy-compressed protobuf C{PushRequest}s of the same documents,
        C{batch} entries each, in streams by service, host and level.
    """
    import cramjam

    from logsvc.formats.loki import pushRequestClass

    PushRequest = pushRequestClass()
    docs = _documents(count)
    bodies = []
    for start in range(0, count, batch):
        request = PushRequest()
        streams: dict[str, object] = {}
        for i, doc in enumerate(docs[start : start + batch], start):
            labels = f'{{host="{doc["host"]}", level="{doc["level"]}", service_name="{doc["service"]}"}}'
            stream = streams.get(labels)
            if stream is None:
                stream = streams[labels] = request.streams.add(labels=labels)
            entry = stream.entries.add(line=str(doc["message"]))  # type: ignore[attr-defined]
            entry.timestamp.seconds = 1_795_000_000 + i // 1000
            entry.timestamp.nanos = i % 1000 * 1000
        bodies.append(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
    return bodies


def otlpRate(count: int) -> Rate:
    """
    @return: records/s of C{POST /v1/logs}, OTLP protobuf.
    """
    return httpRate("/v1/logs", otlpBodies(count), count, lambda status, body: status == 200, contentType=PROTOBUF)


def lokiProtobufRate(count: int) -> Rate:
    """
    @return: records/s of C{POST /loki/api/v1/push}, snappy protobuf.
    """
    return httpRate("/loki/api/v1/push", lokiBodies(count), count, lambda status, body: status == 204, contentType=PROTOBUF)


PROTOBUF = "application/x-protobuf"


class UDPServer(Server):
    """
    A fresh logsvc with a UDP listener (and a forward one).
    """

    def __init__(self) -> None:
        self.udpPort = freeUDPPort()
        self.forwardPort = freePort()
        super().__init__(
            "--udp", f"udp:{self.udpPort}:interface=127.0.0.1",
            "--forward", f"tcp:{self.forwardPort}:interface=127.0.0.1",
        )

    def metric(self, name: str) -> float:
        """
        @return: the value of metric C{name} (without labels) in C{/metrics}.
        """
        with urllib.request.urlopen(self.httpURL + "/metrics", timeout=30) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0


def waitStored(server: BenchServer, expected: int, stall: float = 5.0) -> tuple[float, int]:
    """
    Wait until the store holds C{expected} records, or until it held still
    for C{stall} seconds (something was lost).

    @return: C{time.perf_counter()} when the last arrived, and how many are
        stored.
    """
    last, lastChange = -1, time.monotonic()
    while True:
        top = server.lastId()
        now = time.monotonic()
        if top >= expected:
            return time.perf_counter(), server.count()
        if top != last:
            last, lastChange = top, now
        elif now - lastChange > stall:
            return time.perf_counter(), server.count()
        time.sleep(0.02)


def receiveQueue(port: int, tables: tuple[str, ...] = ("/proc/net/udp", "/proc/net/udp6")) -> int:
    """
    @return: the bytes waiting in the receive queue of the UDP socket bound
        to C{port} on this host (its C{rx_queue} in C{/proc/net/udp}: the
        datagrams with the kernel's bookkeeping, as the receive buffer
        counts them), 0 when it is not found.
    """
    local = f":{port:04X}"
    for table in tables:
        with open(table) as lines:
            next(lines, None)
            for line in lines:
                columns = line.split()
                if columns[1].endswith(local):
                    return int(columns[4].split(":")[1], 16)
    return 0


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("length", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("nameLength", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_IOVec)), ("iovLength", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controlLength", ctypes.c_size_t), ("flags", ctypes.c_int),
    ]  # fmt: skip


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("header", _MsgHdr), ("length", ctypes.c_uint)]


class DatagramBatches:
    """
    Datagrams laid out for C{sendmmsg(2)} before the clock starts, C{burst}
    to a system call, so the bench's sender spends about half the CPU per
    datagram that a C{sendto} call each costs (the kernel's work for each
    stays: on loopback, the sender's system call also delivers it).  On the
    bench's 2 cores the sender's CPU is taken from the server's; the TCP
    baseline's sender writes 2,000 lines a call.
    """

    def __init__(self, datagrams: list[bytes], burst: int) -> None:
        self.batches: list[tuple[ctypes.Array[_MMsgHdr], int]] = []
        # The arrays point into these bytes objects: keep them.
        self._keep: list[object] = [datagrams]
        for start in range(0, len(datagrams), burst):
            chunk = datagrams[start : start + burst]
            vectors = (_IOVec * len(chunk))(*[(datagram, len(datagram)) for datagram in chunk])
            headers = (_MMsgHdr * len(chunk))()
            for header, vector in zip(headers, vectors, strict=True):
                header.header.iov = ctypes.pointer(vector)
                header.header.iovLength = 1
            self._keep.append(vectors)
            self.batches.append((headers, len(chunk)))

    def send(self, sock: socket.socket, headers: ctypes.Array[_MMsgHdr], count: int) -> None:
        """
        Send one batch on the connected socket C{sock}.
        """
        offset = 0
        while offset < count:
            sent = _sendmmsg(sock.fileno(), ctypes.byref(headers, offset * ctypes.sizeof(_MMsgHdr)), count - offset, 0)
            if sent < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            offset += sent


_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


def sendWindowed(port: int, batches: DatagramBatches, window: int = 6 * 1024 * 1024) -> None:
    """
    Send the datagrams as fast as the server takes them: after every batch
    (L{DatagramBatches}), wait while the server socket's receive queue
    (L{receiveQueue}) holds more than C{window} bytes, well inside the
    buffer granted, so the kernel drops nothing and the rate is the
    server's.  The datagrams are laid out before the clock starts.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        s.connect(("127.0.0.1", port))
        for headers, count in batches.batches:
            batches.send(s, headers, count)
            while receiveQueue(port) > window:
                time.sleep(0.0005)


def udpRate(messages: list[list[bytes]]) -> tuple[Rate, float]:
    """
    @return: messages/s from the first datagram sent until the store holds
        them all and the server's CPU microseconds per message; datagram
        bytes/s.
    @raise RuntimeError: when some were lost.
    """
    server = UDPServer()
    try:
        count = len(messages)
        size = sum(len(d) for datagrams in messages for d in datagrams)
        batches = DatagramBatches([d for datagrams in messages for d in datagrams], burst=1024)
        sender = threading.Thread(target=sendWindowed, args=(server.udpPort, batches))
        cpu = CPUMeter(server)
        started = time.perf_counter()
        sender.start()
        done, stored = waitStored(server, count)
        sender.join()
        if stored != count:
            raise RuntimeError(f"UDP: store has {stored} of {count} records")
        return (count / (done - started), *cpu.perRecord(count)), size / (done - started)
    finally:
        server.stop()


def gelf(rng: random.Random, i: int, text: str) -> bytes:
    return orjson.dumps(
        {
            "version": "1.1",
            "host": rng.choice(HOSTS),
            "short_message": text,
            "timestamp": 1795000000 + i / 1000,
            "level": rng.choice((3, 4, 6, 6, 7)),
            "_service": rng.choice(SERVICES),
            "_request_id": i,
        }
    )


def gelfMessages(count: int) -> list[list[bytes]]:
    rng = random.Random(count)
    return [[zlib.compress(gelf(rng, i, plainLine(rng, i).decode()))] for i in range(count)]


CHUNK = 1420


def gelfChunks(message: bytes, messageId: bytes) -> list[bytes]:
    size = CHUNK - 12
    pieces = [message[i : i + size] for i in range(0, len(message), size)]
    return [b"\x1e\x0f" + messageId + bytes([n, len(pieces)]) + piece for n, piece in enumerate(pieces)]


def chunkedGelfMessages(count: int) -> list[list[bytes]]:
    rng = random.Random(count)
    return [
        gelfChunks(zlib.compress(gelf(rng, i, rng.randbytes(6000).hex())), struct.pack(">Q", i))
        for i in range(count)
    ]


def eventTime(seconds: int, nanoseconds: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanoseconds))


def forwardPayloads(count: int, connections: int = 4, entries: int = 1000) -> list[list[bytes]]:
    """
    @return: per connection, PackedForward messages of C{entries} entries.
    """
    rng = random.Random(count)
    messages = []
    for start in range(0, count, entries):
        packed = b"".join(
            msgpack.packb(
                [eventTime(1795000000 + i // 1000, i % 1000 * 1000),
                 {"log": plainLine(rng, i).decode(), "stream": "stdout", "container_name": rng.choice(SERVICES)}],
            )
            for i in range(start, min(count, start + entries))
        )
        messages.append(msgpack.packb(["kube.var.log", packed, {"size": entries}], use_bin_type=True))
    return [messages[i::connections] for i in range(connections)]


def forwardRate(count: int) -> Rate:
    """
    @return: records/s of PackedForward over 4 connections until stored, and
        the server's CPU microseconds per record.
    """
    server = UDPServer()
    try:
        payloads = forwardPayloads(count)
        threads = [threading.Thread(target=sendTCP, args=(server.forwardPort, p)) for p in payloads]
        cpu = CPUMeter(server)
        started = time.perf_counter()
        for t in threads:
            t.start()
        done = server.waitForCount(count)
        for t in threads:
            t.join()
        return count / (done - started), *cpu.perRecord(count)
    finally:
        server.stop()


def sendPaced(port: int, datagrams: list[bytes], rate: int, seconds: float) -> float:
    """
    Send C{rate} datagrams a second for C{seconds}, cycling through
    C{datagrams}.

    @return: the rate achieved, datagrams/s.
    """
    total = int(rate * seconds)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        address = ("127.0.0.1", port)
        pool = len(datagrams)
        started = time.perf_counter()
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                s.sendto(datagrams[sent % pool], address)
                sent += 1
            time.sleep(0.0005)
        return total / (time.perf_counter() - started)


#: The paced rates tried for the lossless UDP rate, datagrams/s.
LOSSLESS_RATES = (5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000)


def udpLossless(make: Callable[[random.Random, int], bytes], seconds: float = 10.0) -> None:
    """
    Print, for rising paced rates (L{LOSSLESS_RATES}), whether everything
    sent over C{seconds} was stored, with the drops the kernel counted; stop
    at the first loss (or when the sender cannot keep the rate).
    """
    server = UDPServer()
    try:
        granted = server.metric("logsvc_udp_receive_buffer_bytes")
        print(
            f"UDP, {make.__name__} datagrams: receive buffer granted by the kernel {granted:,.0f} bytes"
            " (SO_RCVBUF as getsockopt reports it)"
        )
        datagrams = makeMessages(make, 50_000)
        best = 0
        for rate in LOSSLESS_RATES:
            base = server.lastId()
            kernelBefore = server.metric("logsvc_udp_kernel_drops_total")
            cpu = server.cpuSeconds()
            achieved = sendPaced(server.udpPort, datagrams, rate, seconds)
            expected = int(rate * seconds)
            _, stored = waitStored(server, base + expected)
            stored -= base
            kernel = server.metric("logsvc_udp_kernel_drops_total") - kernelBefore
            used = (server.cpuSeconds() - cpu) * 1e6 / max(1, stored)
            print(
                f"  {rate:7,d}/s asked, {achieved:9,.0f}/s sent for {seconds:.0f} s: "
                f"{stored:,} of {expected:,} stored, kernel drops {kernel:,.0f}, server CPU {used:.1f} us/record"
            )
            if stored != expected or achieved < rate * 0.97:
                break
            best = rate
        print(f"UDP, {make.__name__}: highest rate with nothing lost over {seconds:.0f} s: {best:,} datagrams/s")
    finally:
        server.stop()


CASES = ("tcp", "syslog", "http", "otlp", "loki", "udp", "forward", "lossless")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000, help="records per run")
    parser.add_argument(
        "--only", nargs="+", choices=CASES, default=list(CASES),
        help="run only these (plain TCP lines, the baseline, always run)",
    )
    args = parser.parse_args()
    n = args.records
    only = set(args.only)
    print(f"records per run: {n:,}  (fresh twistd logsvc per run, counted back from the store)")
    # The servers import this checkout, as this process does.
    print(speedups.startupLine())
    plainMessages = makeMessages(plainLine, n)
    plain, plainCPU, plainReactor = tcpRate(plainMessages, lineFramed)
    plainBytes = plain * sum(len(m) + 1 for m in plainMessages) / n
    results: list[tuple[str, float, float, float]] = [("plain lines, TCP (baseline)", plain, plainCPU, plainReactor)]
    if "syslog" in only:
        results.append(("RFC 5424, TCP, LF framing", *tcpRate(makeMessages(rfc5424, n), lineFramed)))
        results.append(("RFC 5424, TCP, octet counting", *tcpRate(makeMessages(rfc5424, n), octetCounted)))
        results.append(("RFC 3164, TCP, LF framing", *tcpRate(makeMessages(rfc3164, n), lineFramed)))
    ndjson = bulk = 0.0
    if "http" in only:
        ndjson, *ndjsonCPU = ndjsonRate(n)
        bulk, *bulkCPU = bulkRate(n)
        results.append(("POST /logs NDJSON, 1000 docs/req", ndjson, *ndjsonCPU))
        results.append(("POST /_bulk, 1000 docs/request", bulk, *bulkCPU))
    if "otlp" in only:
        results.append(("POST /v1/logs OTLP protobuf, 1000/req", *otlpRate(n)))
    if "loki" in only:
        results.append(("Loki protobuf push, 1000/req", *lokiProtobufRate(n)))
    chunked: tuple[Rate, float] | None = None
    if "udp" in only:
        results.append(("RFC 5424, UDP, one per datagram", *udpRate([[m] for m in makeMessages(rfc5424, n)])[0]))
        results.append(("RFC 3164, UDP, one per datagram", *udpRate([[m] for m in makeMessages(rfc3164, n)])[0]))
        results.append(("GELF zlib, UDP, one per datagram", *udpRate(gelfMessages(n))[0]))
        chunked = udpRate(chunkedGelfMessages(max(1, n // 20)))
        results.append(("GELF chunked (5 x 1420 B), UDP", *chunked[0]))
    if "forward" in only:
        results.append(("Fluent forward PackedForward, 1000/msg", *forwardRate(n)))
    print(
        f"{'':38s} {'records/s':>12s}   {'x plain':>7s}   {'server CPU/record':>17s}   {'x plain by CPU':>14s}"
        f"   {'reactor thread':>14s}"
    )
    for name, rate, cpu, reactor in results:
        print(
            f"{name:38s} {rate:12,.0f}   {rate / plain:7.2f}   {cpu:14.1f} us   {plainCPU / cpu:14.2f}"
            f"   {reactor:11.1f} us"
        )
    print(f"plain lines, TCP: {plainBytes / 1e6:.1f} MB/s of lines")
    if chunked is not None:
        print(
            f"GELF chunked, UDP: {chunked[1] / 1e6:.1f} MB/s of datagrams, "
            f"{chunked[1] / plainBytes:.2f} x plain lines' bytes/s"
        )
    if ndjson:
        print(f"_bulk / NDJSON on /logs (same documents): {bulk / ndjson:.2f}")
    if "lossless" in only:
        udpLossless(rfc5424)
        udpLossless(plainLine)


if __name__ == "__main__":
    main()
