# -*- test-case-name: tests.test_service -*-
"""
What can go wrong while the service starts, and what it means.

A B{mistake} (a port another process holds, a database path that cannot
work, bad credentials) does not heal by waiting: the component raises
L{StartupError} (or Twisted's C{CannotListenError}) from its
C{privilegedStartService} or C{startService}, and
L{logsvc.service.LogService} ends C{twistd logsvc} with one line naming the
option, the value and the cause::

    --tcp tcp:5140: address already in use

A B{condition that heals by itself} (a database server not reachable yet, a
full disk) is not a mistake: the component raises L{NotReady} instead, and
L{logsvc.service.LogService} starts everything else, reports the component
C{down} in C{/health} with the reason, and calls its C{startService} again
with a growing delay (L{RETRY_DELAYS}) until it starts.  A component that
can run degraded on its own (reconnecting by itself) need not raise at all:
it reports its state through L{logsvc.health} and retries itself.

Both exceptions carry only the cause; the service adds the option and the
value, which it knows from how it built the component.
"""

from __future__ import annotations

import errno
import sys
from types import TracebackType

from twisted.internet.error import CannotListenError

#: Seconds between attempts to start a component that raised L{NotReady}:
#: the first delays, then the last one forever.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


class StartupError(Exception):
    """
    A component cannot start because of how it was configured; C{str(error)}
    is the cause, one line, without the option (C{"address already in
    use"}, C{"directory /x does not exist"}).
    """


class NotReady(Exception):
    """
    A component cannot start yet for a reason that heals by itself;
    C{str(error)} is the reason, one line.  Its start is retried.
    """


class StartupFailed(Exception):
    """
    The process cannot start: C{str(error)} is the one line (option, value,
    cause), already logged.  Raised out of twistd's start, it ends the
    process with status 1; see L{quietStartupFailures}.
    """


def quietStartupFailures() -> None:
    """
    Print nothing for an uncaught L{StartupFailed} (its line is already in
    the log); every other exception goes to the hook in place before.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        if not isinstance(value, StartupFailed):
            previous(kind, value, traceback)

    sys.excepthook = hook


def describeFailure(error: BaseException) -> str | None:
    """
    @return: the one-line cause of a start failure that is a user's
        mistake (L{StartupError}, C{CannotListenError}), or L{None} for
        anything else (a bug, to be reported with its traceback).
    """
    if isinstance(error, StartupError):
        return str(error)
    if isinstance(error, CannotListenError):
        return describeListenError(error)
    return None


def describeListenError(error: CannotListenError) -> str:
    """
    @return: why a port could not be opened, as a person says it
        (C{"address already in use"}, C{"permission denied"}).
    """
    cause = error.socketError
    if isinstance(cause, OSError):
        if cause.errno == errno.EADDRINUSE:
            return "address already in use"
        if cause.errno in (errno.EACCES, errno.EPERM):
            return "permission denied (ports below 1024 need privileges)"
        if cause.errno == errno.EADDRNOTAVAIL:
            return f"address not available on this machine ({error.interface or 'any'})"
        if cause.strerror:
            return cause.strerror.lower()
    return str(cause).strip().rstrip(".").lower() or "cannot listen"
