"""Database helpers shared by the write paths."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
from django.db import connection
from psycopg.adapt import Dumper
from psycopg.pq import Format


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

    def execute(
        self, sql: str, params=None, *, prepare: bool = True, binary: bool = False
    ) -> psycopg.Cursor:
        """`binary`: rows come back in binary (cheaper to read for thousands of numbers)."""
        if not connection.queries_logged:
            return self._cursor.execute(sql, params, prepare=prepare, binary=binary)
        start = time.monotonic()
        try:
            return self._cursor.execute(sql, params, prepare=prepare, binary=binary)
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


# Arrays of a batch travel in PostgreSQL's binary array format, built from numpy arrays in
# one go: letting the driver adapt thousands of Python values one by one, or writing them out
# as a text literal, costs milliseconds a batch of 1,000 fixes (about 8 ms for a positions
# INSERT's seven arrays as text; well under 1 ms this way).
class BinaryArray:
    """A one-dimensional array parameter, already in PostgreSQL's binary format (see
    float8_array, int8_array, timestamptz_array)."""

    __slots__ = ("data", "oid")

    def __init__(self, data: bytes, oid: int) -> None:
        self.data = data
        self.oid = oid


class _BinaryArrayDumper(Dumper):
    format = Format.BINARY

    def get_key(self, obj: BinaryArray, format) -> tuple:
        return (BinaryArray, obj.oid)

    def upgrade(self, obj: BinaryArray, format) -> _BinaryArrayDumper:
        dumper = type(self)(BinaryArray)
        dumper.oid = obj.oid
        return dumper

    def dump(self, obj: BinaryArray) -> bytes:
        return obj.data


psycopg.adapters.register_dumper(BinaryArray, _BinaryArrayDumper)

# (array type, element type) oids, and the element as numpy writes it (big-endian).
_FLOAT8 = (1022, 701, ">f8")
_INT8 = (1016, 20, ">i8")
_TIMESTAMPTZ = (1185, 1184, ">i8")
# PostgreSQL counts time from 2000-01-01 00:00 UTC; Python's epoch is 1970.
_PG_EPOCH_MICROSECONDS = 946_684_800_000_000


def _binary_array(values, kind: tuple[int, int, str]) -> BinaryArray:
    array_oid, element_oid, dtype = kind
    values = np.asarray(values)
    if values.size == 0:
        return BinaryArray(struct.pack(">iiI", 0, 0, element_oid), array_oid)
    items = np.empty(values.size, dtype=[("size", ">i4"), ("value", dtype)])
    items["size"] = 8
    items["value"] = values.ravel()
    header = struct.pack(">iiIii", 1, 0, element_oid, values.size, 1)
    return BinaryArray(header + items.tobytes(), array_oid)


def float8_array(values) -> BinaryArray:
    """A float8[] parameter (NaN stays NaN: write NULLIF(v, 'NaN') for optional values)."""
    return _binary_array(np.asarray(values, dtype=np.float64), _FLOAT8)


def int8_array(values) -> BinaryArray:
    return _binary_array(np.asarray(values, dtype=np.int64), _INT8)


def timestamptz_array(epoch_microseconds) -> BinaryArray:
    """A timestamptz[] parameter from instants in microseconds since 1970-01-01 UTC."""
    values = np.asarray(epoch_microseconds, dtype=np.int64) - _PG_EPOCH_MICROSECONDS
    return _binary_array(values, _TIMESTAMPTZ)


def text_array(values: Iterable[str]) -> str:
    """A text[] parameter, as an array literal (each distinct value quoted once: a batch
    repeats its source for every fix)."""
    values = list(values)
    quoted = {v: _quoted(v) for v in set(values)}
    return "{" + ",".join([quoted[v] for v in values]) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
