"""
A PostgreSQL database of its own for a test: made on the server named by
C{LOGSVC_TEST_POSTGRESQL} (a libpq URL where tests may C{CREATE DATABASE}),
dropped at cleanup.  Without the variable, the test skips naming what to
install and run (C{.ci/run} makes a throwaway cluster and sets it).
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from typing import Any

from twisted.trial.unittest import SkipTest

ENVIRONMENT = "LOGSVC_TEST_POSTGRESQL"

SKIP_REASON = (
    f"{ENVIRONMENT} is not set: install PostgreSQL (apt-get install postgresql) and the driver"
    " (pip install 'logsvc[postgresql]'), or run .ci/run, which starts a throwaway server and sets it"
)


def serverURL() -> str:
    """
    @return: the test server's URL.
    @raise SkipTest: when there is none, or no driver.
    """
    url = os.environ.get(ENVIRONMENT)
    if not url:
        raise SkipTest(SKIP_REASON)
    from logsvc.store.postgres import missingDriver

    missing = missingDriver()
    if missing is not None:
        raise SkipTest(missing)
    return url


def withDatabase(url: str, name: str) -> str:
    """
    @param url: a libpq URL (C{postgresql://...}).
    @return: C{url} naming database C{name} instead.
    """
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def makeDatabase(testCase: Any) -> str:
    """
    Create a uniquely named database for C{testCase}, dropped (with any
    connection still open to it) at its cleanup.

    @return: its libpq connection string.
    """
    import psycopg

    url = serverURL()
    name = f"logsvc_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    testCase.addCleanup(drop)
    return withDatabase(url, name)
