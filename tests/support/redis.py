"""The project-local Redis that `make test` starts (scripts/env.sh redis)."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_PORT = int(os.environ.get("MARAUDES_REDIS_PORT", "56379"))


def redis_url(db: int) -> str:
    """A database number of its own for each test module (the layers share one server)."""
    return f"redis://127.0.0.1:{REDIS_PORT}/{db}"


def redis_required() -> None:
    try:
        socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1).close()
    except OSError:
        pytest.fail(
            f"Redis does not answer on 127.0.0.1:{REDIS_PORT}: `scripts/env.sh redis` starts "
            "it (`make test` does)."
        )
