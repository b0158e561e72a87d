"""The app served by real uvicorn processes on the loopback, for benchmarks and tests that
need a server of their own (several workers, Redis between them, a database of their own).

    server = uvicorn_start(env=django_env(database_url), log=tmp / "uvicorn.log", workers=2)
    ... http://127.0.0.1:{server.port} ...
    server.stop()

Django is not set up in the calling process: the server reads its settings from `env`.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def django_env(database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment with the app's settings for a server: its database, the
    settings module, warnings only; `extra` added (REDIS_URL, SECRET_KEY, DEBUG...)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "maraudes.settings",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path
    health: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", self.health)
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            return False
        return ok

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the health page answers 200; RuntimeError with the log when it does not."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"uvicorn exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer on {self.port}:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def uvicorn_start(
    *,
    env: dict[str, str],
    log: Path,
    workers: int = 1,
    port: int | None = None,
    args: Sequence[str] = (),
    health: str = "/healthz/",
    wait: bool = True,
) -> Server:
    """`maraudes.asgi:application` under uvicorn as the app is served (no lifespan, no access
    log), on `port` or a free one; waits until it answers unless `wait` is false. A free port
    taken by someone else before uvicorn binds it: tried again on another."""
    attempts = 1 if port is not None else 3
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "maraudes.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(chosen),
            "--workers",
            str(workers),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            *args,
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server(process=process, port=chosen, log=log, health=health)
        if not wait:
            return server
        try:
            server.wait_ready()
            return server
        except RuntimeError:
            server.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
