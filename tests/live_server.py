"""The production server (uvicorn serving eora.asgi) on a throwaway database."""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Settings of the test process that must not leak into the server's.
TEST_ONLY_PREFIXES = (
    "DJANGO_",
    "DATABASE_",
    "TEST_DATABASE",
    "LLM_",
    "DEMO_",
    "REQUIRE_POSTGRES",
    "EORA_DATA_DIR",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """Return the environment of a production server on a SQLite file in data_dir."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(TEST_ONLY_PREFIXES)
    }
    return {
        **kept,
        "DJANGO_SETTINGS_MODULE": "eora.settings",
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "EORA_DATA_DIR": str(data_dir),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        **settings,
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextmanager
def uvicorn_server(
    env: dict[str, str], log: Path, *, start_seconds: int = 30
) -> Iterator[str]:
    """Serve the app under uvicorn; yield its base URL; stop it afterwards."""
    # WhiteNoise serves the hashed files from STATIC_ROOT when DEBUG is off, as in
    # production; a fresh checkout has none until they are collected.
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "eora.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--no-server-header",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(f"{base_url}/accounts/login/", server, log, start_seconds)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_serving(
    url: str, server: subprocess.Popen, log: Path, start_seconds: int
) -> None:
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited early:\n{log.read_text()}", pytrace=False)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"uvicorn did not answer {url}:\n{log.read_text()}", pytrace=False)
