"""Database helpers shared by the write paths."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


def prepared_cursor() -> psycopg.Cursor:
    """A server-side binding cursor on Django's connection (same transaction), for the
    statements every batch of fixes runs: executed with prepare=True, they are planned once
    per connection instead of at every batch (their CTEs cost milliseconds to plan), and
    their arrays travel as parameters. Errors are psycopg's own; `pipelined` turns them into
    Django's, as Django's cursors do."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


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
