# -*- test-case-name: tests.test_store_postgres -*-
"""
The PostgreSQL database itself: the C{--db} URL (and hiding its password),
opening connections, the schema with its version, and the daily partitions.
A leaf: every other module of the PostgreSQL store imports it, it imports
none of them.

The schema is made or migrated at start under a transaction-scoped advisory
lock, so several nodes starting at once against an empty database take
turns: the first creates, the others find it made.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import psycopg
from psycopg import conninfo

from logsvc.store.rollup import ROLLUPS, rollupKey

#: The schema version this logsvc makes and reads (C{logsvc_meta.version}).
#: Version 2 added the counts per minute (L{logsvc.store.postgres.rollup}).
SCHEMA_VERSION = 2

#: Advisory lock keys (one 64-bit space per database): schema changes and
#: partition making, and retention (one node at a time).
SCHEMA_LOCK = 0x6C6F6773_76630001
RETENTION_LOCK = 0x6C6F6773_76630002

#: The channel a commit notifies, so other nodes' tails wake.
COMMIT_CHANNEL = "logsvc_commits"

#: Microseconds in a day: partitions are days of C{ts}, UTC.
DAY = 86_400_000_000

#: Days of partitions made ahead of today (and one behind).
DAYS_AHEAD = 3

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS logsvc_meta (
        one integer PRIMARY KEY CHECK (one = 1),
        version integer NOT NULL
    )
    """,
    # The commit counter: one row, updated by each committing transaction
    # (see logsvc.store.postgres.store and docs/postgresql.rst).
    """
    CREATE TABLE IF NOT EXISTS logsvc_position (
        one integer PRIMARY KEY CHECK (one = 1),
        last_id bigint NOT NULL
    )
    """,
    "INSERT INTO logsvc_position (one, last_id) VALUES (1, 0) ON CONFLICT DO NOTHING",
    """
    CREATE TABLE IF NOT EXISTS logs (
        id bigint NOT NULL,
        ts bigint NOT NULL,
        received bigint NOT NULL,
        level smallint NOT NULL,
        source text NOT NULL,
        service text NOT NULL,
        message text NOT NULL,
        fields text,
        words tsvector
    ) PARTITION BY RANGE (ts)
    """,
    "CREATE TABLE IF NOT EXISTS logs_default PARTITION OF logs DEFAULT",
    # Paging and time ranges, and a service's newest records.  The level is
    # a key column, not an included one, so that a level filter is an index
    # condition, checked on the index entries: the newest 100 errors of a
    # service fetch 100 rows from the table, not every row of that service
    # walked past to find them (an included column, as the level was, is
    # only read after the row is fetched).
    "DROP INDEX IF EXISTS logs_ts_id",
    "DROP INDEX IF EXISTS logs_service_ts",
    "CREATE INDEX IF NOT EXISTS logs_ts_id_level ON logs (ts, id, level)",
    "CREATE INDEX IF NOT EXISTS logs_service_ts_level ON logs (service, ts, id, level)",
    # Tails and their replay read by id.
    "CREATE INDEX IF NOT EXISTS logs_id ON logs (id)",
    "CREATE INDEX IF NOT EXISTS logs_words ON logs USING gin (words)",
    # The few records whose words do not fit a tsvector, checked in Python.
    "CREATE INDEX IF NOT EXISTS logs_unvectored ON logs (ts) WHERE words IS NULL",
    # The fields as jsonb, NULL where the JSON holds \u0000 (which jsonb
    # refuses): what the fields index holds and field filters look up.
    r"""
    CREATE OR REPLACE FUNCTION logsvc_jsonb(fields text)
    RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN fields IS NULL OR strpos(fields, '\u0000') > 0 THEN NULL ELSE fields::jsonb END
    $$
    """,
    "CREATE INDEX IF NOT EXISTS logs_fields ON logs USING gin (logsvc_jsonb(fields) jsonb_path_ops)",
    # field.KEY=value, with logsvc.query.fieldMatches' meaning; fields whose
    # JSON holds \u0000 (which jsonb refuses) never match.
    r"""
    CREATE OR REPLACE FUNCTION logsvc_field(fields text, key text, expected text, number numeric)
    RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN fields IS NULL OR strpos(fields, '\u0000') > 0 THEN false
        ELSE (SELECT CASE jsonb_typeof(j)
            WHEN 'string' THEN j #>> '{}' = expected
            WHEN 'number' THEN number IS NOT NULL AND (j #>> '{}')::numeric = number
            WHEN 'boolean' THEN j #>> '{}' = expected
            WHEN 'null' THEN expected = 'null'
            ELSE false END
            FROM (SELECT fields::jsonb -> key AS j) AS value)
        END
    $$
    """,
]


#: C{floor(ts / MINUTE)} in SQL, exact (PostgreSQL's integer division
#: truncates toward zero; a time before 1970 floors).
MINUTE_SQL = "floor({ts}::numeric / 60000000)::bigint"

#: The counts per minute and per hour (L{logsvc.store.rollup}).  A lower
#: fill factor leaves room in each page for the writers' updates of the
#: current minute's rows to stay on their page (HOT updates).
ROLLUP_SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS {table} (minute bigint NOT NULL, level smallint NOT NULL,"
    + ("" if column is None else f" {column} text NOT NULL,")
    + f" n bigint NOT NULL, PRIMARY KEY ({rollupKey(column)})) WITH (fillfactor = 70)"
    for table, (column, _) in ROLLUPS.items()
]


def bucketSQL(minute: str, minutes: int) -> str:
    """
    @return: SQL of the first minute of the C{minutes}-long bucket holding
        C{minute} (an SQL expression).
    """
    return minute if minutes == 1 else f"({minute} - (({minute} % {minutes}) + {minutes}) % {minutes})"


#: Fill the counts from the records already stored (a database made before
#: they existed): the records are read once, counted by minute and every
#: key into a temporary table, from which each table's rows are summed.
BACKFILL = [
    *(f"DELETE FROM {table}" for table in ROLLUPS),
    "CREATE TEMPORARY TABLE logsvc_backfill ON COMMIT DROP AS"
    f" SELECT {MINUTE_SQL.format(ts='ts')} AS minute, level, service, source, count(*) AS n"
    " FROM logs GROUP BY 1, 2, 3, 4",
    *(
        f"INSERT INTO {table} ({rollupKey(column)}, n) SELECT {bucketSQL('minute', minutes)}, level,"
        + ("" if column is None else f" {column},")
        + f" sum(n) FROM logsvc_backfill GROUP BY {'1, 2' if column is None else '1, 2, 3'}"
        for table, (column, minutes) in ROLLUPS.items()
    ),
]


def fillCounts(conn: psycopg.Connection[Any]) -> None:
    """
    Count the records stored into the counts per minute afresh (a database
    made before they existed, or filled without logsvc's writer), in the
    current transaction, holding the commit counter so that no commit falls
    between its statements.
    """
    conn.execute("SELECT last_id FROM logsvc_position FOR UPDATE")
    for statement in BACKFILL:
        conn.execute(statement)


def displayURL(url: str) -> str:
    """
    @return: C{url} fit for logs, C{/health} and errors: the password, in the
        URL or its query string, left out.
    """
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return re.sub(r"//[^@/]*@", "//***@", url.split("?", 1)[0])
    user = params.get("user")
    host = params.get("host", "")
    port = params.get("port")
    dbname = params.get("dbname", "")
    text = "postgresql://" + (f"{user}@" if user else "") + str(host) + (f":{port}" if port else "") + f"/{dbname}"
    extra = {k: v for k, v in params.items() if k not in ("user", "host", "port", "dbname", "password")}
    if extra:
        text += "?" + "&".join(f"{k}={v}" for k, v in sorted(extra.items()))
    return text


def scrub(text: str, url: str) -> str:
    """
    @return: C{text} (an error message) with C{url}'s password, if any,
        replaced by C{***}.
    """
    try:
        password = conninfo.conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


def connect(url: str, *, autocommit: bool = False, timeout: float = 10.0) -> psycopg.Connection[Any]:
    """
    Open a connection (libpq reads its environment variables and
    C{~/.pgpass} as ever).  Blocking: call it off the reactor.

    @raise psycopg.OperationalError: when the server cannot be reached.
    """
    conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)),
                           application_name="logsvc")
    return conn


class SchemaError(Exception):
    """
    The database holds a schema this logsvc cannot use.
    """


def createSchema(conn: psycopg.Connection[Any], *, now: int) -> None:
    """
    Create or check the schema and the partitions around C{now}
    (microseconds), under the schema advisory lock.

    @raise SchemaError: when the database was made by a newer logsvc.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        exists = conn.execute("SELECT to_regclass('logsvc_meta') IS NOT NULL").fetchone()
        version = None
        if exists and exists[0]:
            row = conn.execute("SELECT version FROM logsvc_meta").fetchone()
            version = None if row is None else row[0]
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaError(f"database schema version {version} is newer than {SCHEMA_VERSION}")
        for statement in [*_SCHEMA, *ROLLUP_SCHEMA]:
            conn.execute(statement)
        if version is not None and version < 2:
            # Records stored before the counts existed: count them once,
            # holding the commit counter so no commit (of a node still
            # running an older logsvc) falls between the statements.
            fillCounts(conn)
        conn.execute(
            "INSERT INTO logsvc_meta (one, version) VALUES (1, %s)"
            " ON CONFLICT (one) DO UPDATE SET version = excluded.version",
            [SCHEMA_VERSION],
        )
    ensurePartitions(conn, now=now)


def partitionName(day: int) -> str:
    """
    @param day: days since the epoch.
    @return: the name of that day's partition, C{logs_pYYYYMMDD}.
    """
    date = datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
    return f"logs_p{date:%Y%m%d}"


def partitionDay(name: str) -> int | None:
    """
    @return: the day (since the epoch) of a partition named by
        L{partitionName}, or L{None} for another name.
    """
    match = re.fullmatch(r"logs_p(\d{8})", name)
    if match is None:
        return None
    date = datetime.datetime.strptime(match.group(1), "%Y%m%d").date()
    return (date - datetime.date(1970, 1, 1)).days


def ensurePartitions(conn: psycopg.Connection[Any], *, now: int, ahead: int = DAYS_AHEAD) -> list[str]:
    """
    Make the daily partitions from yesterday to C{ahead} days after C{now}
    that are missing, under the schema advisory lock.  A day the default
    partition already holds records of (records that came before their
    day's partition) stays in the default partition.

    @return: the names of the partitions made.
    """
    today = now // DAY
    made = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        existing = {row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'logs\\_p%%'")}
        for day in range(today - 1, today + ahead + 1):
            name = partitionName(day)
            if name in existing:
                continue
            low, high = day * DAY, (day + 1) * DAY
            taken = conn.execute(
                "SELECT 1 FROM logs_default WHERE ts >= %s AND ts < %s LIMIT 1", [low, high]
            ).fetchone()
            if taken:
                continue
            conn.execute(f"CREATE TABLE {name} PARTITION OF logs FOR VALUES FROM ({low}) TO ({high})")
            made.append(name)
    return made
