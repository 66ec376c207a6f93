"""JSON documents: one object per line (TCP, NDJSON) or a whole body (HTTP)."""

from __future__ import annotations

from typing import Any

import orjson

from logsvc.formats.text import decodeText
from logsvc.record import Record, RecordError, normalize


class JSONSyntaxError(RecordError):
    """
    Invalid JSON.  C{str(error)} names the offset (and line, for NDJSON).
    """


def loadJSON(data: bytes) -> Any:
    """
    Decode JSON, retrying with invalid UTF-8 replaced so an encoding error in
    one string does not lose the document.

    @raise JSONSyntaxError: with the offset (in characters, as orjson counts)
        of the first syntax error.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Retry even for a syntax error: the first error may have been only the
        # encoding, which would hide where the syntax really breaks.
        try:
            return orjson.loads(decodeText(data))
        except orjson.JSONDecodeError as e:
            raise JSONSyntaxError(f"invalid JSON at offset {e.pos}: {e.msg}") from None


def parseJSONLine(line: bytes, peer: str, received: int) -> Record:
    """
    @return: the record for one JSON-object line.
    @raise RecordError: when the line is not a JSON object or does not normalize.
    """
    return normalize(loadJSON(line), peer, received)


class DocumentError(RecordError):
    """
    One record of a multi-record body is invalid.

    @ivar index: the record's 0-based position in the body.
    """

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def parseJSONBody(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a JSON body: one object, or an array of objects.

    @raise JSONSyntaxError: for invalid JSON (naming the offset).
    @raise DocumentError: for the first record that does not normalize.
    """
    value = loadJSON(data)
    items = value if isinstance(value, list) else [value]
    records = []
    for index, item in enumerate(items):
        try:
            records.append(normalize(item, peer, received))
        except RecordError as e:
            raise DocumentError(str(e), index) from None
    return records


def parseNDJSON(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse newline-delimited JSON: one object per line; blank lines are skipped
    and do not count as records.

    @raise DocumentError: for the first invalid line, naming its line number;
        C{index} is the record's position.
    """
    records = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(normalize(loadJSON(line), peer, received))
        except RecordError as e:
            raise DocumentError(f"line {number}: {e}", len(records)) from None
    return records


def parseJSONText(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a body whose type was not said right (C{curl -d} and
    C{--data-binary} label everything a form): a JSON object or array, else
    NDJSON when it has several lines.

    @raise JSONSyntaxError: for a one-line body that is not JSON.
    @raise DocumentError: for the first record that does not normalize, or
        the first bad NDJSON line.
    """
    try:
        return parseJSONBody(data, peer, received)
    except JSONSyntaxError:
        if b"\n" not in data.strip():
            raise
    return parseNDJSON(data, peer, received)
