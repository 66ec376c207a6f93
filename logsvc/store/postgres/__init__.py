"""
The shared store: records in PostgreSQL for several nodes
(C{--db postgresql://...}).  Needs psycopg 3: C{pip install 'logsvc[postgresql]'}.

Modules, leaf first: L{connection} (URL, connections, schema, partitions),
L{search} (words as C{tsvector}, searches as C{tsquery}; pure), L{plan}
(queries as SQL), L{retention} (dropping partitions), L{store}
(L{store.PostgresStore}, the service that owns the threads).  Nothing here
imports psycopg until a module below is imported, so L{missingDriver} can
tell a user without it what to install.
"""

from __future__ import annotations

INSTALL = "pip install 'logsvc[postgresql]'"


def missingDriver() -> str | None:
    """
    @return: a one-line error naming the install command when psycopg 3 is
        not installed, else L{None}.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"--db postgresql://... needs psycopg 3, which is not installed: {INSTALL}"
    return None
