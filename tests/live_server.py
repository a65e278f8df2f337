"""The production server (uvicorn serving eora.asgi) on a throwaway database.

One harness for tests and benchmarks: `live_server` migrates a SQLite file, or a
PostgreSQL database that it creates and drops, collects the static files, serves
the app with uvicorn (N workers) and stops it. `threaded_server` serves the app
from a thread of this process instead, on this process's settings and database.
Failures raise `ServerError`, which pytest reports like any other exception.
"""

import fcntl
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[1]
# Settings of the calling process that must not leak into the server's.
TEST_ONLY_PREFIXES = (
    "DJANGO_",
    "DATABASE_",
    "TEST_DATABASE",
    "LLM_",
    "DEMO_",
    "REQUIRE_POSTGRES",
    "EORA_DATA_DIR",
    "REDIS_",
    "API_THROTTLE_",
)
# The database `CREATE DATABASE` is sent from, as Django's test runner does.
MAINTENANCE_DATABASE = "postgres"
COMMAND_TIMEOUT_SECONDS = 120
STATIC_LOCK = Path(tempfile.gettempdir()) / "eora-live-server-static.lock"

# Run by `manage.py shell`: register users (with an API key each), print the keys.
ADD_USERS = """
import fcntl
import json
from accounts.api_keys import create_api_key
from accounts.services import register_user
from points import services
secrets = {}
for email in json.loads(%(emails)r):
    user = register_user(email=email, password=%(password)r)
    if %(top_up)d:
        services.grant(account=services.account_of(user=user), amount=%(top_up)d)
    secrets[email] = create_api_key(user=user, name="live server")[1]
print(json.dumps(secrets))
"""


class ServerError(RuntimeError):
    """The server, or a command that prepares it, failed; the message has its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """Return the environment of a production server; SQLite in data_dir unless
    `DATABASE_URL` is given."""
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


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command in the server's environment; return its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise ServerError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def shell(env: dict[str, str], code: str) -> str:
    """Run Python code with Django set up in the server's environment."""
    return manage(env, "shell", "--no-imports", "--command", code)


# PostgreSQL ----------------------------------------------------------------------


def create_database(url: str) -> None:
    """Create the (empty) PostgreSQL database that `url` names."""
    _maintain(url, "CREATE DATABASE {}")


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database that `url` names, closing its connections."""
    _maintain(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


def _maintain(url: str, statement: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname=MAINTENANCE_DATABASE, autocommit=True) as admin:
        admin.execute(sql.SQL(statement).format(sql.Identifier(name)))


def database_url(server_url: str, name: str) -> str:
    """Return the URL of database `name` on the server of `server_url`."""
    params = conninfo_to_dict(server_url)
    credentials = quote(params.get("user", ""))
    if params.get("password"):
        credentials += ":" + quote(params["password"])
    address = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    return f"postgres://{credentials + '@' if credentials else ''}{address}/{name}"


@contextmanager
def throwaway_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a database named `prefix`... on the server; yield its URL; drop it."""
    url = database_url(server_url, f"{prefix}{os.getpid()}_{secrets.token_hex(3)}")
    create_database(url)
    try:
        yield url
    finally:
        drop_database(url)


# Servers ---------------------------------------------------------------------------


@contextmanager
def uvicorn_server(
    env: dict[str, str], log: Path, *, workers: int = 1, start_seconds: int = 30
) -> Iterator[str]:
    """Serve the app under uvicorn; yield its base URL; stop it afterwards."""
    # WhiteNoise serves the hashed files from STATIC_ROOT when DEBUG is off, as in
    # production; a fresh checkout has none until they are collected. Every live
    # server on this machine shares the project's STATIC_ROOT: one collects at a
    # time, and none while another server starts and reads the files.
    with STATIC_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        fcntl.flock(lock, fcntl.LOCK_SH)
        server, base_url = _start_uvicorn(env, log, workers)
        try:
            _wait_until_serving(
                f"{base_url}/accounts/login/", server, log, start_seconds
            )
        except BaseException:
            _stop(server)
            raise
    try:
        yield base_url
    finally:
        _stop(server)


def _start_uvicorn(
    env: dict[str, str], log: Path, workers: int
) -> tuple[subprocess.Popen, str]:
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
                "--workers",
                str(workers),
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
    return server, f"http://127.0.0.1:{port}"


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _wait_until_serving(
    url: str, server: subprocess.Popen, log: Path, start_seconds: int
) -> None:
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerError(f"uvicorn exited early:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise ServerError(f"uvicorn did not answer {url}:\n{log.read_text()}")


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]

    def add_users(
        self, emails: list[str], password: str, *, top_up: int = 0
    ) -> dict[str, str]:
        """Register users (topped up by `top_up` points); return each one's API key."""
        code = ADD_USERS % {
            "emails": json.dumps(emails),
            "password": password,
            "top_up": top_up,
        }
        return json.loads(shell(self.env, code).splitlines()[-1])


@contextmanager
def live_server(
    data_dir: Path,
    *,
    postgres: str | None = None,
    database_prefix: str = "test_live_",
    workers: int = 1,
    **settings: str,
) -> Iterator[LiveServer]:
    """Serve the app on a migrated throwaway database; stop and drop it afterwards.

    The database is a SQLite file in `data_dir`, or, given `postgres` (the URL of
    any database on the server), a new database named `database_prefix`...
    """
    with ExitStack() as stack:
        if postgres is not None:
            url = stack.enter_context(throwaway_database(postgres, database_prefix))
            settings = {"DATABASE_URL": url, **settings}
        env = server_environment(data_dir, **settings)
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        base_url = stack.enter_context(
            uvicorn_server(env, data_dir / "uvicorn.log", workers=workers)
        )
        yield LiveServer(url=base_url, env=env)


@contextmanager
def threaded_server(application: Any, *, seconds: int = 10) -> Iterator[str]:
    """Serve an ASGI app with uvicorn from a thread of this process; yield its URL.

    The app runs on this process's settings and database: in a test that means
    `django_db(transaction=True)`, since the server sees only committed rows.
    """
    import uvicorn

    config = uvicorn.Config(
        app=application,
        host="127.0.0.1",
        port=free_port(),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServerError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=seconds + 5)
        if thread.is_alive():
            raise ServerError("uvicorn did not stop")
