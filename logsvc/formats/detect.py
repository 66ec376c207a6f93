"""
Pick a parser per line: a JSON object (GELF when it says so), syslog
(C{<PRI>}), or plain text.

This is the one place that decides which format a TCP line is in.
"""

from __future__ import annotations

from collections.abc import Iterable

from logsvc.formats import Rejection
from logsvc.formats.gelf import gelfRecord, isGelf
from logsvc.formats.jsonline import JSONSyntaxError, loadJSON
from logsvc.formats.syslog import looksLikeSyslog, parseSyslog
from logsvc.formats.text import decodeText
from logsvc.record import INFO, Record, RecordError, normalize

__all__ = ["Rejection", "jsonRecord", "parseLine", "parseLines"]


def jsonRecord(value: object, peer: str, received: int) -> Record:
    """
    The record of a decoded JSON value: GELF when it says so (L{isGelf}),
    mapped as L{logsvc.formats.gelf} says, else a logsvc record
    (L{normalize}).

    @raise RecordError: when it does not map.
    """
    if isGelf(value):
        return gelfRecord(value, peer, received)
    return normalize(value, peer, received)


def parseLine(line: bytes, peer: str, received: int) -> Record:
    """
    Parse one line (without its LF; a trailing CR is dropped here).

    A line that starts with C{{} and is valid JSON must be an object that
    normalizes, else L{RecordError}; a line that only looks like JSON is plain
    text, so nothing a sender wrote is lost for its syntax.  A JSON object
    with both C{version} and C{short_message} is GELF (L{isGelf}), mapped as
    L{logsvc.formats.gelf} says.  A line that starts
    with C{<PRI>} is syslog (see L{logsvc.formats.syslog}), which never raises.
    """
    if line[-1:] == b"\r":
        line = line[:-1]
    first = line[:1]
    if first == b"{":
        try:
            value = loadJSON(line)
        except JSONSyntaxError:
            pass
        else:
            return jsonRecord(value, peer, received)
    elif first == b"<" and looksLikeSyslog(line):
        return parseSyslog(line, peer, received)
    return Record(received, received, INFO, peer, "", decodeText(line), None)


def parseLines(
    lines: Iterable[bytes], peer: str, received: int
) -> tuple[list[Record], list[Rejection]]:
    """
    Parse a batch of lines; blank lines (empty or only whitespace) are skipped.

    @return: the records, and the lines rejected with their reasons.
    """
    records: list[Record] = []
    rejected: list[Rejection] = []
    append = records.append
    new = tuple.__new__
    for line in lines:
        first = line[:1]
        if first == b"{" or first == b"<" or line[-1:] == b"\r":
            if not line.strip():
                continue
            try:
                append(parseLine(line, peer, received))
            except RecordError as e:
                rejected.append((line, str(e)))
        elif line and not line.isspace():
            append(new(Record, (received, received, INFO, peer, "", line.decode("utf-8", "replace"), None)))
    return records, rejected
