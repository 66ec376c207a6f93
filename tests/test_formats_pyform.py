"""Tests for L{logsvc.formats.pyform}: Python HTTPHandler forms as plain functions."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.pyform import parsePythonForm
from logsvc.record import RecordError


def form(**attributes: object) -> bytes:
    return urlencode(attributes).encode()


class PythonFormTests(SynchronousTestCase):
    """
    A LogRecord's urlencoded attributes map to one record.
    """

    def test_realLogRecord(self) -> None:
        """
        What HTTPHandler sends for a real LogRecord maps faithfully.
        """
        record = logging.LogRecord("svc.db", logging.ERROR, "/a.py", 7, "%s failed %d times", ("job", 3), None)
        [parsed] = parsePythonForm(urlencode(record.__dict__).encode(), "10.0.0.1", 5)
        self.assertEqual(parsed.level, 3)
        self.assertEqual(parsed.service, "svc.db")
        self.assertEqual(parsed.message, "job failed 3 times")
        self.assertEqual(parsed.source, "10.0.0.1")
        self.assertEqual(parsed.ts, int(round(record.created * 1_000_000)))
        fields = orjson.loads(parsed.fields or "{}")
        self.assertEqual((fields["lineno"], fields["pathname"]), (7, "/a.py"))
        for dropped in ("msg", "args", "levelname", "name", "created", "msecs", "exc_info"):
            self.assertNotIn(dropped, fields)

    def test_formattedMessageWins(self) -> None:
        """
        A C{message} set by a formatter is taken as it is.
        """
        [parsed] = parsePythonForm(form(msg="%s", args="('x',)", message="already x"), "p", 5)
        self.assertEqual(parsed.message, "already x")

    def test_dictArgsAndUnreadableArgs(self) -> None:
        """
        Mapping args are applied; args that are no literal leave msg as sent.
        """
        [named] = parsePythonForm(form(msg="%(n)d items", args="{'n': 4}"), "p", 5)
        self.assertEqual(named.message, "4 items")
        [opaque] = parsePythonForm(form(msg="got %s", args="(<object at 0x1>,)"), "p", 5)
        self.assertEqual(opaque.message, "got %s")
        [mismatch] = parsePythonForm(form(msg="%s and %s", args="('one',)"), "p", 5)
        self.assertEqual(mismatch.message, "%s and %s")

    def test_defaults(self) -> None:
        """
        Without levelname, name and created: info, no service, receive time.
        """
        [parsed] = parsePythonForm(form(msg="hi"), "p", 5)
        self.assertEqual(parsed[:7], (5, 5, 6, "p", "", "hi", None))

    def test_errors(self) -> None:
        """
        A form without msg/message, or with a bad time, is refused.
        """
        self.assertRaises(RecordError, parsePythonForm, form(a=1), "p", 5)
        self.assertRaises(RecordError, parsePythonForm, form(msg="x", created="soon"), "p", 5)

    def test_unknownLevelKept(self) -> None:
        """
        A levelname that is no level keeps the record: info, the name in
        fields.level (this supersedes the old refusal).
        """
        [parsed] = parsePythonForm(form(msg="x", levelname="LOUD"), "p", 5)
        self.assertEqual(parsed.level, 6)
        self.assertEqual(orjson.loads(parsed.fields or "{}"), {"level": "LOUD"})
