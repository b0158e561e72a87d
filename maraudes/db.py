"""Database helpers shared by the write paths."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    """A server-side binding cursor on Django's connection (same transaction), for the
    statements every batch of fixes runs: executed with prepare=True, they are parsed and
    planned once per connection (their CTEs cost milliseconds to plan; the settings keep
    psycopg's preparing on for them, DB_PREPARED, and plans generic), and their arrays
    travel as parameters, not as SQL text to parse. Database errors come out as Django's
    (django.db.OperationalError...), as from Django's cursors."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield PreparedCursor(cursor)


class PreparedCursor:
    """A psycopg cursor whose statements Django's query log sees, as its own cursors' (DEBUG,
    CaptureQueriesContext in tests)."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params=None, *, prepare: bool = True) -> psycopg.Cursor:
        if not connection.queries_logged:
            return self._cursor.execute(sql, params, prepare=prepare)
        start = time.monotonic()
        try:
            return self._cursor.execute(sql, params, prepare=prepare)
        finally:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})

    def fetchall(self) -> list:
        return self._cursor.fetchall()

    def fetchone(self):
        return self._cursor.fetchone()


@contextmanager
def pipelined() -> Iterator[None]:
    """psycopg's pipeline mode on Django's connection: the statements run in the block through
    `prepared_cursor` are sent without waiting for each other's results; the server runs them
    in order, each with its own snapshot. Results are waited for when a statement's rows are
    fetched, and at the end of the block: a batch of fixes runs its four statements in two
    round trips instead of four (a round trip to PostgreSQL costs 0.3 ms or more on a busy
    2-core machine). Database errors come out as Django's (django.db.OperationalError...)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


# Arrays of a batch go as PostgreSQL array literals (text): several times cheaper than letting
# the driver adapt thousands of Python values one by one (positions_record of 1,000 fixes,
# 40 -> 29 ms).
def pg_array(items: Iterable[str]) -> str:
    """An array literal of items already written as PostgreSQL reads them (pg_quoted text)."""
    return "{" + ",".join(items) + "}"


def pg_floats(values: Iterable[float | None]) -> str:
    return pg_array("NULL" if v is None else repr(float(v)) for v in values)


def pg_ints(values: Iterable[int]) -> str:
    return pg_array(str(int(v)) for v in values)


def pg_quoted(text: str) -> str:
    """A text element of an array literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
