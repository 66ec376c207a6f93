"""
Python's C{logging.handlers.HTTPHandler}: a form-encoded POST of a
C{LogRecord}'s attributes (C{urlencode(record.__dict__)}, so every value
arrives as C{str()} of the attribute).

  - message: C{message} when a formatter already set it, else C{msg % args}
    (C{args} arrives as the repr of a tuple or dict and is read back with
    L{ast.literal_eval}; when that fails, C{msg} as sent);
  - level: C{levelname} (else C{levelno}; a name that is no level: info,
    the name kept in C{fields["level"]}); service: C{name};
    ts: C{created} (epoch seconds); source: the peer address;
  - fields: every other attribute except C{msecs} (part of C{created}) and
    attributes whose value is C{"None"}; C{lineno}, C{process} and C{thread}
    as integers, C{relativeCreated} as a number.
"""

from __future__ import annotations

import ast
from typing import Any
from urllib.parse import parse_qsl

from logsvc.record import Record, RecordError, dumpFields, keptLevel, parseTimestamp

_CONSUMED = frozenset(("msg", "args", "message", "levelname", "levelno", "name", "created", "msecs"))
_INTEGERS = frozenset(("lineno", "process", "thread"))
_NUMBERS = frozenset(("relativeCreated",))


def _formatMessage(msg: str, args: str | None) -> str:
    """
    Rebuild C{msg % args} from the repr HTTPHandler sent for C{args}.
    """
    if not args or args in ("()", "None", "{}"):
        return msg
    try:
        values = ast.literal_eval(args)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return msg
    if isinstance(values, list):
        values = tuple(values)
    try:
        return msg % values
    except (TypeError, ValueError, KeyError):
        return msg


def _number(value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


def parsePythonForm(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a form-encoded body sent by Python's HTTPHandler into one record.

    @raise RecordError: when the form is empty, has neither C{msg} nor
        C{message}, or has an invalid time.
    """
    try:
        pairs = parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise RecordError(f"invalid form body: {e}") from None
    form: dict[str, str] = dict(pairs)
    if "msg" not in form and "message" not in form:
        raise RecordError("form has neither 'msg' nor 'message' (expected a LogRecord from HTTPHandler)")
    message = form.get("message")
    if message is None:
        message = _formatMessage(form["msg"], form.get("args"))
    levelText = form.get("levelname") or form.get("levelno")
    created = form.get("created")
    ts = received if not created else parseTimestamp(created, "created")
    fields: dict[str, Any] = {}
    for key, value in form.items():
        if key in _CONSUMED or value == "None":
            continue
        if key in _INTEGERS:
            fields[key] = _number(value, int)
        elif key in _NUMBERS:
            fields[key] = _number(value, float)
        else:
            fields[key] = value
    level = keptLevel(levelText, fields)
    return [Record(ts, received, level, peer, form.get("name", ""), message, dumpFields(fields))]
