"""
Syslog messages: RFC 5424 and RFC 3164 (the BSD form), as senders really
write them.

L{parseSyslog} takes one message (a line or an octet-counted frame, starting
with C{<PRI>}) and returns a L{Record}:

  - PRI -> level (its severity) and C{fields["facility"]} (its facility name);
  - TIMESTAMP -> ts (RFC 5424: with its offset; RFC 3164: the year-less local
    time of this host, in the year that puts it closest before receive time);
  - HOSTNAME -> source (the peer address when absent or C{-});
  - APP-NAME / TAG -> service; PROCID / the TAG's C{[pid]} -> C{fields["procid"]};
    MSGID -> C{fields["msgid"]};
  - STRUCTURED-DATA -> one field per parameter, named C{"SD-ID.PARAM-NAME"}
    (a repeated parameter becomes a list, an element without parameters
    C{"SD-ID": true});
  - MSG -> message, with a leading BOM and trailing CR/LF/NUL dropped.

A message that is almost syslog (a PRI over 191, a bad RFC 5424 timestamp,
truncated or malformed structured data) is
kept whole as plain text, with the reason in C{fields["syslog_error"]}, so no
line is lost for its syntax.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from logsvc.record import INFO, Record, RecordError, dumpFields

#: Facility names by number (RFC 5424 section 6.2.1, the names rsyslog uses).
FACILITY_NAMES: tuple[str, ...] = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)

MAX_PRI = 191


class SyslogError(RecordError):
    """
    A message starts like syslog but is not well formed; C{str(error)} says why.
    """


_PRI = re.compile(r"<(\d{1,3})>")

# <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
# (version 1, and a timestamp that is NILVALUE or starts like a date: anything
# else is read as RFC 3164, whose message may start with any words).
_HEADER_5424 = re.compile(r"<(\d{1,3})>1 (-|\d{4}-\S+) (\S+) (\S+) (\S+) (\S+) ?")

_SD_ELEMENT = re.compile(r'\[([^ =\]"]+)((?: +[^ =\]"]+="(?:[^"\\]|\\.)*")*) *\]')
_SD_PARAM = re.compile(r'([^ =\]"]+)="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')

_MONTHS = {
    name: n
    for n, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

# Mmm dd hh:mm:ss (dd space-padded or not), optionally with a fraction, or an
# RFC 3339 timestamp as rsyslog's high-precision templates write it.
_STAMP_3164 = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(\.\d{1,6})? "
    r"|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
)

# TAG[PID]: -- a program name, an optional pid, a colon.
_TAG = re.compile(r"([^\s:\[\]]{1,128})(?:\[([^\]\s]{0,128})\])?: ?")


def facilityName(number: int) -> str:
    """
    @return: the facility's name (C{"local0"}), or its number as text when
        it has no name.
    """
    return FACILITY_NAMES[number] if number < len(FACILITY_NAMES) else str(number)


def _stripMessage(text: str) -> str:
    if text[:1] == "\ufeff":
        text = text[1:]
    return text.rstrip("\r\n\x00")


def _rfc3339Micros(text: str) -> int:
    """
    @return: an RFC 3339 timestamp (with its offset, C{Z} or numeric) as
        microseconds since the epoch.
    @raise SyslogError: when C{text} is not one.
    """
    if len(text) < 20 or text[10:11] not in ("T", "t") or text[-1:] not in "Zz0123456789":
        raise SyslogError(f"bad timestamp {text!r}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SyslogError(f"bad timestamp {text!r}") from None
    if parsed.tzinfo is None:
        raise SyslogError(f"timestamp without offset {text!r}")
    delta = parsed - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _structuredData(text: str, start: int, fields: dict[str, Any]) -> int:
    """
    Parse RFC 5424 STRUCTURED-DATA at C{text[start:]} into C{fields}.

    @return: the index just after it (and after the space before MSG).
    @raise SyslogError: for truncated or malformed structured data.
    """
    if text[start : start + 1] == "-":
        end = start + 1
    else:
        end = start
        match = _SD_ELEMENT.match(text, end)
        if match is None:
            raise SyslogError("truncated or malformed structured data")
        while match is not None:
            sdID, params = match.group(1), match.group(2)
            if params:
                for name, value in _SD_PARAM.findall(params):
                    key = f"{sdID}.{name}"
                    if "\\" in value:
                        value = _SD_ESCAPE.sub(r"\1", value)
                    previous = fields.get(key)
                    if previous is None:
                        fields[key] = value
                    elif isinstance(previous, list):
                        previous.append(value)
                    else:
                        fields[key] = [previous, value]
            else:
                fields.setdefault(sdID, True)
            end = match.end()
            match = _SD_ELEMENT.match(text, end)
    following = text[end : end + 1]
    if following == " ":
        return end + 1
    if following and following not in "\r\n\x00":
        raise SyslogError("truncated or malformed structured data")
    return end


def parse5424(text: str, peer: str, received: int) -> Record:
    """
    Parse an RFC 5424 message (already decoded).

    @raise SyslogError: when C{text} is not a well-formed RFC 5424 message.
    """
    match = _HEADER_5424.match(text)
    if match is None:
        raise SyslogError("not an RFC 5424 header")
    pri, stamp, host, app, procid, msgid = match.groups()
    priority = int(pri)
    if priority > MAX_PRI:
        raise SyslogError(f"PRI {priority} is over {MAX_PRI}")
    fields: dict[str, Any] = {"facility": facilityName(priority >> 3)}
    if procid != "-":
        fields["procid"] = procid
    if msgid != "-":
        fields["msgid"] = msgid
    start = match.end()
    if text[start - 1 : start] != " ":
        # The header ended at the end of the text: no SD at all.
        raise SyslogError("truncated RFC 5424 header")
    start = _structuredData(text, start, fields)
    return Record(
        received if stamp == "-" else _rfc3339Micros(stamp),
        received,
        priority & 7,
        peer if host == "-" else host,
        "" if app == "-" else app,
        _stripMessage(text[start:]),
        dumpFields(fields),
    )


#: (stamp, receive day) -> microseconds, for RFC 3164's year-less stamps.
_stampCache: dict[tuple[str, int, Any], int] = {}


def _yearless(
    month: int, day: int, hms: tuple[int, int, int], fraction: str | None, received: int, zone: tzinfo | None
) -> int:
    """
    Place an RFC 3164 time (no year, local time of the sender, taken to be
    C{zone}, or this host's local zone when L{None}) in the year that makes
    it the latest not more than a month after C{received}.
    """
    receivedAt = datetime.fromtimestamp(received / 1_000_000, zone or UTC)
    year = receivedAt.year
    try:
        candidate = datetime(year, month, day, *hms)
    except ValueError:
        # Feb 29 outside a leap year: the previous leap year is meant.
        candidate = datetime(year - (year % 4 or 4), month, day, *hms)
        year = candidate.year
    if zone is None:
        stamped = candidate.astimezone()  # naive: this host's local time
        reference = datetime.fromtimestamp(received / 1_000_000).astimezone()
    else:
        stamped = candidate.replace(tzinfo=zone)
        reference = receivedAt
    if stamped - reference > timedelta(days=31):
        # A December message received in January of the next year.
        try:
            replaced = candidate.replace(year=year - 1)
        except ValueError:
            replaced = candidate.replace(year=year - 4)
        stamped = replaced.astimezone() if zone is None else replaced.replace(tzinfo=zone)
    delta = stamped - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000
    if fraction:
        micros += int(fraction[1:].ljust(6, "0"))
    return micros


def parse3164(text: str, peer: str, received: int, *, zone: tzinfo | None = None) -> Record:
    """
    Parse an RFC 3164 (BSD) message, already decoded, as leniently as
    rsyslog: a missing timestamp means receive time (and then no hostname
    either: Python's SysLogHandler writes C{<PRI>ident message}); a first
    word that ends in C{:} or holds C{[} is a TAG, not a hostname.

    @param zone: the senders' time zone for year-less timestamps; L{None}
        means this host's local zone.
    @raise SyslogError: when the PRI is missing or over 191.
    """
    match = _PRI.match(text)
    if match is None:
        raise SyslogError("no <PRI>")
    priority = int(match.group(1))
    if priority > MAX_PRI:
        raise SyslogError(f"PRI {priority} is over {MAX_PRI}")
    position = match.end()
    ts = received
    source = peer
    stamp = _STAMP_3164.match(text, position)
    if stamp is not None:
        if stamp.group(7) is not None:
            ts = _rfc3339Micros(stamp.group(7))
        else:
            month = _MONTHS.get(stamp.group(1))
            if month is None:
                stamp = None
            else:
                key = (stamp.group(0), received // 86_400_000_000, zone)
                cached = _stampCache.get(key)
                if cached is None:
                    try:
                        cached = _yearless(
                            month,
                            int(stamp.group(2)),
                            (int(stamp.group(3)), int(stamp.group(4)), int(stamp.group(5))),
                            stamp.group(6),
                            received,
                            zone,
                        )
                    except ValueError:
                        raise SyslogError(f"bad timestamp {stamp.group(0).strip()!r}") from None
                    if len(_stampCache) > 4096:
                        _stampCache.clear()
                    _stampCache[key] = cached
                ts = cached
    if stamp is not None:
        position = stamp.end()
        # HOSTNAME, unless the next word is already the TAG.
        space = text.find(" ", position)
        if space > position:
            word = text[position:space]
            if word[-1] != ":" and "[" not in word:
                source = word
                position = space + 1
    fields: dict[str, Any] = {"facility": facilityName(priority >> 3)}
    service = ""
    tag = _TAG.match(text, position)
    if tag is not None:
        service = tag.group(1)
        if tag.group(2):
            fields["procid"] = tag.group(2)
        position = tag.end()
    return Record(
        ts,
        received,
        priority & 7,
        source,
        service,
        _stripMessage(text[position:]),
        dumpFields(fields),
    )


def parseSyslog(data: bytes, peer: str, received: int, *, zone: tzinfo | None = None) -> Record:
    """
    Parse one syslog message: RFC 5424 when it has that shape (C{<PRI>1 }
    and a timestamp or C{-}), else RFC 3164.  Invalid UTF-8 is kept as U+FFFD.

    A message that is almost syslog becomes a plain-text record of the whole
    message, with the reason in C{fields["syslog_error"]}.

    @param data: the message without its framing (a trailing LF, CR or NUL
        is dropped).
    @param zone: see L{parse3164}.
    """
    text = data.decode("utf-8", "replace")
    try:
        if _HEADER_5424.match(text) is not None:
            return parse5424(text, peer, received)
        return parse3164(text, peer, received, zone=zone)
    except SyslogError as e:
        return Record(
            received,
            received,
            INFO,
            peer,
            "",
            text.rstrip("\r\n\x00"),
            dumpFields({"syslog_error": str(e)}),
        )


def looksLikeSyslog(data: bytes) -> bool:
    """
    @return: True when C{data} starts with a syntactically valid C{<PRI>}
        (one to three digits), whatever its value.
    """
    return _PRI_BYTES.match(data) is not None


_PRI_BYTES = re.compile(rb"<\d{1,3}>")
