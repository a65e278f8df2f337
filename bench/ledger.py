"""Measure hold + capture cycles per second through the points services.

A cycle is `points.services.place_hold` then `points.services.capture_hold` with a
`points.pricing.Usage`. The baseline ("raw") sends the statements Django emits for
those two calls (the same SQL text, the same conditional SELECT of overdue holds,
the same BEGIN and COMMIT) straight through psycopg 3 with its default settings,
on a connection of its own per thread. The ratio services/raw is the share of the
raw throughput that is left after the ORM and the service code.

Scenarios: one hot account shared by every thread, and one account per thread, each
at 1, 4 and 16 threads. Services and raw runs alternate (S R, then R S, ...) so that
drift touches both alike. A single-thread breakdown then counts statements and
round trips per cycle, splits a cycle into client CPU and waiting on the server,
and profiles where the client CPU goes.

Run (PostgreSQL only):

    .venv/bin/python bench/ledger.py [--seconds 2] [--rounds 2] [--threads 1 4 16]

BENCH_DATABASE_URL names the server, and a database on it to connect to for CREATE
DATABASE (default postgres://postgres@127.0.0.1:5432/test). The script creates
eora_bench_<pid>, migrates it, measures, and drops it at the end, even on error.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from points.models import Account
    from points.pricing import Usage

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_THREADS = (1, 4, 16)
HOLD_AMOUNT = 100
PROMPT_TOKENS = 10
COMPLETION_TOKENS = 20
MODEL = "gpt-4o"
# Enough that no bench account runs dry, well under services.MAX_POINTS.
TOP_UP_POINTS = 10**13
WARMUP_CYCLES = 10
PROFILE_CYCLES = 300
BREAKDOWN_ROUNDS = 3
GOAL_RATIO = 0.5

# The statements Django emits for place_hold and capture_hold (seen with
# CaptureQueriesContext), with its literals turned back into parameters.
LOCK_ACCOUNT = (
    'SELECT "points_account"."id", "points_account"."user_id", '
    '"points_account"."balance", "points_account"."held", '
    '"points_account"."total_earned", "points_account"."total_spent", '
    '"points_account"."version", "points_account"."last_updated", '
    '"points_account"."created_at" FROM "points_account" '
    'WHERE "points_account"."id" = %s LIMIT 21 FOR NO KEY UPDATE'
)
SELECT_OVERDUE_HOLDS = (
    'SELECT "points_hold"."id" AS "pk", "points_hold"."amount" AS "amount" '
    'FROM "points_hold" WHERE ("points_hold"."account_id" = %s '
    'AND "points_hold"."expires_at" <= %s AND "points_hold"."status" = %s) '
    "FOR NO KEY UPDATE"
)
INSERT_HOLD = (
    'INSERT INTO "points_hold" ("account_id", "amount", "captured_amount", '
    '"status", "description", "expires_at", "idempotency_key", "request_hash", '
    '"created_at", "ended_at") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) '
    'RETURNING "points_hold"."id"'
)
UPDATE_HELD = 'UPDATE "points_account" SET "held" = %s WHERE "points_account"."id" = %s'
LOCK_HOLD = (
    'SELECT "points_hold"."id", "points_hold"."account_id", "points_hold"."amount", '
    '"points_hold"."captured_amount", "points_hold"."status", '
    '"points_hold"."description", "points_hold"."expires_at", '
    '"points_hold"."idempotency_key", "points_hold"."request_hash", '
    '"points_hold"."created_at", "points_hold"."ended_at" FROM "points_hold" '
    'WHERE "points_hold"."id" = %s LIMIT 21 FOR NO KEY UPDATE'
)
UPDATE_ACCOUNT = (
    'UPDATE "points_account" SET "balance" = %s, "held" = %s, '
    '"total_earned" = %s, "total_spent" = %s, "version" = %s, '
    '"last_updated" = %s WHERE "points_account"."id" = %s'
)
INSERT_TRANSACTION = (
    'INSERT INTO "points_transaction" ("account_id", "type", "amount", '
    '"balance_after", "version", "description", "prompt_tokens", '
    '"completion_tokens", "total_tokens", "model", "prompt_rate", '
    '"completion_rate", "uncharged_points", "hold_id", "idempotency_key", '
    '"request_hash", "created_by_id", "reason", "created_at") VALUES (%s, %s, %s, '
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    'RETURNING "points_transaction"."id"'
)
UPDATE_HOLD = (
    'UPDATE "points_hold" SET "captured_amount" = %s, "status" = %s, '
    '"ended_at" = %s WHERE "points_hold"."id" = %s'
)

# Column positions in the rows of LOCK_ACCOUNT and LOCK_HOLD.
BALANCE, HELD, TOTAL_EARNED, TOTAL_SPENT, VERSION = 2, 3, 4, 5, 6
HOLD_AMOUNT_COLUMN, HOLD_STATUS, HOLD_EXPIRES_AT = 2, 4, 6

# Areas of client time in the profile, matched in order against "file:function".
PROFILE_AREAS = (
    ("waiting on the server (psycopg wait)", ("/psycopg/connection.py:wait",)),
    ("ORM: queryset, model, SQL compiler", ("/django/db/models/",)),
    ("Django DB layer: atomic, cursor", ("/django/db/",)),
    ("psycopg, Python side", ("/psycopg/", "/psycopg_pool/")),
    ("translation (gettext)", ("/django/utils/translation/", "/gettext.py")),
    ("points services + pricing", ("/points/",)),
    ("other Django", ("/django/",)),
    ("bench loop", ("/bench/",)),
)

OTHER_AREA = "builtins, stdlib, other"


class Worker(Protocol):
    statements: int | None

    def cycle(self) -> None: ...


Session = Callable[[], AbstractContextManager[Worker]]


class Rows(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlConnection(Protocol):
    """What RawLedger needs: psycopg's Connection, or Django's through an adapter."""

    def execute(self, query: str, params: tuple[object, ...]) -> Rows: ...

    def transaction(self) -> AbstractContextManager[object]: ...


@dataclass(frozen=True)
class Measurement:
    cycles: int
    seconds: float
    statements: int | None
    statement_cycles: int


@dataclass(frozen=True)
class Comparison:
    scenario: str
    threads: int
    services: list[Measurement]
    raw: list[Measurement]

    @staticmethod
    def total_rate(measurements: list[Measurement]) -> float:
        return sum(m.cycles for m in measurements) / sum(
            m.seconds for m in measurements
        )

    @property
    def ratio(self) -> float:
        return self.total_rate(self.services) / self.total_rate(self.raw)

    @property
    def raw_statements_per_cycle(self) -> float:
        counted = [m for m in self.raw if m.statements is not None]
        return sum(m.statements or 0 for m in counted) / sum(
            m.statement_cycles for m in counted
        )


# The ways to run a cycle ---------------------------------------------------


class ServicesWorker:
    """One thread's cycles through the services, on Django's connection."""

    statements: int | None = None

    def __init__(self, account: Account, usage: Usage) -> None:
        self.account = account
        self.usage = usage
        self.cost = usage.cost

    def cycle(self) -> None:
        from points.services import capture_hold, place_hold

        hold = place_hold(account=self.account, amount=HOLD_AMOUNT)
        capture_hold(hold=hold, actual_cost=self.cost, usage=self.usage)


class RawLedger:
    """One thread's cycles as the services' statements, sent without the ORM.

    Like the services it locks the account row, computes the new figures from it
    under the lock and writes them as values, so the ledger stays consistent and
    the audit at the end passes.
    """

    def __init__(
        self,
        connection: SqlConnection,
        *,
        account_id: int,
        usage: Usage,
        description: str,
        hold_ttl: timedelta,
        log: list[str] | None = None,
    ) -> None:
        self.connection = connection
        self.account_id = account_id
        self.cost = usage.cost
        self.usage_values = (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens,
            usage.model,
            usage.rates.prompt,
            usage.rates.completion,
        )
        self.description = description[:255]
        self.hold_ttl = hold_ttl
        self.log = log
        self.statements: int | None = 0

    def _execute(self, query: str, params: tuple[object, ...]) -> Rows:
        self.statements = (self.statements or 0) + 1
        if self.log is not None:
            self.log.append(query)
        return self.connection.execute(query, params)

    def cycle(self) -> None:
        self.capture_hold(self.place_hold())

    def place_hold(self) -> int:
        with self.connection.transaction():
            now = datetime.now(UTC)
            account = self._execute(LOCK_ACCOUNT, (self.account_id,)).fetchone()
            assert account is not None
            held = account[HELD]
            # The holds live for HOLD_TTL_SECONDS, far longer than a run, so the
            # services find none overdue either and expire nothing.
            if (
                held > 0
                and self._execute(
                    SELECT_OVERDUE_HOLDS, (self.account_id, now, "open")
                ).fetchall()
            ):
                raise RuntimeError("a bench hold is overdue")
            if account[BALANCE] - held < HOLD_AMOUNT:
                raise RuntimeError("a bench account ran out of points")
            inserted = self._execute(
                INSERT_HOLD,
                (
                    self.account_id,
                    HOLD_AMOUNT,
                    0,
                    "open",
                    "",
                    now + self.hold_ttl,
                    None,
                    "",
                    now,
                    None,
                ),
            ).fetchone()
            assert inserted is not None
            self._execute(UPDATE_HELD, (held + HOLD_AMOUNT, self.account_id))
        return inserted[0]

    def capture_hold(self, hold_id: int) -> None:
        with self.connection.transaction():
            now = datetime.now(UTC)
            account = self._execute(LOCK_ACCOUNT, (self.account_id,)).fetchone()
            hold = self._execute(LOCK_HOLD, (hold_id,)).fetchone()
            assert account is not None and hold is not None
            if hold[HOLD_STATUS] != "open" or hold[HOLD_EXPIRES_AT] <= now:
                raise RuntimeError(f"hold {hold_id} is no longer open")
            charged = min(self.cost, hold[HOLD_AMOUNT_COLUMN])
            balance = account[BALANCE] - charged
            version = account[VERSION] + 1
            self._execute(
                UPDATE_ACCOUNT,
                (
                    balance,
                    account[HELD] - hold[HOLD_AMOUNT_COLUMN],
                    account[TOTAL_EARNED],
                    account[TOTAL_SPENT] + charged,
                    version,
                    now,
                    self.account_id,
                ),
            )
            self._execute(
                INSERT_TRANSACTION,
                (
                    self.account_id,
                    "chat_usage",
                    -charged,
                    balance,
                    version,
                    self.description,
                    *self.usage_values,
                    self.cost - charged,
                    hold_id,
                    None,
                    "",
                    None,
                    "",
                    now,
                ),
            ).fetchone()
            self._execute(UPDATE_HOLD, (charged, "captured", now, hold_id))


@contextmanager
def services_session(account: Account, usage: Usage) -> Iterator[Worker]:
    from django.db import connection

    connection.ensure_connection()
    try:
        yield ServicesWorker(account, usage)
    finally:
        # Hand this thread's connection back to the pool.
        connection.close()


class DjangoCursorConnection:
    """Send RawLedger's SQL through Django's cursor and `transaction.atomic()`."""

    def execute(self, query: str, params: tuple[object, ...]) -> Rows:
        from django.db import connection

        cursor = connection.cursor()
        cursor.execute(query, params)
        return cursor

    def transaction(self) -> AbstractContextManager[object]:
        from django.db import transaction

        return transaction.atomic()


def raw_ledger(
    connection: SqlConnection,
    account: Account,
    usage: Usage,
    log: list[str] | None = None,
) -> RawLedger:
    from django.conf import settings

    from points.services import usage_description

    return RawLedger(
        connection,
        account_id=account.pk,
        usage=usage,
        description=usage_description(usage),
        hold_ttl=timedelta(seconds=settings.HOLD_TTL_SECONDS),
        log=log,
    )


@contextmanager
def raw_session(
    conninfo: str,
    account: Account,
    usage: Usage,
    *,
    log: list[str] | None = None,
    **connect_options: object,
) -> Iterator[Worker]:
    with psycopg.connect(conninfo, autocommit=True, **connect_options) as connection:
        yield raw_ledger(connection, account, usage, log)


@contextmanager
def django_cursor_session(account: Account, usage: Usage) -> Iterator[Worker]:
    from django.db import connection

    connection.ensure_connection()
    try:
        yield raw_ledger(DjangoCursorConnection(), account, usage)
    finally:
        connection.close()


# Measuring ---------------------------------------------------------------------


def measure(sessions: Sequence[Session], seconds: float) -> Measurement:
    """Run one thread per session for `seconds`; count the cycles finished in time."""
    window: list[float] = []
    barrier = threading.Barrier(
        len(sessions) + 1, action=lambda: window.append(time.perf_counter() + seconds)
    )
    cycles = [0] * len(sessions)
    statements: list[int | None] = [None] * len(sessions)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with sessions[index]() as worker:
                for _ in range(WARMUP_CYCLES):
                    worker.cycle()
                before = worker.statements
                barrier.wait()
                deadline = window[0]
                while True:
                    worker.cycle()
                    if time.perf_counter() > deadline:
                        break
                    cycles[index] += 1
                if before is not None and worker.statements is not None:
                    statements[index] = worker.statements - before
        except threading.BrokenBarrierError:
            pass
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=run, args=(index,), daemon=True)
        for index in range(len(sessions))
    ]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):
        barrier.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    counted = [n for n in statements if n is not None]
    return Measurement(
        cycles=sum(cycles),
        seconds=seconds,
        statements=sum(counted) if counted else None,
        # Each thread finishes the cycle it is in when the window closes.
        statement_cycles=sum(cycles) + len(sessions),
    )


def compare(
    *,
    scenario: str,
    services_sessions: Sequence[Session],
    raw_sessions: Sequence[Session],
    seconds: float,
    rounds: int,
) -> Comparison:
    services: list[Measurement] = []
    raw: list[Measurement] = []
    for round_number in range(rounds):
        runs = [(services, services_sessions), (raw, raw_sessions)]
        if round_number % 2:
            runs.reverse()
        for results, sessions in runs:
            results.append(measure(sessions, seconds))
    return Comparison(scenario, len(services_sessions), services, raw)


def run_scenarios(
    *,
    conninfo: str,
    hot: Account,
    spread: list[Account],
    usage: Usage,
    thread_counts: Sequence[int],
    seconds: float,
    rounds: int,
) -> list[Comparison]:
    comparisons = []
    for scenario, accounts_for in (
        ("hot account", lambda n: [hot] * n),
        ("account per thread", lambda n: spread[:n]),
    ):
        for threads in thread_counts:
            accounts = accounts_for(threads)
            comparison = compare(
                scenario=scenario,
                services_sessions=[
                    partial(services_session, a, usage) for a in accounts
                ],
                raw_sessions=[
                    partial(raw_session, conninfo, a, usage) for a in accounts
                ],
                seconds=seconds,
                rounds=rounds,
            )
            print(
                f"  measured {scenario}, {threads} thread(s): "
                f"ratio {comparison.ratio:.2f}",
                file=sys.stderr,
                flush=True,
            )
            comparisons.append(comparison)
    return comparisons


def print_comparisons(
    comparisons: list[Comparison], seconds: float, rounds: int
) -> None:
    print()
    print(
        f"Hold + capture cycles/s ({rounds} alternating runs of {seconds:g} s each "
        "per cell; goal services/raw >= "
        f"{GOAL_RATIO})"
    )
    header = (
        f"{'scenario':<20} {'threads':>7} {'services c/s':>13} {'raw c/s':>10} "
        f"{'services/raw':>13} {'raw stmts/cycle':>16} {'goal':>6}"
    )
    print(header)
    print("-" * len(header))
    for c in comparisons:
        ratio = c.ratio
        print(
            f"{c.scenario:<20} {c.threads:>7} "
            f"{Comparison.total_rate(c.services):>13.0f} "
            f"{Comparison.total_rate(c.raw):>10.0f} {ratio:>13.2f} "
            f"{c.raw_statements_per_cycle:>16.2f} "
            f"{'met' if ratio >= GOAL_RATIO else 'below':>6}"
        )


# Where the time goes -------------------------------------------------------------


def describe_statement(query: str) -> str:
    """Return a short name for a statement: its verb, table and lock."""
    words = query.replace('"', "").split()
    verb = words[0].upper()
    if verb in {"BEGIN", "COMMIT", "ROLLBACK"}:
        return verb
    keyword = {"SELECT": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}.get(verb)
    table = ""
    if keyword:
        position = [w.upper() for w in words].index(keyword)
        table = words[position + 1].split(".")[0]
    lock = " FOR NO KEY UPDATE" if "FOR NO KEY UPDATE" in query.upper() else ""
    return f"{verb} {table}{lock}".strip()


def services_statements(worker: Worker) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        worker.cycle()
    return [describe_statement(q["sql"]) for q in captured.captured_queries]


def raw_statements(session: Callable[..., AbstractContextManager[Worker]]) -> list[str]:
    log: list[str] = []
    with session(log=log) as worker:
        worker.cycle()
    # psycopg sends BEGIN and COMMIT itself for each `transaction()` block.
    statements = [describe_statement(q) for q in log]
    split = statements.index("SELECT points_account FOR NO KEY UPDATE", 1)
    return ["BEGIN", *statements[:split], "COMMIT", "BEGIN", *statements[split:]] + [
        "COMMIT"
    ]


@dataclass(frozen=True)
class CycleTime:
    wall: float
    cpu: float


def time_single_thread(session: Session, seconds: float) -> list[CycleTime]:
    """Time each cycle; medians of these shrug off the odd preemption."""
    times = []
    with session() as worker:
        for _ in range(WARMUP_CYCLES):
            worker.cycle()
        end = time.perf_counter() + seconds
        while True:
            wall_start, cpu_start = time.perf_counter(), time.thread_time()
            worker.cycle()
            wall_end, cpu_end = time.perf_counter(), time.thread_time()
            times.append(CycleTime(wall_end - wall_start, cpu_end - cpu_start))
            if wall_end > end:
                break
    return times


def profile_areas(session: Session) -> dict[str, float]:
    """Return the µs per cycle spent in each area, measured under cProfile."""
    with session() as worker:
        for _ in range(WARMUP_CYCLES):
            worker.cycle()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(PROFILE_CYCLES):
            worker.cycle()
        profiler.disable()
    areas = dict.fromkeys([name for name, _ in PROFILE_AREAS] + [OTHER_AREA], 0.0)
    stats = pstats.Stats(profiler).stats
    for (filename, _line, function), (
        _cc,
        _nc,
        tottime,
        _ct,
        _callers,
    ) in stats.items():
        where = f"{filename}:{function}"
        area = next(
            (name for name, marks in PROFILE_AREAS if any(m in where for m in marks)),
            OTHER_AREA,
        )
        areas[area] += tottime / PROFILE_CYCLES * 1e6
    return areas


def print_breakdown(
    *, conninfo: str, account: Account, usage: Usage, seconds: float
) -> None:
    services = partial(services_session, account, usage)
    raw = partial(raw_session, conninfo, account, usage)
    paths: dict[str, Session] = {
        "services (ORM)": services,
        "same SQL, Django cursor+atomic": partial(
            django_cursor_session, account, usage
        ),
        "same SQL, psycopg, Django wire*": partial(
            raw_session,
            conninfo,
            account,
            usage,
            cursor_factory=psycopg.ClientCursor,
            prepare_threshold=None,
        ),
        "same SQL, psycopg (raw)": raw,
    }

    with services() as worker:
        service_list = services_statements(worker)
    raw_list = raw_statements(raw)

    print()
    print("Where the time goes (one thread, own account, no lock waits)")
    print()
    print("Statements per cycle, in order (each one is a round trip):")
    print(f"  services ({len(service_list)}): " + ", ".join(service_list))
    print(f"  raw      ({len(raw_list)}): " + ", ".join(raw_list))
    extra = [s for s in service_list if s not in raw_list]
    print(
        "  same sequence"
        if service_list == raw_list
        else f"  differ; services only: {', '.join(extra) or '(order differs)'}"
    )

    timings: dict[str, list[CycleTime]] = {label: [] for label in paths}
    for _round in range(BREAKDOWN_ROUNDS):
        for label, session in paths.items():
            timings[label] += time_single_thread(session, seconds / BREAKDOWN_ROUNDS)
    per_cycle: dict[str, tuple[float, float]] = {}

    print()
    header = (
        f"{'path (medians)':<32} {'µs/cycle':>9} {'client CPU':>11} {'waiting':>8} "
        f"{'round trips':>12} {'µs/round trip':>14}"
    )
    print(header)
    print("-" * len(header))
    for label, times in timings.items():
        wall = statistics.median(t.wall for t in times) * 1e6
        cpu = statistics.median(t.cpu for t in times) * 1e6
        waiting = statistics.median(t.wall - t.cpu for t in times) * 1e6
        trips = len(service_list if paths[label] is services else raw_list)
        per_cycle[label] = (cpu, waiting)
        print(
            f"{label:<32} {wall:>9.0f} {cpu:>11.0f} {waiting:>8.0f} "
            f"{trips:>12} {wall / trips:>14.0f}"
        )
    print(
        "  * client-side parameter binding, no prepared statements, as Django's "
        "PostgreSQL backend does it (ClientCursor, prepare_threshold=None)"
    )
    print(
        f"  {BREAKDOWN_ROUNDS} alternating runs per path; waiting = wall time - "
        "this thread's CPU time, per cycle"
    )

    orm, django_layer, wire, baseline = per_cycle.values()
    print()
    header = f"{'services - raw, µs/cycle':<44} {'client CPU':>11} {'waiting':>8}"
    print(header)
    print("-" * len(header))
    for label, (slower, faster) in (
        ("ORM and service code", (orm, django_layer)),
        ("Django cursor and atomic", (django_layer, wire)),
        ("client-side binding, no prepared statements", (wire, baseline)),
        ("total", (orm, baseline)),
    ):
        print(
            f"{label:<44} {slower[0] - faster[0]:>11.0f} {slower[1] - faster[1]:>8.0f}"
        )

    services_areas = profile_areas(services)
    raw_areas = profile_areas(raw)
    print()
    print(
        f"Client time per cycle by area, under cProfile ({PROFILE_CYCLES} cycles; "
        "the profiler inflates Python calls, so read the proportions)"
    )
    header = f"{'area':<38} {'services µs':>12} {'raw µs':>8}"
    print(header)
    print("-" * len(header))
    for area in services_areas:
        if services_areas[area] >= 0.5 or raw_areas[area] >= 0.5:
            print(f"{area:<38} {services_areas[area]:>12.0f} {raw_areas[area]:>8.0f}")
    print(
        f"{'total':<38} {sum(services_areas.values()):>12.0f} "
        f"{sum(raw_areas.values()):>8.0f}"
    )


# Database set-up -----------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def set_up_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["SECRET_KEY"] = "bench-only-secret-key-not-for-any-real-use"
    os.environ["DJANGO_SETTINGS_MODULE"] = "eora.settings"
    # Query logging would add its own cost to every statement.
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(PROJECT_DIR))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def close_django_connections() -> None:
    from django.db import connection, connections

    connections.close_all()
    connection.close_pool()


def create_accounts(count: int) -> list[Account]:
    """Register `count` users through the app and top each account up."""
    from accounts.services import register_user
    from points.models import Account
    from points.services import grant

    accounts = []
    for index in range(count):
        user = register_user(email=f"bench-{index}@example.com", password=None)
        account = Account.objects.get(user=user)
        grant(account=account, amount=TOP_UP_POINTS, description="Bench top-up")
        accounts.append(account)
    return accounts


def bench_usage() -> Usage:
    from points.pricing import Usage, default_rates

    return Usage(
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=COMPLETION_TOKENS,
        model=MODEL,
        rates=default_rates(),
    )


def audit() -> int:
    from points.audit import audit_accounts

    problems = audit_accounts()
    for problem in problems[:10]:
        print(f"  audit: {problem}")
    return len(problems)


# Main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Hold + capture cycles/s through points.services against the same SQL "
            "sent straight through psycopg 3 (PostgreSQL only). Creates and drops "
            "its own database on the server named by BENCH_DATABASE_URL "
            f"(default {DEFAULT_SERVER_URL})."
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
        default=2,
        help="alternating services/raw measurements per cell (default: 2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=list(DEFAULT_THREADS),
        help="thread counts to measure (default: 1 4 16)",
    )
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the single-thread breakdown of where the time goes",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or min(args.threads) < 1:
        parser.error("--seconds, --rounds and --threads must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)
    name = f"eora_bench_{os.getpid()}"
    url = database_url(server_url, name)
    started = time.perf_counter()

    create_database(server_url, name)
    django_ready = False
    try:
        print(f"Database {name}: migrating and creating accounts", file=sys.stderr)
        set_up_django(url)
        django_ready = True
        hot, profiled, *spread = create_accounts(2 + max(args.threads))
        usage = bench_usage()
        close_django_connections()

        comparisons = run_scenarios(
            conninfo=url,
            hot=hot,
            spread=spread,
            usage=usage,
            thread_counts=args.threads,
            seconds=args.seconds,
            rounds=args.rounds,
        )
        print_comparisons(comparisons, args.seconds, args.rounds)
        if not args.no_breakdown:
            print_breakdown(
                conninfo=url, account=profiled, usage=usage, seconds=args.seconds
            )
        problems = audit()
        print()
        print(
            f"Ledger audit after the run: {problems} problem(s). "
            f"Total time {time.perf_counter() - started:.0f} s."
        )
        return 1 if problems else 0
    finally:
        if django_ready:
            close_django_connections()
        drop_database(server_url, name)


if __name__ == "__main__":
    sys.exit(main())
