# -*- test-case-name: tests.test_formats_datagram -*-
"""
One UDP datagram is one message; its first bytes say which format:

  - C{0x1f 0x8b} (gzip) or a zlib header (C{0x78 ..}): compressed GELF,
    inflated to at most L{MAX_INFLATED} bytes (a decompression bomb is
    refused once it passes that);
  - C{{}: a JSON object, GELF when it has C{version} and C{short_message},
    else a logsvc JSON record (see L{logsvc.formats.detect.parseLine});
  - C{<PRI>}: RFC 5424 or RFC 3164 syslog;
  - anything else: a plain-text message (level info).

A trailing LF, CR or NUL ends a message without being part of it (rsyslog,
C{logger} and network appliances end datagrams differently).  Chunked GELF
(C{0x1e 0x0f}) is reassembled first, by L{logsvc.formats.gelfchunks}.

Pure: no Twisted.
"""

from __future__ import annotations

from zlib import MAX_WBITS, decompress, decompressobj
from zlib import error as zlibError

from orjson import JSONDecodeError, loads

from logsvc.formats import Rejection
from logsvc.formats.compression import InflateError, inflate, sniffCompression
from logsvc.formats.detect import jsonRecord, parseLine
from logsvc.formats.jsonline import loadJSON
from logsvc.formats.syslog import commonSyslog, looksLikeSyslog, parseSyslogText
from logsvc.record import Record, RecordError

__all__ = ["MAX_INFLATED", "parseDatagram", "parseDatagrams"]

#: The most bytes a compressed GELF message may inflate to.
MAX_INFLATED = 1024 * 1024
#: The most bytes one byte of deflate data can inflate to (zlib's
#: documented limit, 1032:1).
_MOST_INFLATED_PER_BYTE = 1032
#: zlib's window bits for a gzip stream.
_GZIP = 16 + MAX_WBITS


def parseDatagram(data: bytes, peer: str, received: int, *, maxInflated: int = MAX_INFLATED) -> Record:
    """
    Parse one datagram (or one reassembled chunked GELF message).

    @raise RecordError: for an empty datagram, compressed data that is
        corrupt, truncated, inflates past C{maxInflated} or is not a JSON
        object, or a JSON record or GELF message that does not map.
    """
    first = data[:1]
    kind = sniffCompression(data) if first == b"x" or first == b"\x1f" else None
    if kind is not None:
        try:
            data = inflate(data, kind, maxInflated)
        except InflateError as e:
            raise RecordError(f"compressed GELF: {e}") from None
        return jsonRecord(loadJSON(data), peer, received)
    # Strip the framing some senders add: LF (rsyslog, logger), NUL, CR.
    end = len(data)
    while end and data[end - 1] in b"\n\x00\r":
        end -= 1
    if end < len(data):
        data = data[:end]
    if not data.strip():
        raise RecordError("empty datagram")
    return parseLine(data, peer, received)


def _smallCompressedRecord(data: bytes, peer: str, received: int, maxInflated: int) -> Record | None:
    """
    L{parseDatagram}'s record for zlib or gzip data too short to inflate
    past C{maxInflated} bytes (at most C{maxInflated // 1032}, as deflate
    inflates at most 1,032 times: 258 bytes from 2 bits), in one call of
    each decoder, without the steps that bound longer data: the way of
    every compressed GELF datagram (zlib is graypy's default, gzip Docker's).

    @return: the record, or L{None} when zlib or the JSON decoder refuses
        C{data}, or it holds more than one gzip member (for
        L{parseDatagram} to decide).
    @raise RecordError: as L{parseDatagram}.
    """
    try:
        if data[0] == 0x78:
            inflated = decompress(data)
        else:
            # zlib.decompress would ignore members after the first.
            decoder = decompressobj(_GZIP)
            inflated = decoder.decompress(data)
            if not decoder.eof or decoder.unused_data:
                return None
    except zlibError:
        return None
    if len(inflated) > maxInflated:
        # Never, by the length of data: a check of that.
        return None
    try:
        value = loads(inflated)
    except JSONDecodeError:
        return None
    return jsonRecord(value, peer, received)


def parseDatagrams(
    datagrams: list[tuple[bytes, str]], received: int, *, maxInflated: int = MAX_INFLATED
) -> tuple[list[Record], list[tuple[str, Rejection]]]:
    """
    Parse a batch of datagrams, each with its sender.

    @return: the records, and the rejected datagrams as (peer, (datagram,
        reason)).
    """
    records: list[Record] = []
    rejected: list[tuple[str, Rejection]] = []
    append = records.append
    smallCompressed = maxInflated // _MOST_INFLATED_PER_BYTE
    for data, peer in datagrams:
        if data[:1] == b"<":
            # Syslog, the most common datagram, straight to its parser
            # (which never raises): what parseDatagram and parseLine would
            # do with it, without their other checks.
            data = data.rstrip(b"\n\x00\r")
            text = data.decode("utf-8", "replace")
            record = commonSyslog(text, peer, received)
            if record is None and looksLikeSyslog(data):
                record = parseSyslogText(text, peer, received)
            if record is not None:
                append(record)
                continue
        elif (data[:1] == b"x" or data[:2] == b"\x1f\x8b") and len(data) <= smallCompressed:
            # Compressed GELF.
            try:
                record = _smallCompressedRecord(data, peer, received, maxInflated)
            except RecordError as e:
                rejected.append((peer, (data, str(e))))
                continue
            if record is not None:
                append(record)
                continue
        try:
            append(parseDatagram(data, peer, received, maxInflated=maxInflated))
        except RecordError as e:
            rejected.append((peer, (data, str(e))))
    return records, rejected
