"""Measure GET /api/user/points against a bare Django view, both under uvicorn.

Our endpoint is the whole production path: uvicorn serving eora.asgi with the
app's middleware, the API key looked up in the database, both throttles reading
and writing their history in the cache, the account read, DRF rendering. The
baseline is a plain `JsonResponse({"success": True, "points": 1})` at
/bench/bare, served by the same uvicorn process with the same middleware
(bench/api_settings.py adds it through bench/api_urls.py). Both get the same
`Authorization: Bearer <key>` header.

The load comes from one `httpx.AsyncClient` on loopback with N connections, each
sending its next request as soon as the previous answer arrives, for a fixed time
per measurement. Bare and ours alternate (B O, then O B, ...) after a warm-up of
each. Reported: answers per second, p50 and p99 latency (from sending a request
to reading its answer, over every request of every round) and their ratio
ours/bare (goal >= 0.5). The client shares the machine's CPUs with the server.

The throttle rates are set far out of reach, per second: DRF's throttle keeps
every request of the last period in its history, so a per-minute rate this high
would make that list, and each request's cost, grow through the run.

Run:

    .venv/bin/python bench/api.py [--seconds 2] [--rounds 3] [--connections 16]
        [--database postgresql|sqlite] [--cache redis|database]

With PostgreSQL (the default), BENCH_DATABASE_URL names the server and a database
on it to connect to for CREATE DATABASE (default
postgres://postgres@127.0.0.1:5432/test); the script creates eora_bench_api_<pid>
and drops it at the end. With SQLite it uses a file in a temporary directory. The
throttles' cache is Redis at BENCH_REDIS_URL (default redis://127.0.0.1:6379/0),
under a key prefix of the run's own that is deleted at the end, or the database
cache with `--cache database`. uvicorn is stopped and the database dropped even on
error or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis
from psycopg import sql

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BARE_PATH = "/bench/bare"
OURS_PATH = "/api/user/points"
TARGETS = {BARE_PATH: "bare JsonResponse", OURS_PATH: "GET /api/user/points"}
UNREACHED_RATE = "1000000/s"
WARMUP_SECONDS = 1.0
STARTUP_SECONDS = 15
SET_UP_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 10
# Keeps the whole run, set-up included, well under 90 s.
MAX_MEASURING_SECONDS = 50
GOAL_RATIO = 0.5

# Migrate, create the throttles' cache table (a no-op with Redis), and print the
# secret of a new user's API key.
SET_UP = """
import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)
call_command("createcachetable", verbosity=0)

from accounts.api_keys import create_api_key
from accounts.services import register_user

user = register_user(email="bench-api@example.com", password=None)
print(create_api_key(user=user, name="bench")[1])
"""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass(frozen=True)
class Summary:
    label: str
    rate: float
    slowest_round: float
    fastest_round: float
    p50_ms: float
    p99_ms: float
    failures: int

    @classmethod
    def of(cls, label: str, measurements: list[Measurement]) -> Summary:
        latencies = sorted(x for m in measurements for x in m.latencies)
        rates = [m.rate for m in measurements]
        return cls(
            label=label,
            rate=len(latencies) / sum(m.seconds for m in measurements),
            slowest_round=min(rates),
            fastest_round=max(rates),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            failures=sum(m.failures for m in measurements),
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# Load -----------------------------------------------------------------------------


async def measure(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
) -> Measurement:
    """Keep `connections` requests in flight for `seconds`; time every answer."""
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def one_connection() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            response = await client.get(path, headers=headers)
            if response.status_code == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                failures += 1

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return Measurement(time.perf_counter() - started, latencies, failures)


async def run_rounds(
    base_url: str, secret: str, *, connections: int, seconds: float, rounds: int
) -> dict[str, list[Measurement]]:
    headers = {"Authorization": f"Bearer {secret}"}
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections
    )
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for path in TARGETS:
            probe = await client.get(path, headers=headers)
            if probe.status_code != 200:
                raise RuntimeError(
                    f"GET {path} answered {probe.status_code}: {probe.text[:500]}"
                )
            await measure(
                client, path, headers, connections=connections, seconds=WARMUP_SECONDS
            )
        results: dict[str, list[Measurement]] = {path: [] for path in TARGETS}
        for round_number in range(rounds):
            order = list(TARGETS) if round_number % 2 == 0 else list(TARGETS)[::-1]
            for path in order:
                measurement = await measure(
                    client, path, headers, connections=connections, seconds=seconds
                )
                results[path].append(measurement)
                print(
                    f"  round {round_number + 1}: {TARGETS[path]:<22} "
                    f"{measurement.rate:>7.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def print_results(
    results: dict[str, list[Measurement]], args: argparse.Namespace, where: str
) -> tuple[Summary, Summary]:
    bare = Summary.of(TARGETS[BARE_PATH], results[BARE_PATH])
    ours = Summary.of(TARGETS[OURS_PATH], results[OURS_PATH])
    print()
    print(f"uvicorn eora.asgi, 1 worker, on loopback; {where}")
    print(
        f"{args.connections} connections from one httpx.AsyncClient; "
        f"{args.rounds} alternating rounds of {args.seconds:g} s per target; "
        f"{os.cpu_count()} CPUs shared by client and server"
    )
    print()
    header = (
        f"{'target':<22} {'req/s':>8} {'rounds min-max':>15} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'non-200':>8}"
    )
    print(header)
    print("-" * len(header))
    for summary in (bare, ours):
        spread = f"{summary.slowest_round:.0f}-{summary.fastest_round:.0f}"
        print(
            f"{summary.label:<22} {summary.rate:>8.0f} {spread:>15} "
            f"{summary.p50_ms:>8.2f} {summary.p99_ms:>8.2f} {summary.failures:>8}"
        )
    ratio = ours.rate / bare.rate
    print()
    print(
        f"ours/bare req/s: {ratio:.2f} (goal >= {GOAL_RATIO}: "
        f"{'met' if ratio >= GOAL_RATIO else 'below'}); "
        f"p99 ours/bare: {ours.p99_ms / bare.p99_ms:.2f}"
    )
    return bare, ours


# The server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(
    database_url: str, data_dir: Path, redis_url: str | None
) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("DJANGO_", "DATABASE_", "TEST_DATABASE", "API_THROTTLE_", "REDIS_")
        )
    }
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DATABASE_URL": database_url,
        "EORA_DATA_DIR": str(data_dir),
        "SECRET_KEY": "bench-only-secret-key-not-for-any-real-use",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1",
        "API_THROTTLE_USER": UNREACHED_RATE,
        "API_THROTTLE_KEY": UNREACHED_RATE,
        "BENCH_CACHE_KEY_PREFIX": f"eora-bench-api-{os.getpid()}",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def set_up_database(env: dict[str, str]) -> str:
    """Migrate the database, add a user with an API key; return the key."""
    done = subprocess.run(
        [sys.executable, "-c", SET_UP],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=SET_UP_TIMEOUT_SECONDS,
    )
    if done.returncode:
        raise RuntimeError(f"set-up failed:\n{done.stderr}")
    return done.stdout.strip()


@contextmanager
def uvicorn_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """Serve eora.asgi with uvicorn on a free port; stop it on the way out."""
    port = free_port()
    log = log_dir / "uvicorn.log"
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
            cwd=PROJECT_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start:\n{log.read_text()}")
            try:
                httpx.get(f"{base_url}{BARE_PATH}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base_url
    except BaseException:
        print(f"uvicorn's log:\n{log.read_text()}", file=sys.stderr)
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# Database and cache ---------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def postgresql_database(server_url: str, name: str) -> Iterator[str]:
    """Create a database of the bench's own; drop it on the way out."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@contextmanager
def redis_keys_deleted(redis_url: str, prefix: str) -> Iterator[None]:
    """Check that Redis answers; delete the keys under `prefix` on the way out."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        raise SystemExit(
            f"Redis is not reachable at {redis_url} ({error}); "
            "set BENCH_REDIS_URL or use --cache database."
        ) from error
    try:
        yield
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()


def exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    # Unwind through the `finally` blocks: stop uvicorn, drop the database.
    raise SystemExit(128 + signum)


# Main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Requests/s and p99 of GET /api/user/points with an API key against a "
            "bare Django JsonResponse, both served by one uvicorn process."
        )
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="length of each measurement in seconds (default: 2)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating measurements per target (default: 3)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections, each with one request in flight (default: 16)",
    )
    parser.add_argument(
        "--database",
        choices=["postgresql", "sqlite"],
        default="postgresql",
        help="a PostgreSQL database of its own, or a SQLite file (default: postgresql)",
    )
    parser.add_argument(
        "--cache",
        choices=["redis", "database"],
        default="redis",
        help="where the throttles keep their history (default: redis)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--seconds, --rounds and --connections must be positive")
    measuring = len(TARGETS) * (args.rounds * args.seconds + WARMUP_SECONDS)
    if measuring > MAX_MEASURING_SECONDS:
        parser.error(
            f"--rounds x --seconds would measure for {measuring:g} s; "
            f"keep it under {MAX_MEASURING_SECONDS} s"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    started = time.perf_counter()
    redis_url = (
        os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
        if args.cache == "redis"
        else None
    )
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.database == "postgresql":
            name = f"eora_bench_api_{os.getpid()}"
            server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)
            url = stack.enter_context(postgresql_database(server_url, name))
            where = f"PostgreSQL database {name} (created and dropped)"
        else:
            url = f"sqlite:///{work_dir / 'db.sqlite3'}"
            where = "SQLite file in a temporary directory"
        env = server_env(url, work_dir, redis_url)
        if redis_url:
            prefix = env["BENCH_CACHE_KEY_PREFIX"]
            stack.enter_context(redis_keys_deleted(redis_url, prefix))
            where += f"; throttle cache on Redis {redis_url}"
        else:
            where += "; throttle cache in the database"
        print(f"Setting up: {where}", file=sys.stderr, flush=True)
        secret = set_up_database(env)
        base_url = stack.enter_context(uvicorn_server(env, work_dir))
        results = asyncio.run(
            run_rounds(
                base_url,
                secret,
                connections=args.connections,
                seconds=args.seconds,
                rounds=args.rounds,
            )
        )
    bare, ours = print_results(results, args, where)
    print(f"Total time {time.perf_counter() - started:.0f} s.")
    return 1 if bare.failures or ours.failures else 0


if __name__ == "__main__":
    sys.exit(main())
