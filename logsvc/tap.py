# -*- test-case-name: tests.test_tap -*-
"""
The twistd face of logsvc (Twisted's C{tap} module convention): the
L{Options} C{twistd logsvc} parses and the L{makeService} it calls, both
thin layers over L{logsvc.config} and L{logsvc.service}.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.application.service import IService
from twisted.python import usage

from logsvc import config, service


class Options(config.Options):
    """
    L{config.Options} for twistd: a usage error ends the process with one
    line on standard error (twistd itself would print the whole help
    before it).
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise SystemExit(f"twistd logsvc: {e}") from None


def makeService(options: Options) -> IService:
    """
    @return: the service tree for the parsed C{options}.
    """
    return service.makeService(options.config)
