"""Metering per chat turn: the whole request with an instant model, on PostgreSQL.

The server is uvicorn serving eora.asgi, started by tests/live_server.py on a new
PostgreSQL database bench_... (migrated, static files collected, dropped at the
end), with LLM_PROVIDER=demo and DEMO_STREAM_DELAY_MS=0: the demo model answers at
once, so a turn's time is everything but the model. Throttle counters are in
Redis db 6 when it answers, else in the database cache. Each turn starts a new
conversation and is answered as JSON. Targets:

    reserve + settle       the ledger's two transactions of a turn, called in
                           this process on the same database: the baseline
    /api/chat              session cookie and CSRF token, {"message": ...}
    /v1/chat/completions   Bearer API key, OpenAI's request body
    /v1 in process         the same request through Django's test Client in this
                           process: the request's work without HTTP and ASGI
    GET /api/user/points   Bearer API key: a read, for the request path alone

One user (blocks of each target in turn), then 8 users at once (a thread, an HTTP
client and an account each), compared with one user.

    .venv/bin/python -m bench.chat [--turns 400] [--users 8] [--workers 2]
"""

import argparse
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from bench.harness import POSTGRES_URL, percentile, print_table, use_database
from bench.ledger import make_turn
from tests.live_server import LiveServer, live_server

REDIS_URL = "redis://127.0.0.1:6379/6"
PASSWORD = "bench-password-not-a-secret"
MESSAGE = "How are the points of a chat turn held and charged?"
BLOCK = 50
WARM_UP = 30
GOAL_P50_MS = 5.0
GOAL_RATIO = 1.3
BARE = "reserve + settle"
API_CHAT = "/api/chat (session)"
V1 = "/v1/chat/completions (key)"
IN_PROCESS = "/v1 in process (test Client)"
READ = "GET /api/user/points (key)"
SETTINGS = {
    "LLM_PROVIDER": "demo",
    "LLM_MODELS": "eora-demo",
    "DEMO_STREAM_DELAY_MS": "0",
    "API_THROTTLE_USER": "1000000/min",
    "API_THROTTLE_KEY": "1000000/min",
    # Every user logs in from 127.0.0.1, and Redis keeps the count between runs.
    "LOGIN_RATE_PER_HOUR": "1000000",
}

Call = Callable[[], None]


def redis_url() -> str:
    """Return REDIS_URL if Redis answers, else "" (the database cache)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.3).ping()
    except redis.RedisError:
        return ""
    return REDIS_URL


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code}")
    return response


def logged_in(base_url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    checked(client.get("/accounts/login/"))
    data = {"username": email, "password": PASSWORD}
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"]
    if client.post("/accounts/login/", data=data).status_code != 302:
        raise RuntimeError(f"{email} could not log in")
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


def user_calls(
    server: LiveServer, email: str, secret: str, timings: list[str]
) -> dict[str, Call]:
    """Return one user's call of each target (the baseline on an account of its own)."""
    from django.test import Client

    session = logged_in(server.url, email)
    bearer = {"Authorization": f"Bearer {secret}"}
    keyed = httpx.Client(base_url=server.url, timeout=30, headers=bearer)
    in_process = Client(SERVER_NAME="127.0.0.1", headers=bearer)
    reserve, settle = make_turn(email=f"ledger-{email}")
    completion = {"model": "eora-demo", "messages": [{"role": "user", "content": ""}]}
    completion["messages"][0]["content"] = MESSAGE

    def api_chat() -> None:
        response = session.post("/api/chat", json={"message": MESSAGE, "stream": False})
        timings.append(checked(response).headers["Server-Timing"])

    def v1_in_process() -> None:
        response = in_process.post(
            "/v1/chat/completions", completion, content_type="application/json"
        )
        if response.status_code != 200:
            raise RuntimeError(f"/v1 in process: {response.status_code}")

    return {
        BARE: lambda: settle(reserve()),
        API_CHAT: api_chat,
        V1: lambda: checked(keyed.post("/v1/chat/completions", json=completion)),
        IN_PROCESS: v1_in_process,
        READ: lambda: checked(keyed.get("/api/user/points")),
    }


def timed(call: Call, count: int) -> list[float]:
    """Return the milliseconds of `count` calls, one after another."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def one_user(calls: dict[str, Call], turns: int) -> dict[str, list[float]]:
    for call in calls.values():
        timed(call, WARM_UP)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    block = min(BLOCK, turns)
    for first in range(turns // block):
        # Each block starts with another target, so drift touches them alike.
        for name in names[first % len(names) :] + names[: first % len(names)]:
            samples[name] += timed(calls[name], block)
    return samples


def at_once(calls: list[Call], turns: int) -> tuple[list[float], float]:
    """Run every user's calls in a thread of its own; return latencies and wall s."""
    from django.db import connection

    samples: list[float] = []
    start = threading.Barrier(len(calls) + 1)

    def user(call: Call) -> None:
        timed(call, 5)
        start.wait()
        samples.extend(timed(call, turns))
        connection.close()

    threads = [threading.Thread(target=user, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return samples, time.perf_counter() - started


def server_timing(headers: list[str]) -> str:
    """Return the median of each Server-Timing entry of /api/chat, in ms."""
    entries: dict[str, list[float]] = {}
    for header in headers:
        for entry in header.split(", "):
            name, duration = entry.split(";dur=")
            entries.setdefault(name, []).append(float(duration))
    return ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in entries.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400, help="per target and user")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    store = redis_url()
    with (
        tempfile.TemporaryDirectory() as data_dir,
        live_server(
            Path(data_dir),
            postgres=POSTGRES_URL,
            database_prefix="bench_",
            workers=args.workers,
            REDIS_URL=store,
            **SETTINGS,
        ) as server,
    ):
        # Connections from a pool, as in the server.
        use_database(
            server.env["DATABASE_URL"],
            DATABASE_POOL="true",
            REDIS_URL=store,
            **SETTINGS,
        )
        emails = [f"user{index}@bench.example" for index in range(args.users)]
        secrets = server.add_users(emails, PASSWORD, top_up=10**12)
        timings: list[str] = []
        users = [user_calls(server, e, secrets[e], timings) for e in emails]
        single = one_user(users[0], args.turns)
        api_timing = server_timing(timings[WARM_UP:])
        del timings[:]
        concurrent = {
            name: at_once([calls[name] for calls in users], args.turns // args.users)
            for name in users[0]
        }
        from django.db import connection

        connection.close()

    bare = percentile(single[BARE], 0.5)
    print(
        f"One user, {args.turns} turns a target; uvicorn --workers {args.workers}; "
        f"throttles in {'Redis' if store else 'the database cache'}; "
        f"goal: p50 <= {GOAL_P50_MS:g} ms and <= {GOAL_RATIO}x {BARE}"
    )
    rows = []
    for name, samples in single.items():
        p50 = percentile(samples, 0.5)
        met = p50 <= GOAL_P50_MS and p50 <= GOAL_RATIO * bare
        goal = "" if name in (BARE, IN_PROCESS, READ) else ("met" if met else "not met")
        p99 = percentile(samples, 0.99)
        rows.append((name, len(samples), p50, p99, p50 / bare, goal))
    print_table(["target", "n", "p50 ms", "p99 ms", "p50/bare", "goal"], rows)
    print(f"/api/chat Server-Timing medians (ms): {api_timing}\n")
    print(f"{args.users} users at once, {args.turns // args.users} turns each")
    rows = []
    for name, (samples, seconds) in concurrent.items():
        one_per_second = len(single[name]) / (sum(single[name]) / 1000)
        p50 = percentile(samples, 0.5)
        rows.append(
            (
                name,
                len(samples),
                len(samples) / seconds,
                len(samples) / seconds / one_per_second,
                p50,
                percentile(samples, 0.99),
                p50 / percentile(single[name], 0.5),
            )
        )
    print_table(
        ["target", "n", "turns/s", "x 1 user", "p50 ms", "p99 ms", "p50 x 1 user"],
        rows,
    )


if __name__ == "__main__":
    main()
