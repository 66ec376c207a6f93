"""Plain text lines: the message is the line, level info."""

from __future__ import annotations

from logsvc.record import Record, plainRecord


def decodeText(data: bytes) -> str:
    """
    Decode wire bytes as UTF-8, keeping invalid sequences as U+FFFD so that no
    line is ever dropped for its encoding.
    """
    return data.decode("utf-8", "replace")


def parseText(line: bytes, peer: str, received: int) -> Record:
    """
    @return: a plain-text record for C{line} (without its line ending).
    """
    return plainRecord(decodeText(line), peer, received)
