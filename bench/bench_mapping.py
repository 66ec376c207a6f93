"""
Parsing benchmark: the CPU time one process spends turning each sender's
wire bytes into records, per record, for the bodies ``bench_senders.py``
sends (plain lines, OTLP protobuf, Loki snappy protobuf, Fluent forward
PackedForward, and UDP datagrams: RFC 5424, RFC 3164, zlib GELF; the syslog
datagrams also through the pure-Python parser, where the optional C one,
``logsvc._speedups``, is built).  No server, no store: what the reactor thread pays per
record before anything is stored, which a loaded machine changes much less
than a wall-clock rate (``time.process_time``, the best of several rounds).

Usage: python bench/bench_mapping.py [--records 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_senders import (  # noqa: E402
    forwardPayloads,
    gelfMessages,
    lineFramed,
    lokiBodies,
    makeMessages,
    otlpBodies,
    plainLine,
    rfc3164,
    rfc5424,
)
from logsvc import speedups  # noqa: E402
from logsvc.formats import syslog  # noqa: E402
from logsvc.formats.datagram import parseDatagrams  # noqa: E402
from logsvc.formats.detect import parseLines  # noqa: E402
from logsvc.formats.forward import decodeMessage, unpacker  # noqa: E402
from logsvc.formats.loki import parseLokiProtobuf  # noqa: E402
from logsvc.formats.otlp import parseOTLPProtobuf  # noqa: E402
from logsvc.web.body import unsnappy  # noqa: E402

PEER = "127.0.0.1"
RECEIVED = 1_795_000_000_000_000
LIMIT = 16 * 1024 * 1024


def plainCase(count: int) -> Callable[[], int]:
    chunks = [chunk.split(b"\n") for chunk in lineFramed(makeMessages(plainLine, count))]

    def run() -> int:
        return sum(len(parseLines(lines, PEER, RECEIVED)[0]) for lines in chunks)

    return run


def otlpCase(count: int) -> Callable[[], int]:
    bodies = otlpBodies(count)

    def run() -> int:
        return sum(len(parseOTLPProtobuf(body, PEER, RECEIVED).records) for body in bodies)

    return run


def otlpDecodeCase(count: int) -> Callable[[], int]:
    """
    Only the bindings' decoding of the same requests (upb, in C), for
    comparison with the mapping.
    """
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    bodies = otlpBodies(count)

    def run() -> int:
        for body in bodies:
            ExportLogsServiceRequest.FromString(body)
        return count

    return run


def lokiCase(count: int) -> Callable[[], int]:
    bodies = lokiBodies(count)

    def run() -> int:
        return sum(len(parseLokiProtobuf(unsnappy(body, LIMIT), PEER, RECEIVED)) for body in bodies)

    return run


def forwardCase(count: int) -> Callable[[], int]:
    """
    The listener's work: the connection's raw stream decoder, then each
    message decoded and its entries mapped.
    """
    messages = [message for connection in forwardPayloads(count) for message in connection]

    def run() -> int:
        stored = 0
        stream = unpacker(LIMIT, raw=True)
        for message in messages:
            stream.feed(message)
            for value in stream:
                decoded = decodeMessage(value, maxBytes=LIMIT)
                assert decoded is not None
                stored += len(decoded.records(PEER, RECEIVED)[0])
        return stored

    return run


def datagramCase(make: Callable[[int], list[bytes]]) -> Callable[[int], Callable[[], int]]:
    """
    The UDP listener's work for the datagrams C{make} makes: one batch per
    read of about 1,700 (what 256 KiB holds), parsed together.
    """

    def case(count: int) -> Callable[[], int]:
        datagrams = [(datagram, PEER) for datagram in make(count)]
        reads = [datagrams[i : i + 1700] for i in range(0, count, 1700)]

        def run() -> int:
            return sum(len(parseDatagrams(read, RECEIVED)[0]) for read in reads)

        return run

    return case


def pythonOnly(case: Callable[[int], Callable[[], int]]) -> Callable[[int], Callable[[], int]]:
    """
    C{case} with the syslog parser's C version (C{logsvc._speedups}) set
    aside while it runs: the pure-Python way, for comparison.
    """

    def pure(count: int) -> Callable[[], int]:
        run = case(count)

        def runPure() -> int:
            fast, syslog._fastCommon = syslog._fastCommon, None
            try:
                return run()
            finally:
                syslog._fastCommon = fast

        return runPure

    return pure


CASES: dict[str, Callable[[int], Callable[[], int]]] = {
    "plain lines": plainCase,
    "OTLP protobuf (decode and map)": otlpCase,
    "OTLP protobuf (decode only)": otlpDecodeCase,
    "Loki protobuf (unsnappy, decode, map)": lokiCase,
    "Fluent forward PackedForward": forwardCase,
    "RFC 5424 datagrams": datagramCase(lambda count: makeMessages(rfc5424, count)),
    "RFC 3164 datagrams": datagramCase(lambda count: makeMessages(rfc3164, count)),
    "RFC 5424 datagrams, pure Python": pythonOnly(datagramCase(lambda count: makeMessages(rfc5424, count))),
    "RFC 3164 datagrams, pure Python": pythonOnly(datagramCase(lambda count: makeMessages(rfc3164, count))),
    "GELF zlib datagrams": datagramCase(lambda count: [d for (d,) in gelfMessages(count)]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per case")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (the best is printed)")
    args = parser.parse_args()
    print(f"{args.records:,} records per case, best of {args.rounds} rounds, CPU time of this process")
    print(speedups.startupLine())
    baseline = None
    for name, make in CASES.items():
        run = make(args.records)
        best = float("inf")
        for _ in range(args.rounds):
            started = time.process_time()
            made = run()
            best = min(best, time.process_time() - started)
        if made != args.records:
            raise RuntimeError(f"{name}: {made} records of {args.records}")
        perRecord = best * 1e6 / args.records
        baseline = baseline or perRecord
        print(f"{name:40s} {perRecord:6.2f} us/record   {perRecord / baseline:5.1f} x plain lines")


if __name__ == "__main__":
    main()
