"""Database helpers shared by the write paths."""

from __future__ import annotations

import psycopg
from django.db import connection


def prepared_cursor() -> psycopg.Cursor:
    """A server-side binding cursor on Django's connection (same transaction), for the
    statements every batch of fixes runs: executed with prepare=True, they are planned once
    per connection instead of at every batch (their CTEs cost milliseconds to plan), and
    their arrays travel as parameters."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)
