"""
Syslog messages: RFC 5424 and RFC 3164 (the BSD form), as senders really
write them.

L{parseSyslog} takes one message (a line or an octet-counted frame, starting
with C{<PRI>}) and returns a L{Record}:

  - PRI -> level (its severity) and C{fields["facility"]} (its facility name);
  - TIMESTAMP -> ts (RFC 5424: with its offset; RFC 3164: the year-less local
    time of this host, in the year that puts it at most a month after the
    receive time);
  - HOSTNAME -> source (the peer address when absent or C{-});
  - APP-NAME / TAG -> service; PROCID / the TAG's C{[pid]} -> C{fields["procid"]};
    MSGID -> C{fields["msgid"]};
  - STRUCTURED-DATA -> one field per parameter, named C{"SD-ID.PARAM-NAME"}
    (a repeated parameter becomes a list, an element without parameters
    C{"SD-ID": true});
  - MSG -> message, with a leading BOM and trailing CR/LF/NUL dropped.

A message that is almost syslog (a PRI over 191, a bad timestamp, truncated
or malformed structured data) is kept whole as plain text, with the reason in
C{fields["syslog_error"]}, so no line is lost for its syntax.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from logsvc import speedups
from logsvc.record import INFO, Record, RecordError, dumpFields
from logsvc.times import Memo, datetimeToMicros

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
_NAMED = len(FACILITY_NAMES)


class SyslogError(RecordError):
    """
    A message starts like syslog but is not well formed; C{str(error)} says why.
    """


_PRI = re.compile(r"<(\d{1,3})>")

# <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
# (version 1, and a timestamp that is NILVALUE or starts like a date: anything
# else is read as RFC 3164, whose message may start with any words).
_HEADER_5424 = re.compile(r"<(\d{1,3})>1 (-|\d{4}-\S+) (\S+) (\S+) (\S+) (\S+) ?")

# (Quoted values as an unrolled loop, [^"\\]*(?:\\.[^"\\]*)*, which Python's
# re runs several times faster than an alternation per character.)
_SD_ELEMENT = re.compile(r'\[([^ =\]"]+)((?: +[^ =\]"]+="[^"\\]*(?:\\.[^"\\]*)*")*) *\]')
_SD_PARAM = re.compile(r'([^ =\]"]+)="([^"\\]*(?:\\.[^"\\]*)*)"')
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


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)")

def _secondMicros(key: str) -> int:
    """
    @param key: C{"YYYY-MM-DDTHH:MM:SS"} and an offset (C{Z} or C{+HH:MM}).
    @return: microseconds of that whole second.
    @raise ValueError: for an impossible date, time or offset.
    """
    seconds, offset = key[:19], key[19:]
    return datetimeToMicros(datetime.fromisoformat(seconds + ("+00:00" if offset in "Zz" else offset)))


#: "date time" + offset -> microseconds of that whole second.  Senders write
#: many messages per second, so this saves a datetime parse per message.
_secondsCache: Memo[str, int] = Memo(_secondMicros)


def rfc3339Micros(text: str) -> int:
    """
    @return: an RFC 3339 timestamp (with its offset, C{Z} or numeric) as
        microseconds since the epoch.
    @raise SyslogError: when C{text} is not one.
    """
    # Fast path: the whole second and offset were seen before, and what is
    # between them is a fraction.
    size = len(text)
    if text[-1:] in ("Z", "z"):
        cut = size - 1
    elif size >= 25 and text[size - 6] in ("+", "-"):
        cut = size - 6
    else:
        raise SyslogError(f"bad timestamp {text!r}")
    micros = _secondsCache.get(text[:19] + text[cut:])
    if micros is not None:
        if cut == 19:
            return micros
        fraction = text[20:cut]
        if text[19] == "." and 0 < len(fraction) <= 9 and fraction.isdigit() and fraction.isascii():
            return micros + int(fraction[:6].ljust(6, "0"))
    return _parseRFC3339(text)


def _parseRFC3339(text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise SyslogError(f"bad timestamp {text!r}")
    seconds, fraction, offset = match.groups()
    try:
        micros = _secondsCache[seconds + offset]
    except ValueError:
        raise SyslogError(f"bad timestamp {text!r}") from None
    if fraction:
        micros += int(fraction[:6].ljust(6, "0"))
    return micros



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
    return _from5424(match, text, peer, received)


_newRecord = tuple.__new__


def _from5424(match: re.Match[str], text: str, peer: str, received: int) -> Record:
    pri, stamp, host, app, procid, msgid = match.groups()
    priority = int(pri)
    if priority > MAX_PRI:
        raise SyslogError(f"PRI {priority} is over {MAX_PRI}")
    facility = priority >> 3
    fields: dict[str, Any] = {"facility": FACILITY_NAMES[facility] if facility < _NAMED else str(facility)}
    if procid != "-":
        fields["procid"] = procid
    if msgid != "-":
        fields["msgid"] = msgid
    start = match.end()
    if text[start - 1 : start] != " ":
        # The header ended at the end of the text: no SD at all.
        raise SyslogError("truncated RFC 5424 header")
    start = _structuredData(text, start, fields)
    # tuple.__new__ rather than Record(...): a NamedTuple's constructor is a
    # Python-level call, a sizeable share of a message's parse.
    return _newRecord(
        Record,
        (
            received if stamp == "-" else rfc3339Micros(stamp),
            received,
            priority & 7,
            peer if host == "-" else host,
            "" if app == "-" else app,
            _stripMessage(text[start:]),
            dumpFields(fields),
        ),
    )


def _stampMicros(key: tuple[Any, ...]) -> int:
    """
    @param key: (month, day, h, m, s, receive day, zone) of an RFC 3164
        stamp; the year is placed from noon (UTC) of the receive day.
    @raise ValueError: for an impossible date or time.
    """
    month, day, hour, minute, second, receiveDay, zone = key
    noon = receiveDay * 86_400_000_000 + 43_200_000_000
    return _yearless(month, int(day), int(hour), int(minute), int(second), noon, zone)


#: (month, day, h, m, s, receive day, zone) -> microseconds, for RFC 3164's
#: year-less stamps.
_stampCache: Memo[tuple[Any, ...], int] = Memo(_stampMicros)


def _yearless(
    month: int, day: int, hour: int, minute: int, second: int, received: int, zone: tzinfo | None
) -> int:
    """
    Place an RFC 3164 time (no year, local time of the sender, taken to be
    C{zone}, or this host's local zone when L{None}) in the year that makes
    it the latest not more than a month after C{received}.

    @return: microseconds since the epoch of the whole second.
    @raise ValueError: for an impossible date or time.
    """
    receivedSeconds = received // 1_000_000
    if zone is None:
        year = time.localtime(receivedSeconds).tm_year
    else:
        year = datetime.fromtimestamp(receivedSeconds, zone).year
    if not (hour < 24 and minute < 60 and second < 61 and 1 <= day):
        raise ValueError("time out of range")

    def epoch(year: int) -> int:
        if month == 2 and day == 29:
            # Feb 29 outside a leap year: the previous leap year is meant.
            while not calendar.isleap(year):
                year -= 1
        if day > calendar.monthrange(year, month)[1]:
            raise ValueError("day out of range")
        if zone is None:
            return int(time.mktime((year, month, day, hour, minute, second, 0, 0, -1)))
        return datetimeToMicros(datetime(year, month, day, hour, minute, second, tzinfo=zone)) // 1_000_000

    seconds = epoch(year)
    if seconds - receivedSeconds > 31 * 86400:
        # A December message received in January of the next year.
        seconds = epoch(year - 1)
    return seconds * 1_000_000


def parse3164(text: str, peer: str, received: int, *, zone: tzinfo | None = None) -> Record:
    """
    Parse an RFC 3164 (BSD) message, already decoded, as leniently as
    rsyslog: a missing timestamp means receive time (and then no hostname
    either: Python's SysLogHandler writes C{<PRI>ident message}); a first
    word that ends in C{:} or holds C{[} is a TAG, not a hostname.

    @param zone: the senders' time zone for year-less timestamps; L{None}
        means this host's local zone.
    @raise SyslogError: when the PRI is missing or over 191, or the
        timestamp names an impossible date or time.
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
        monthName, day, hour, minute, second, fraction, iso = stamp.groups()
        if iso is not None:
            ts = rfc3339Micros(iso)
        else:
            month = _MONTHS.get(monthName)
            if month is None:
                stamp = None
            else:
                try:
                    cached = _stampCache[(month, day, hour, minute, second, received // 86_400_000_000, zone)]
                except (ValueError, OverflowError):
                    raise SyslogError(f"bad timestamp {stamp.group(0).strip()!r}") from None
                ts = cached + int(fraction[1:].ljust(6, "0")) if fraction else cached
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
    return commonSyslog(text, peer, received, zone) or parseSyslogText(text, peer, received, zone=zone)


def commonSyslog(text: str, peer: str, received: int, zone: tzinfo | None = None) -> Record | None:
    """
    L{parseSyslog}'s record of a decoded message in one of the shapes nearly
    every sender writes, each read by one regular expression and without a
    dictionary (L{_common5424}, L{_common3164}); L{None} for anything else,
    for the general way (L{parseSyslogText}), which gives the same record for
    what this settles (tests.test_formats_syslog holds them to that).
    """
    if _fastCommon is not None:
        record = _fastCommon(text, peer, received, zone)
        if record is not None:
            return record
    match = _COMMON_5424.match(text)
    if match is not None:
        return _common5424(match, peer, received)
    match = _COMMON_3164.match(text)
    if match is not None:
        return _common3164(match, text, peer, received, zone)
    return None


def parseSyslogText(text: str, peer: str, received: int, *, zone: tzinfo | None = None) -> Record:
    """
    L{parseSyslog} of a decoded message, the general way: every shape the
    parser knows, each step on its own.  L{parseSyslog} reaches the same
    records faster for the common shapes; this is the reference they are
    tested against.
    """
    try:
        match = _HEADER_5424.match(text)
        if match is not None:
            return _from5424(match, text, peer, received)
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


# The common RFC 5424 message in one expression: an RFC 3339 timestamp with
# "T" and "Z" in upper case (or NILVALUE), printable ASCII words (as the RFC
# asks), and STRUCTURED-DATA that is NILVALUE or one element of one to four
# parameters, one space apart.  PROCID, MSGID, SD names and values hold
# nothing JSON escapes (quote, backslash, control characters), so the
# fields' JSON text can be written as it is, without a dictionary.
_COMMON_SD_NAME = r'([^ =\]"\\\x00-\x1f]+)'
_COMMON_SD_PARAM = " " + _COMMON_SD_NAME + r'="([^"\\\x00-\x1f]*)"'
_COMMON_5424 = re.compile(
    r"<([0-9]{1,3})>1 "
    r"(?:-|([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2}))"
    r" ([!-~]+) ([!-~]+) ([!#-\[\]-~]+) ([!#-\[\]-~]+) "
    r"(?:-|\[" + _COMMON_SD_NAME + _COMMON_SD_PARAM + f"(?:{_COMMON_SD_PARAM})?" * 3 + r"\])"
    # Then the end, or a space, an optional BOM and the MSG (taken here, not
    # sliced after the match: a slice and a call less per message).
    "(?: \ufeff?(.*))?\\Z",
    re.DOTALL,
)

#: C{{"facility":"NAME"} without its closing brace, by PRI.
_FACILITY_JSON: tuple[str, ...] = tuple(
    '{"facility":"' + FACILITY_NAMES[priority >> 3] + '"' for priority in range(MAX_PRI + 1)
)

#: A PRI as written without leading zeros (C{"0"} to C{"191"}): its severity
#: and L{_FACILITY_JSON}, one lookup where C{int()} and two more steps were.
#: Another spelling (C{"013"}, C{"192"}) goes the general way.
_PRI_PARTS: dict[str, tuple[int, str]] = {
    str(priority): (priority & 7, _FACILITY_JSON[priority]) for priority in range(MAX_PRI + 1)
}


def _common5424(match: re.Match[str], peer: str, received: int) -> Record | None:
    """
    The record of an RFC 5424 message L{_COMMON_5424} matched, or L{None}
    for the general way to decide (a PRI over 191 or with leading zeros, an
    impossible timestamp, a repeated SD parameter).
    """
    (
        pri, seconds, fraction, offset, host, app, procid, msgid,
        sdID, name1, value1, name2, value2, name3, value3, name4, value4, message,
    ) = match.groups()  # fmt: skip
    parts = _PRI_PARTS.get(pri)
    if parts is None:
        return None
    severity, facility = parts
    if seconds is None:
        ts = received
    else:
        try:
            ts = _secondsCache[seconds + offset]
        except (ValueError, OverflowError):
            return None
        if fraction is not None:
            ts += int(fraction) if len(fraction) == 6 else int(fraction[:6].ljust(6, "0"))
    message = "" if message is None else message.rstrip("\r\n\x00")
    if procid == "-":
        fields = facility if msgid == "-" else f'{facility},"msgid":"{msgid}"'
    elif msgid == "-":
        fields = f'{facility},"procid":"{procid}"'
    else:
        fields = f'{facility},"procid":"{procid}","msgid":"{msgid}"'
    if sdID is not None:
        if name2 is None:
            fields += f',"{sdID}.{name1}":"{value1}"'
        elif name3 is None:
            if name1 == name2:
                return None
            fields += f',"{sdID}.{name1}":"{value1}","{sdID}.{name2}":"{value2}"'
        else:
            # A repeated parameter is a list: the general way writes it.
            params = [(name1, value1), (name2, value2), (name3, value3)]
            if name4 is not None:
                params.append((name4, value4))
            if len({name for name, _ in params}) < len(params):
                return None
            fields += "".join([f',"{sdID}.{name}":"{value}"' for name, value in params])
    return _newRecord(
        Record,
        (ts, received, severity, peer if host == "-" else host, "" if app == "-" else app, message, fields + "}"),
    )


# The common RFC 3164 shape in one expression: PRI, "Mmm dd hh:mm:ss", a
# HOSTNAME (a word that is not a TAG: no "[", not ending in ":"), then the
# TAG as L{_TAG} reads it, when there is one.
_COMMON_3164 = re.compile(
    r"<([0-9]{1,3})>([A-Z][a-z]{2}) {1,2}([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})? "
    r"([^ \[]*[^ \[:]) "
    r"(?:" + _TAG.pattern + r")?"
)


def _common3164(
    match: re.Match[str], text: str, peer: str, received: int, zone: tzinfo | None
) -> Record | None:
    """
    The record of an RFC 3164 message that L{_COMMON_3164} matched, or
    L{None} for the general way to decide (a PRI over 191 or with leading
    zeros, a month or time that is not one).
    """
    pri, monthName, day, hour, minute, second, fraction, host, tag, procid = match.groups()
    parts = _PRI_PARTS.get(pri)
    month = _MONTHS.get(monthName)
    if parts is None or month is None:
        return None
    severity, facility = parts
    try:
        ts = _stampCache[(month, day, hour, minute, second, received // 86_400_000_000, zone)]
    except (ValueError, OverflowError):
        return None
    if fraction:
        ts += int(fraction[1:].ljust(6, "0"))
    fields: str | None
    if not procid:
        fields = facility + "}"
    elif procid.isdigit():
        fields = f'{facility},"procid":"{procid}"}}'
    else:
        fields = dumpFields({"facility": FACILITY_NAMES[int(pri) >> 3], "procid": procid})
    return _newRecord(
        Record,
        (ts, received, severity, host, tag or "", _stripMessage(text[match.end() :]), fields),
    )


# The C version of the common shapes (L{_common5424}, L{_common3164}) when
# logsvc._speedups is built: a fifth of their time, and L{None} wherever it
# is not sure (then they decide).
_fastCommon: Callable[[str, str, int, tzinfo | None], Record | None] | None = None
if speedups.module is not None:
    speedups.module.configure(Record, _FACILITY_JSON, _MONTHS, _stampCache)
    _fastCommon = speedups.module.commonSyslog


def looksLikeSyslog(data: bytes) -> bool:
    """
    @return: True when C{data} starts with a syntactically valid C{<PRI>}
        (one to three digits), whatever its value.
    """
    return _PRI_BYTES.match(data) is not None


_PRI_BYTES = re.compile(rb"<\d{1,3}>")
