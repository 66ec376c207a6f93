"""Tests for L{logsvc.formats.syslog}: RFC 5424 and RFC 3164 parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats import syslog
from logsvc.formats.detect import parseLine, parseLines
from logsvc.formats.syslog import (
    _COMMON_3164,
    _COMMON_5424,
    _common3164,
    _common5424,
    facilityName,
    parseSyslog,
    parseSyslogText,
)
from logsvc.record import Record
from tests.speedups import requireSpeedups

RECEIVED = 1_795_000_000_000_000  # 2026-11-18T08:26:40Z



def micros(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


def parse(data: bytes) -> Record:
    return parseSyslog(data, "10.0.0.9", RECEIVED, zone=UTC)


def fieldsOf(record: Record) -> dict:
    return orjson.loads(record.fields) if record.fields else {}


class RFC5424Tests(SynchronousTestCase):
    """
    RFC 5424 messages, including the RFC's own examples.
    """

    def test_rfcExampleWithStructuredData(self) -> None:
        """
        The RFC's example 3 maps PRI, timestamp, host, app, msgid and every SD
        parameter, and drops the BOM before the message.
        """
        record = parse(
            b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"] \xef\xbb\xbfAn application event log entry'
        )
        self.assertEqual(record.ts, micros("2003-10-11T22:14:15.003+00:00"))
        self.assertEqual(record.received, RECEIVED)
        self.assertEqual(record.level, 5)
        self.assertEqual(record.source, "mymachine.example.com")
        self.assertEqual(record.service, "evntslog")
        self.assertEqual(record.message, "An application event log entry")
        self.assertEqual(
            fieldsOf(record),
            {
                "facility": "local4",
                "msgid": "ID47",
                "exampleSDID@32473.iut": "3",
                "exampleSDID@32473.eventSource": "Application",
                "exampleSDID@32473.eventID": "1011",
                "examplePriority@32473.class": "high",
            },
        )

    def test_offsetAndProcid(self) -> None:
        """
        A numeric offset is applied and PROCID goes into fields.
        """
        record = parse(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - It's time."
        )
        self.assertEqual(record.ts, micros("2003-08-24T12:14:15.000003+00:00"))
        self.assertEqual(fieldsOf(record), {"facility": "local4", "procid": "8710"})
        self.assertEqual(record.message, "It's time.")

    def test_nilValues(self) -> None:
        """
        NILVALUEs mean receive time, the peer as source, no service.
        """
        record = parse(b"<14>1 - - - - - - hello")
        self.assertEqual(
            record, Record(RECEIVED, RECEIVED, 6, "10.0.0.9", "", "hello", '{"facility":"user"}')
        )

    def test_noMessage(self) -> None:
        """
        A message may end right after the structured data.
        """
        self.assertEqual(parse(b"<14>1 - h app - - -").message, "")
        self.assertEqual(parse(b"<14>1 - h app - - [a@1 b=\"c\"]").message, "")

    def test_escapesAndRepeatedParams(self) -> None:
        """
        Escaped quote, backslash and bracket are unescaped; a repeated
        parameter becomes a list; an element without parameters is true.
        """
        record = parse(b'<13>1 - - - - - [empty@1][o@1 ip="1" ip="2" q="a\\"b\\\\c\\]d"] m')
        self.assertEqual(
            fieldsOf(record),
            {"facility": "user", "empty@1": True, "o@1.ip": ["1", "2"], "o@1.q": 'a"b\\c]d'},
        )
        self.assertEqual(record.message, "m")

    def test_multilineMessageAndTrailers(self) -> None:
        """
        A message keeps inner newlines; a trailing LF, CRLF or NUL is dropped.
        """
        self.assertEqual(parse(b"<14>1 - - - - - - a\nb\r\n").message, "a\nb")
        self.assertEqual(parse(b"<14>1 - - - - - - a\x00").message, "a")

    def test_invalidUTF8Kept(self) -> None:
        """
        Invalid UTF-8 in the message is kept as replacement characters.
        """
        self.assertEqual(parse(b"<14>1 - - - - - - caf\xe9").message, "caf\ufffd")

    def test_priOver191(self) -> None:
        """
        A PRI over 191 is stored whole as plain text with the reason.
        """
        record = parse(b"<192>1 - host app - - - x")
        self.assertEqual(record.message, "<192>1 - host app - - - x")
        self.assertEqual(record.level, 6)
        self.assertEqual(record.source, "10.0.0.9")
        self.assertIn("191", fieldsOf(record)["syslog_error"])

    def test_truncatedStructuredData(self) -> None:
        """
        Truncated structured data is stored whole as plain text with the reason.
        """
        for data in (b'<14>1 - h a - - [id@1 k="v', b"<14>1 - h a - - [id@1", b"<14>1 - h a - - [x"):
            record = parse(data)
            self.assertEqual(record.message, data.decode())
            self.assertIn("structured data", fieldsOf(record)["syslog_error"])

    def test_badTimestamp(self) -> None:
        """
        An impossible RFC 5424 date is stored as plain text with the reason.
        """
        record = parse(b"<14>1 2003-13-45T99:00:00Z h a - - - x")
        self.assertIn("timestamp", fieldsOf(record)["syslog_error"])
        self.assertEqual(record.message, "<14>1 2003-13-45T99:00:00Z h a - - - x")


class RFC3164Tests(SynchronousTestCase):
    """
    RFC 3164 (BSD) messages as logger, rsyslog and Python write them.
    """

    def test_rfcExample(self) -> None:
        """
        The RFC's first example: year-less stamp, host, tag, message.
        """
        record = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick")
        self.assertEqual(record.ts, micros("2026-10-11T22:14:15+00:00"))
        self.assertEqual(record.level, 2)
        self.assertEqual(record.source, "mymachine")
        self.assertEqual(record.service, "su")
        self.assertEqual(record.message, "'su root' failed for lonvick")
        self.assertEqual(fieldsOf(record), {"facility": "auth"})

    def test_tagWithPid(self) -> None:
        """
        C{tag[pid]:} gives the service and the procid; a space-padded day works.
        """
        record = parse(b"<13>Nov  2 07:03:12 host cron[123]: hello world")
        self.assertEqual(record.ts, micros("2026-11-02T07:03:12+00:00"))
        self.assertEqual((record.service, record.message), ("cron", "hello world"))
        self.assertEqual(fieldsOf(record), {"facility": "user", "procid": "123"})

    def test_decemberInJanuary(self) -> None:
        """
        A December stamp received in early January belongs to the previous year.
        """
        january = micros("2027-01-01T00:00:05+00:00")
        record = parseSyslog(b"<13>Dec 31 23:59:59 h t: x", "p", january, zone=UTC)
        self.assertEqual(record.ts, micros("2026-12-31T23:59:59+00:00"))

    def test_zoneApplied(self) -> None:
        """
        The year-less time is read in the given zone.
        """
        zone = timezone(timedelta(hours=2))
        record = parseSyslog(b"<13>Nov 18 10:00:00 h t: x", "p", RECEIVED, zone=zone)
        self.assertEqual(record.ts, micros("2026-11-18T08:00:00+00:00"))

    def test_localZoneDefault(self) -> None:
        """
        Without a zone, the host's local time is used (as rsyslog does).
        """
        record = parseSyslog(b"<13>Nov 18 10:00:00 h t: x", "p", RECEIVED)
        expected = datetime(2026, 11, 18, 10, 0, 0).astimezone()
        self.assertEqual(record.ts, int(expected.timestamp()) * 1_000_000)

    def test_noHostname(self) -> None:
        """
        A first word that is a tag is not taken for the hostname.
        """
        record = parse(b"<13>Nov 18 10:00:00 app[7]: x y")
        self.assertEqual((record.source, record.service, record.message), ("10.0.0.9", "app", "x y"))

    def test_pythonSysLogHandler(self) -> None:
        """
        What Python's SysLogHandler writes (no stamp, no host, NUL at the end).
        """
        record = parse(b"<11>myapp: it broke\x00")
        self.assertEqual(
            (record.ts, record.level, record.source, record.service, record.message),
            (RECEIVED, 3, "10.0.0.9", "myapp", "it broke"),
        )
        self.assertEqual(parse(b"<14>just words here").message, "just words here")

    def test_highPrecisionStamp(self) -> None:
        """
        rsyslog's RFC 3339 stamp in the 3164 position is honoured.
        """
        record = parse(b"<30>2026-11-18T09:00:00.123456+01:00 web nginx: GET /")
        self.assertEqual(record.ts, micros("2026-11-18T08:00:00.123456+00:00"))
        self.assertEqual((record.source, record.service, record.level), ("web", "nginx", 6))
        self.assertEqual(fieldsOf(record)["facility"], "daemon")

    def test_priOver191(self) -> None:
        """
        A 3164 PRI over 191 is plain text with the reason, not lost.
        """
        record = parse(b"<999>Nov 18 10:00:00 h t: x")
        self.assertEqual(record.message, "<999>Nov 18 10:00:00 h t: x")
        self.assertIn("syslog_error", fieldsOf(record))


class FacilityTests(SynchronousTestCase):
    """
    Facility names.
    """

    def test_names(self) -> None:
        """
        Facilities 0, 4, 16 and 23 have their usual names.
        """
        self.assertEqual(
            [facilityName(n) for n in (0, 4, 16, 23)], ["kern", "auth", "local0", "local7"]
        )


class DetectTests(SynchronousTestCase):
    """
    L{logsvc.formats.detect} sends C{<PRI>} lines to the syslog parser.
    """

    def test_syslogLine(self) -> None:
        """
        A syslog line in a batch becomes a syslog record; CR is dropped first.
        """
        records, rejected = parseLines([b"<11>1 - h app - - - boom\r", b"plain"], "p", RECEIVED)
        self.assertEqual(rejected, [])
        self.assertEqual(
            [(r.level, r.source, r.service, r.message) for r in records],
            [(3, "h", "app", "boom"), (6, "p", "", "plain")],
        )

    def test_notAPri(self) -> None:
        """
        A line starting with C{<} but no PRI is plain text without an error field.
        """
        record = parseLine(b"<html>", "p", RECEIVED)
        self.assertEqual((record.message, record.fields), ("<html>", None))

    @given(st.binary(max_size=200))
    def test_neverRaises(self, tail: bytes) -> None:
        """
        Whatever follows a PRI, the parser returns a record holding the text.
        """
        record = parseSyslog(b"<13>" + tail, "p", RECEIVED, zone=UTC)
        self.assertIsInstance(record, Record)

    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50))
    def test_messageRoundTrip(self, message: str) -> None:
        """
        An RFC 5424 message comes back unchanged, but for trailing CR/LF/NUL
        and a leading BOM.
        """
        record = parse(b"<14>1 - - - - - - " + message.encode())
        self.assertEqual(record.message, message.removeprefix("\ufeff").rstrip("\r\n\x00"))


#: Characters that decide between the common shapes and the general way:
#: separators, what JSON escapes, what SD syntax means, non-ASCII.
_TRICKY = st.sampled_from(list(' "\\[]=:-.\t\n\r\x00\x01\x1f\x7f\ufeff\u00e9\u0663\u00b2\u2003'))
_SIMPLE_WORD = st.text(alphabet=st.sampled_from("abcXYZ019-_.@/"), min_size=1, max_size=6)
# Mostly what the common shapes take, so that both ways are compared often.
_WORD = st.one_of(
    st.just("-"),
    _SIMPLE_WORD,
    _SIMPLE_WORD,
    st.text(alphabet=st.one_of(st.sampled_from("ab1"), _TRICKY), min_size=0, max_size=6),
)
# Mostly valid, so that most stamps are read.
_DIGITS = st.one_of(st.integers(0, 59), st.integers(0, 59), st.integers(0, 99)).map(lambda n: f"{n:02d}")


@st.composite
def _stamps5424(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["nil", "utc", "utc", "offset", "offset", "odd", "any"]))
    if kind == "nil":
        return "-"
    if kind == "any":
        return draw(st.text(max_size=30))
    year = draw(st.integers(1970, 2100) | st.integers(1, 9999))
    date = f"{year:04d}-{draw(st.integers(1, 12) | st.integers(0, 13)):02d}-{draw(st.integers(1, 28) | st.integers(0, 32)):02d}"
    clock = f"{draw(st.integers(0, 23) | st.integers(0, 25)):02d}:{draw(_DIGITS)}:{draw(_DIGITS)}"
    fraction = draw(
        st.just("")
        | st.text(alphabet="0123456789", min_size=1, max_size=9).map(lambda f: "." + f)
        | st.text(alphabet="0123456789", min_size=0, max_size=11).map(lambda f: "." + f)
    )
    if kind == "utc":
        zone = "Z"
    elif kind == "offset":
        zone = draw(st.sampled_from("+-")) + f"{draw(st.integers(0, 14) | st.integers(0, 25)):02d}:{draw(_DIGITS)}"
    else:
        zone = draw(st.sampled_from(["z", "", "+0100", "+01:00:00", "Z "]))
    separator = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    return date + separator + clock + fraction + zone


@st.composite
def _structuredData(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["nil", "elements", "elements", "elements", "any"]))
    if kind == "nil":
        return "-"
    if kind == "any":
        return draw(st.text(max_size=20))
    elements = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        params = []
        for _ in range(draw(st.integers(0, 5))):
            name = draw(st.sampled_from(["id", "path", "k", "id", "path", "k", "a b", "x=y"]))
            value = draw(
                st.text(alphabet=st.sampled_from("v1/ ]["), max_size=6)
                | st.text(alphabet=st.one_of(st.sampled_from("v1/ "), _TRICKY), max_size=6)
            )
            params.append(f"{draw(st.sampled_from([' ', ' ', ' ', '  ']))}{name}=\"{value}\"")
        sdID = draw(st.sampled_from(["req@32473", "meta", "req@32473", "meta", "a\"b", "x\\y", "\u00e9t\u00e9"]))
        elements.append(f"[{sdID}{''.join(params)}{draw(st.sampled_from(['', '', '', ' ']))}]")
    return "".join(elements)


@st.composite
def _messages5424(draw: st.DrawFn) -> bytes:
    pri = draw(st.one_of(st.integers(0, 191), st.integers(192, 999)).map(str) | st.just("\u0661\u0664"))
    version = draw(st.sampled_from(["1", "1", "1", "1", "2"]))
    header = " ".join([draw(_stamps5424()), *(draw(_WORD) for _ in range(4)), draw(_structuredData())])
    tail = draw(st.sampled_from(["", " ", " ", " ", "  ", "x"])) + draw(st.text(max_size=12))
    ending = draw(st.sampled_from(["", "\n", "\r\n", "\x00"]))
    return f"<{pri}>{version} {header}{tail}{ending}".encode()


@st.composite
def _messages3164(draw: st.DrawFn) -> bytes:
    pri = draw(st.one_of(st.integers(0, 191), st.integers(192, 999)).map(str))
    month = draw(st.sampled_from(["Jan", "Feb", "Nov", "Dec", "Jan", "Feb", "Nov", "Dec", "Foo", "nov"]))
    day = draw(st.integers(0, 33))
    padding = draw(st.sampled_from([" ", " ", "  ", "   "]))
    clock = f"{draw(st.integers(0, 23) | st.integers(0, 25)):02d}:{draw(_DIGITS)}:{draw(_DIGITS)}"
    fraction = draw(st.sampled_from(["", "", ".5", ".123456", ".1234567"]))
    host = draw(_WORD | st.sampled_from(["web-1", "web-1", "app:", "app[1]:", ""]))
    tag = draw(st.sampled_from(["cron[123]:", "cron:", "cron[]:", "cron[a b]:", "su", "x[\u00e9]:", "a\"b[1\\]:", ""]))
    message = draw(st.text(max_size=12))
    return f"<{pri}>{month}{padding}{day}{padding[1:]} {clock}{fraction} {host} {tag} {message}".encode()


class CommonShapeTests(SynchronousTestCase):
    """
    L{parseSyslog} reads the common RFC 5424 and RFC 3164 shapes with one
    regular expression and no dictionary; every record it makes so is the
    record the general way (L{parseSyslogText}) makes.
    """

    def assertSameAsGeneral(self, data: bytes) -> None:
        """
        C{data} parses to the general way's record: through the C version
        of the common shapes when it is built, and through the Python one.
        """
        fast = syslog._fastCommon
        for zone in (UTC, None):
            expected = parseSyslogText(data.decode("utf-8", "replace"), "10.0.0.9", RECEIVED, zone=zone)
            for version in {fast, None}:
                syslog._fastCommon = version
                try:
                    self.assertEqual(parseSyslog(data, "10.0.0.9", RECEIVED, zone=zone), expected)
                finally:
                    syslog._fastCommon = fast

    def test_commonShapesTaken(self) -> None:
        """
        What rsyslog, logger and the senders' benchmarks write takes the
        common way, and gives the general way's record.
        """
        for data in (
            b"<187>1 2026-11-22T10:00:00.000400+01:00 node-02 queue 9376 ID0 - GET /login answered 404",
            b'<190>1 2026-11-22T10:00:00Z node-07 web 5678 ID1 [req@32473 id="1" path="/search"] GET /',
            b'<13>1 2026-11-22T10:00:00.1Z h a - - [o@1 a="1" b="" c="\xc3\xa9" d="x]y"]',
            b"<14>1 - - - - - - hello",
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - It's time.",
        ):
            text = data.decode()
            match = _COMMON_5424.match(text)
            assert match is not None, data
            self.assertIsNotNone(_common5424(match, "p", RECEIVED), data)
            self.assertSameAsGeneral(data)
        for data in (
            b"<13>Nov  2 07:03:12 host cron[123]: hello world",
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick",
            b"<30>Nov 22 10:00:00.123 web nginx hello",
        ):
            text = data.decode()
            match = _COMMON_3164.match(text)
            assert match is not None, data
            self.assertIsNotNone(_common3164(match, text, "p", RECEIVED, UTC), data)
            self.assertSameAsGeneral(data)

    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_messages5424())
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 k="1" k="2"] m')
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 a="1" k="2" k="3"] m')
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 k="1" a="1" b="3" k="3"] m')
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 a="1" b="2" c="3" d="4" e="5"] m')
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 a="1"][p@2 b="2"] m')
    @example(b'<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 a="1"]m')
    @example(b"<14>1 2026-11-22T10:00:00Z h a 1 M -m")
    @example(b"<14>1 2026-11-22T10:00:00Z h a 1 M -\r\nm")
    @example(b"<14>1 2026-02-30T10:00:00Z h a 1 M - m")
    @example(b"<14>1 2026-11-22T10:00:00.1234567891Z h a 1 M - m")
    @example(b"<192>1 2026-11-22T10:00:00Z h a 1 M - m")
    @example(b"<013>1 2026-11-22T10:00:00Z h a 1 M - m")
    @example(b"<14>1 2026-11-22T10:00:00Z h a 1 M - \xef\xbb\xbfm\r\n\x00")
    @example(b"<14>1 2026-11-22T10:00:00Z h a 1 M - \xef\xbb\xbf")
    @example(b"<14>1 2026-11-22T10:00:00Z h a 1 M [o@1 a=\"1\"] ")
    def test_rfc5424SameAsGeneral(self, data: bytes) -> None:
        """
        Any RFC 5424-like message, well formed or not, gives the general
        way's record.
        """
        self.assertSameAsGeneral(data)

    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_messages3164())
    @example(b"<13>Feb 30 10:00:00 h cron[1]: m")
    @example(b"<13>Nov 22 24:00:00 h cron[1]: m")
    @example(b"<192>Nov 22 10:00:00 h cron[1]: m")
    @example(b"<013>Nov 22 10:00:00 h cron[1]: m")
    @example(b"<13>Nov 22 10:00:00 h: cron[1]: m")
    @example(b"<13>Nov 22 10:00:00 h cron[x\"y]: m")
    def test_rfc3164SameAsGeneral(self, data: bytes) -> None:
        """
        Any RFC 3164-like message, well formed or not, gives the general
        way's record.
        """
        self.assertSameAsGeneral(data)


class CVersionTests(SynchronousTestCase):
    """
    The C version of the common shapes (C{logsvc._speedups.commonSyslog}),
    where it is built: it takes what senders write, and leaves to Python
    what it is not sure of.  (L{CommonShapeTests} holds its records to the
    general way's.)
    """

    def setUp(self) -> None:
        self.fast = requireSpeedups().commonSyslog
        self.assertIs(syslog._fastCommon, self.fast)

    def test_taken(self) -> None:
        """
        The shapes of rsyslog, logger and the senders' benchmark are read
        in C, to the same record as the Python way's.
        """
        for data in (
            b"<187>1 2026-11-22T10:00:00.000400+01:00 node-02 queue 9376 ID0 - GET /login answered 404",
            b'<190>1 2026-11-22T10:00:00Z node-07 web 5678 ID1 [req@32473 id="1" path="/search"] GET /',
            b"<14>1 - - - - - - h\xc3\xa9llo\r\n",
            b"<13>Nov  2 07:03:12 host cron[123]: hello world",
            b"<30>Nov 22 10:00:00.123 web nginx[]: hello",
        ):
            text = data.decode()
            record = self.fast(text, "10.0.0.9", RECEIVED, UTC)
            self.assertIsNotNone(record, data)
            self.assertIs(type(record), Record)
            self.assertEqual(record, parseSyslogText(text, "10.0.0.9", RECEIVED, zone=UTC))

    def test_leftToPython(self) -> None:
        """
        What the C version is not sure of, it leaves to Python (L{None}):
        text beyond Latin-1, a message without a TAG, fields longer than its
        buffer, a repeated SD parameter, an offset datetime reads its own way.
        """
        for text in (
            "<14>1 2026-11-22T10:00:00Z h a - - - \u2603",
            "<14>1 2026-11-22T10:00:00Z h a - - - \ufeffm",
            "<13>Nov 22 10:00:00 host message without a tag",
            '<14>1 2026-11-22T10:00:00Z h a - - [o@1 k="' + "v" * 3000 + '"] m',
            '<14>1 2026-11-22T10:00:00Z h a - - [o@1 k="1" k="2"] m',
            "<14>1 2026-11-22T10:00:00+01:75 h a - - - m",
            "<13>Nov 22 10:00:00 h cron[x]: m",
            "<14>1 0999-11-22T10:00:00Z h a - - - m",
        ):
            self.assertIsNone(self.fast(text, "10.0.0.9", RECEIVED, UTC), text)
            # And Python reads it as the general way does.
            self.assertEqual(
                parseSyslog(text.encode(), "10.0.0.9", RECEIVED, zone=UTC),
                parseSyslogText(text, "10.0.0.9", RECEIVED, zone=UTC),
            )

    def test_badArguments(self) -> None:
        """
        Arguments of the wrong type are a TypeError, not a crash.
        """
        self.assertRaises(TypeError, self.fast, b"<14>1 - - - - - -", "p", RECEIVED, UTC)
        self.assertRaises(TypeError, self.fast, "<14>1 - - - - - -", "p", 1.5, UTC)
        self.assertRaises(TypeError, self.fast, "<14>1 - - - - - -")
