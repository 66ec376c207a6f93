"""
GELF over TCP: one GELF JSON message per frame, frames ended by NUL (as
Graylog's GELF TCP input takes them; LF works too).  Framing is
L{logsvc.ingest.tcp.LineFramer}'s; only the parsing differs.  An invalid frame
is counted (C{logsvc_records_rejected{transport="gelf"}}) and logged, and the
frames after it are still taken.
"""

from __future__ import annotations

from typing import Any

from logsvc.formats.gelf import parseGelfFrames
from logsvc.ingest.tcp import DEFAULT_MAX_LINE, IngestFactory, IngestProtocol
from logsvc.pipeline import Pipeline
from logsvc.record import nowMicros


class GelfProtocol(IngestProtocol):
    """
    Store every GELF frame of the connection as a record.
    """

    def linesReceived(self, lines: list[bytes]) -> None:
        records, rejected = parseGelfFrames(lines, self.peer, nowMicros())
        if rejected:
            self._rejected(rejected)
        if records:
            self.factory.submit(records).addErrback(
                lambda f: self.log.failure("GELF records from {peer} not stored", f, peer=self.peer)
            )


class GelfFactory(IngestFactory):
    """
    The GELF TCP listener's factory.
    """

    protocol = GelfProtocol  # type: ignore[assignment]

    def __init__(self, pipeline: Pipeline, *, maxLineLength: int = DEFAULT_MAX_LINE, **kw: Any) -> None:
        super().__init__(pipeline, maxLineLength=maxLineLength, transport="gelf", **kw)
