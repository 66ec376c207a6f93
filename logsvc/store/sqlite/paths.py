# -*- test-case-name: tests.test_store_sqlite -*-
"""
Whether the files of a SQLite store can be used, said before opening them
(SQLite itself says only "unable to open database file"), so a mistake in
C{--db} is one line at start naming what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import stat

#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def unusablePath(path: str) -> str | None:
    """
    Check the database file C{path} and its directory (SQLite keeps its
    C{-wal} and C{-shm} files beside it, so the directory must be writable
    even when the file exists).  Blocking: a few C{stat} calls and a
    16-byte read, once at start.

    @return: what is wrong, one line, or L{None} when nothing was found.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return f"{directory} is not a directory"
    except FileNotFoundError:
        return f"directory {directory} does not exist"
    except PermissionError:
        return f"no permission to reach directory {directory}"
    if os.path.isdir(path):
        return "is a directory, not a database file"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable (SQLite keeps the database's -wal and -shm files there)"
    if os.path.exists(path):
        if not os.access(path, os.R_OK):
            return "no permission to read it"
        if not os.access(path, os.W_OK):
            return "read-only: no permission to write it"
        if os.path.getsize(path) > 0:
            with open(path, "rb") as f:
                if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                    return "not an SQLite database"
    return None


def describeOpenError(error: BaseException) -> str:
    """
    @return: why SQLite could not open or set up a database, one line.
    """
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, sqlite3.DatabaseError):
        if "not a database" in text:
            return "not an SQLite database"
        if "readonly" in text:
            return "read-only: SQLite cannot write it"
    return text
