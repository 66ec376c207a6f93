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

and each as a ratio of the plain-line rate, and ``_bulk`` against NDJSON.

Usage: python bench/bench_senders.py [--records 500000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import BenchServer, timedPosts, timedTCPIngest  # noqa: E402

SERVICES = ["api", "web", "db", "auth", "billing", "search", "queue", "mailer"]
HOSTS = [f"node-{n:02d}" for n in range(12)]
PATHS = ["/api/v1/items", "/api/v1/users", "/login", "/checkout", "/search"]


class Server(BenchServer):
    """
    A fresh ``twistd -n logsvc`` in its own directory.
    """


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


def tcpRate(messages: list[bytes], frame: Callable[[list[bytes]], list[bytes]], connections: int = 4) -> float:
    """
    @return: records/s from the first byte sent until the store holds them all.
    """
    server = Server()
    try:
        payloads = [frame(messages[i::connections]) for i in range(connections)]
        return timedTCPIngest(server, payloads, len(messages))
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
) -> float:
    """
    @return: records/s posting C{bodies} to C{path} from C{clients} keep-alive
        clients until every one is answered (and so durable).
    """
    server = Server()
    try:
        elapsed = timedPosts(server, path, bodies, ok, clients=clients, contentType=contentType)
        stored = server.count()
        if stored != count:
            raise RuntimeError(f"store has {stored} of {count} records")
        return count / elapsed
    finally:
        server.stop()


def bulkRate(count: int, batch: int = 1000) -> float:
    """
    @return: records/s of C{POST /_bulk} (ECS documents, C{create} actions).
    """
    action = b'{"create":{"_index":"logs-app"}}\n'
    docs = [orjson.dumps(_ecs(doc)) + b"\n" for doc in _documents(count)]
    bodies = [b"".join(action + doc for doc in docs[i : i + batch]) for i in range(0, count, batch)]
    return httpRate(
        "/_bulk", bodies, count, lambda status, body: status == 200 and b'"errors":false' in body[:200]
    )


def ndjsonRate(count: int, batch: int = 1000) -> float:
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


def otlpRate(count: int) -> float:
    """
    @return: records/s of C{POST /v1/logs}, OTLP protobuf.
    """
    return httpRate("/v1/logs", otlpBodies(count), count, lambda status, body: status == 200, contentType=PROTOBUF)


def lokiProtobufRate(count: int) -> float:
    """
    @return: records/s of C{POST /loki/api/v1/push}, snappy protobuf.
    """
    return httpRate("/loki/api/v1/push", lokiBodies(count), count, lambda status, body: status == 204, contentType=PROTOBUF)


PROTOBUF = "application/x-protobuf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000, help="records per run")
    args = parser.parse_args()
    n = args.records
    print(f"records per run: {n:,}  (fresh twistd logsvc per run, counted back from the store)")
    plain = tcpRate(makeMessages(plainLine, n), lineFramed)
    results = [("plain lines, TCP (baseline)", plain)]
    results.append(("RFC 5424, TCP, LF framing", tcpRate(makeMessages(rfc5424, n), lineFramed)))
    results.append(("RFC 5424, TCP, octet counting", tcpRate(makeMessages(rfc5424, n), octetCounted)))
    results.append(("RFC 3164, TCP, LF framing", tcpRate(makeMessages(rfc3164, n), lineFramed)))
    ndjson = ndjsonRate(n)
    bulk = bulkRate(n)
    results.append(("POST /logs NDJSON, 1000 docs/req", ndjson))
    results.append(("POST /_bulk, 1000 docs/request", bulk))
    results.append(("POST /v1/logs OTLP protobuf, 1000/req", otlpRate(n)))
    results.append(("Loki protobuf push, 1000/req", lokiProtobufRate(n)))
    for name, rate in results:
        print(f"{name:38s} {rate:12,.0f} records/s   {rate / plain:5.2f} x plain")
    print(f"_bulk / NDJSON on /logs (same documents): {bulk / ndjson:.2f}")


if __name__ == "__main__":
    main()
