"""The usage pages, their API and the staff dashboard on a big ledger, on PostgreSQL.

Seeds (once; `bench.usage_seed`) a database `bench_usage` on BENCH_POSTGRES_URL's
server: 2,000,000 ledger rows across 20,000 users, one of them with 200,000, over
the last 180 days; the roll-ups rebuilt from it; refusals. A later run reuses it
when its marker says the seed finished with the same size (`--reseed` redoes it,
`--drop` removes it; `--throwaway` seeds a database that is dropped at the end).

Then, in this process through Django's test Client (force_login), each endpoint
for the heavy user, a typical user (about 90 rows) and a staff user, for 7, 30
and 90 days: N requests after a warm-up, p50/p95/p99 in ms. The baseline, timed
the same way and alternating with it, is the same figures computed from the
ledger itself (one GROUP BY over `points_transaction` for the same user or all
users and the same days): what the endpoint would do without the roll-ups. The
history pages are measured whole, without a baseline, and then their reads (the
filtered rows' count from the roll-up and the page's rows) against the same reads
with the count taken by `COUNT(*)` over the ledger. An
endpoint that is not routed yet is measured as the roll-up query it will run,
marked "query". Then the plan (EXPLAIN ANALYZE, BUFFERS) of every statement of
one request that takes over `PLAN_MS`; a line for the others.

    .venv/bin/python -m bench.usage [--users 20000] [--rows 2000000]
        [--heavy 200000] [--requests 60] [--reseed | --drop] [--throwaway]
"""

import argparse
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as day_time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg

from bench import usage_seed
from bench.chat import redis_url
from bench.harness import POSTGRES_URL, percentile, print_table, use_database
from tests.live_server import (
    STATIC_LOCK,
    create_database,
    database_url,
    drop_database,
    throwaway_database,
)

DATABASE = "bench_usage"
PERIODS = (7, 30, 90)
WARM_UP = 5
GOAL_P95_MS = 200.0
PLAN_MS = 1.0
HISTORY_MODEL = usage_seed.MODELS[1][0]

Call = Callable[[], object]


@dataclass
class Target:
    name: str
    user: str
    call: Call
    baseline: Call | None
    # Whether its plans are printed: one request of each endpoint, at its worst.
    explained: bool


# Database --------------------------------------------------------------------------


def seeded_shape(url: str) -> tuple | None:
    """Return (users, rows, heavy, seeded_at) of a finished seed at `url`, or None."""
    try:
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT to_regclass(%s) IS NOT NULL", [usage_seed.MARKER_TABLE]
            ).fetchone()
            if not row[0]:
                return None
            return connection.execute(
                f"SELECT users, rows, heavy, seeded_at FROM {usage_seed.MARKER_TABLE}"
            ).fetchone()
    except psycopg.OperationalError:
        return None


@contextmanager
def seeded_database(args: argparse.Namespace) -> Iterator[str]:
    """Yield the URL of a seeded database of the asked size, seeding it if needed."""
    if args.throwaway:
        with throwaway_database(POSTGRES_URL, "bench_") as url:
            prepare(url, args, fresh=True)
            yield url
        return
    name = DATABASE
    if (args.users, args.rows, args.heavy) != (20000, 2000000, 200000):
        name = f"{DATABASE}_{args.users}_{args.rows}_{args.heavy}"
    url = database_url(POSTGRES_URL, name)
    shape = seeded_shape(url)
    fresh = (
        args.reseed
        or shape is None
        or shape[:3]
        != (
            args.users,
            args.rows,
            args.heavy,
        )
    )
    if fresh:
        drop_database(url)
        create_database(url)
    else:
        print(f"Reusing {name}, seeded {shape[3]:%Y-%m-%d %H:%M %Z} (--reseed to redo)")
    prepare(url, args, fresh=fresh)
    yield url


def prepare(url: str, args: argparse.Namespace, *, fresh: bool) -> None:
    """Set Django up on `url`, migrated, static files collected (the pages link
    to them through the manifest, as in production), and seed it if `fresh`."""
    from django.core.management import call_command

    started = time.perf_counter()
    use_database(
        url,
        migrate=True,
        ALLOWED_HOSTS="testserver",
        REDIS_URL=redis_url(),
        API_THROTTLE_USER="1000000/min",
        API_THROTTLE_KEY="1000000/min",
    )
    # Live servers of the test suite collect into the same STATIC_ROOT.
    migrated = time.perf_counter()
    with STATIC_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        call_command("collectstatic", interactive=False, verbosity=0)
    if not fresh:
        return
    steps = [
        ("migrate", migrated - started),
        ("collectstatic", time.perf_counter() - migrated),
    ]
    usage_seed.seed(
        users=args.users,
        rows=args.rows,
        heavy=args.heavy,
        report=lambda step, seconds: steps.append((step, seconds)),
    )
    from points.audit import audit_accounts

    audited = time.perf_counter()
    if problems := audit_accounts():
        raise RuntimeError(f"the seeded ledger does not audit: {problems[:5]}")
    steps.append(("audit_accounts() (clean)", time.perf_counter() - audited))
    print("Seed")
    print_table(["step", "seconds"], steps)


def print_shape() -> None:
    from django.db import connection

    counts = []
    with connection.cursor() as cursor:
        for table in (
            "accounts_user",
            "accounts_apikey",
            "points_transaction",
            "points_usageday",
            "points_usagetotal",
            "points_refusalday",
        ):
            cursor.execute(
                f"SELECT count(*), pg_size_pretty(pg_table_size('{table}')), "
                f"pg_size_pretty(pg_indexes_size('{table}')) FROM {table}"
            )
            counts.append((table, *cursor.fetchone()))
        cursor.execute(
            "SELECT u.email, a.version, (SELECT count(*) FROM points_usageday d "
            "WHERE d.account_id = a.id) FROM points_account a JOIN accounts_user u "
            "ON u.id = a.user_id WHERE u.email IN (%s, %s)",
            [usage_seed.HEAVY_EMAIL, usage_seed.TYPICAL_EMAIL],
        )
        users = cursor.fetchall()
    print("Shape")
    print_table(["table", "rows", "table size", "indexes size"], counts)
    print_table(["user", "ledger rows", "UsageDay rows"], users)


# Targets ---------------------------------------------------------------------------


def period(days: int) -> tuple[date, date, datetime, datetime]:
    """Return the first and last TIME_ZONE day of the last `days`, and their bounds."""
    from django.conf import settings
    from django.utils import timezone

    zone = ZoneInfo(settings.TIME_ZONE)
    until = timezone.localdate(timezone.now(), zone)
    since = until - timedelta(days=days - 1)
    start = datetime.combine(since, day_time.min, zone)
    end = datetime.combine(until + timedelta(days=1), day_time.min, zone)
    return since, until, start, end


def usage_from_rollup(account: Any, days: int, by: str) -> Call:
    """Return the roll-up query the usage page and API run: per day and `by`."""
    from django.db.models import F, Sum

    from points.models import TransactionType, UsageDay

    since, until, *_ = period(days)

    def run() -> list:
        return list(
            UsageDay.objects.filter(
                account=account,
                type=TransactionType.CHAT_USAGE,
                day__gte=since,
                day__lte=until,
            )
            .values("day", by)
            .annotate(
                turns=Sum("rows"),
                points=Sum(-F("amount")),
                prompt_tokens=Sum("prompt_tokens"),
                completion_tokens=Sum("completion_tokens"),
            )
            .order_by("day", by)
        )

    return run


def usage_from_ledger(account: Any | None, days: int, by: str) -> Call:
    """Return the same figures as one GROUP BY over the ledger (all accounts if
    `account` is None)."""
    from django.conf import settings
    from django.db.models import F, Sum
    from django.db.models.functions import Coalesce, TruncDate

    from points.models import Transaction, TransactionType

    *_, start, end = period(days)
    column = {"key_id": Coalesce("api_key_id", 0)}.get(by, F(by))
    rows = Transaction.objects.filter(
        type=TransactionType.CHAT_USAGE, created_at__gte=start, created_at__lt=end
    )
    if account is not None:
        rows = rows.filter(account=account)

    def run() -> list:
        return list(
            rows.annotate(
                day=TruncDate("created_at", tzinfo=ZoneInfo(settings.TIME_ZONE)),
                group=column,
            )
            .values("day", "group")
            .annotate(
                turns=Sum(1),
                points=Sum(-F("amount")),
                prompt_tokens=Sum("prompt_tokens"),
                completion_tokens=Sum("completion_tokens"),
            )
            .order_by("day", "group")
        )

    return run


def dashboard_from_rollup(days: int) -> Call:
    """Return the dashboard's roll-up queries: per day and model, top spenders,
    refusals per day and reason."""
    from django.db.models import F, Sum

    from points.models import RefusalDay, TransactionType, UsageDay, UsageTotal

    since, until, *_ = period(days)

    def run() -> tuple:
        totals = list(
            UsageTotal.objects.filter(day__gte=since, day__lte=until)
            .values("day", "type", "model")
            .annotate(rows=Sum("rows"), amount=Sum("amount"))
            .order_by("day", "type", "model")
        )
        top = list(
            UsageDay.objects.filter(
                day__gte=since, day__lte=until, type=TransactionType.CHAT_USAGE
            )
            .values("account_id")
            .annotate(points=Sum(-F("amount")))
            .order_by("-points")[:10]
        )
        refusals = list(
            RefusalDay.objects.filter(day__gte=since, day__lte=until)
            .values("day", "reason")
            .annotate(count=Sum("count"))
            .order_by("day", "reason")
        )
        return totals, top, refusals

    return run


def history_page(account: Any, *, counted_in_ledger: bool, **filters: Any) -> Call:
    """A history page: its filtered rows' count and its 20 newest rows.

    Counted from the roll-up as the pages do (`selectors.history_count`), or in
    the ledger with `COUNT(*)` as they did before: the baseline.
    """
    from points import selectors

    def run() -> tuple[int, list]:
        rows = selectors.history(account, **filters)
        if counted_in_ledger:
            total = rows.count()
        else:
            total = selectors.history_count(account, **filters)
        return total, list(rows[:20])

    return run


def client_get(client: Any, path: str) -> Call:
    def run() -> bytes:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
        return response.content

    return run


def routed(client: Any, path: str) -> bool:
    """Return whether `path` answers (a 404 until its branch is merged)."""
    logging.getLogger("django.request").setLevel(logging.ERROR)
    return client.get(path).status_code != 404


def targets() -> list[Target]:
    from django.test import Client

    from accounts.models import User
    from points.models import Account

    clients, accounts = {}, {}
    for label, email in (
        ("heavy", usage_seed.HEAVY_EMAIL),
        ("typical", usage_seed.TYPICAL_EMAIL),
        ("staff", usage_seed.STAFF_EMAIL),
    ):
        user = User.objects.get(email=email)
        clients[label] = Client()
        clients[label].force_login(user)
        accounts[label] = Account.objects.get(user=user)

    found = []

    def add(
        name: str,
        user: str,
        path: str,
        query: Call,
        baseline: Call | None,
        days: int = max(PERIODS),
    ) -> None:
        on = routed(clients[user], path)
        call = client_get(clients[user], path) if on else query
        explained = user != "typical" and days == max(PERIODS)
        found.append(
            Target(name if on else f"{name} [query]", user, call, baseline, explained)
        )

    for user in ("heavy", "typical"):
        account = accounts[user]
        for days in PERIODS:
            since, until, *_ = period(days)
            add(
                f"/points/usage/?days={days}",
                user,
                f"/points/usage/?days={days}",
                usage_from_rollup(account, days, "model"),
                usage_from_ledger(account, days, "model"),
                days,
            )
            for by, group in (("model", "model"), ("api_key", "key_id")):
                add(
                    f"/api/user/usage {days}d group_by={by}",
                    user,
                    "/api/user/usage?granularity=day"
                    f"&group_by={by}&since={since}&until={until}",
                    usage_from_rollup(account, days, group),
                    usage_from_ledger(account, days, group),
                    days,
                )
    for days in PERIODS:
        add(
            f"/admin/points/dashboard/?days={days}",
            "staff",
            f"/admin/points/dashboard/?days={days}",
            dashboard_from_rollup(days),
            usage_from_ledger(None, days, "model"),
            days,
        )
    heavy = accounts["heavy"]
    first, last, since, until = period(30)
    # A bound inside a day: the API takes instants, the page whole days.
    noon = since + timedelta(hours=12)
    for path, filters in (
        (f"/points/?model={HISTORY_MODEL}", {"model": HISTORY_MODEL}),
        ("/points/?type=chat_usage", {"types": ["chat_usage"]}),
        (
            f"/points/?type=chat_usage&date_from={first}&date_to={last}",
            {
                "types": ["chat_usage"],
                "since": since,
                "until": until,
            },
        ),
        (
            f"/api/user/points/history?model={HISTORY_MODEL}",
            {"model": HISTORY_MODEL},
        ),
        (
            "/api/user/points/history?"
            + urlencode({"since": noon.isoformat(), "type": "chat_usage"}),
            {"types": ["chat_usage"], "since": noon},
        ),
    ):
        # The endpoint as a whole, then its reads against the same reads with
        # the rows counted in the ledger: the same work on both sides.
        query = history_page(heavy, counted_in_ledger=False, **filters)
        add(path, "heavy", path, query, None)
        found.append(
            Target(
                f"reads of {path}",
                "heavy",
                query,
                history_page(heavy, counted_in_ledger=True, **filters),
                explained=False,
            )
        )
    return found


# Measuring -------------------------------------------------------------------------


def timed(call: Call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(target: Target, requests: int) -> tuple:
    """Return the target's and its baseline's p50/p95/p99 ms, alternating them."""
    sides = [target.call] + ([target.baseline] if target.baseline else [])
    for call in sides:
        for _ in range(WARM_UP):
            call()
    samples: dict[Call, list[float]] = {call: [] for call in sides}
    for index in range(requests):
        for call in sides if index % 2 == 0 else sides[::-1]:
            samples[call].append(timed(call))
    figures = [percentile(samples[target.call], share) for share in (0.5, 0.95, 0.99)]
    if target.baseline is None:
        base = ["", "", ""]
        ratio = ""
    else:
        base = [percentile(samples[target.baseline], s) for s in (0.5, 0.95, 0.99)]
        ratio = figures[1] / base[1]
    goal = "met" if figures[1] <= GOAL_P95_MS else "NOT MET"
    return (target.name, target.user, *figures, *base, ratio, goal)


# Plans -----------------------------------------------------------------------------


def captured(call: Call) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        call()
    return [query["sql"] for query in context.captured_queries]


def explain(sql: str) -> tuple[float, list[str]]:
    """Return the statement's execution time in ms and its plan's lines."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        lines = [row[0] for row in cursor.fetchall()]
    executed = next(line for line in lines if line.startswith("Execution Time"))
    return float(executed.split()[2]), lines


def print_plans(label: str, call: Call) -> None:
    print(f"## {label}")
    for sql in captured(call):
        if not sql.lstrip().upper().startswith("SELECT"):
            print(f"   (not a read) {sql[:100]}")
            continue
        ms, lines = explain(sql)
        if ms <= PLAN_MS:
            print(f"{ms:8.2f} ms  {sql[:110]}")
            print(f"             {lines[0].strip()}")
            continue
        print(f"{ms:8.2f} ms  {sql}")
        for line in lines:
            print(f"             {line}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=2000000)
    parser.add_argument("--heavy", type=int, default=200000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--throwaway", action="store_true")
    args = parser.parse_args()
    if args.drop:
        drop_database(database_url(POSTGRES_URL, DATABASE))
        print(f"Dropped {DATABASE}")
        return
    with seeded_database(args) as _url:
        from django.db import connection

        print_shape()
        found = targets()
        rows = [measure(target, args.requests) for target in found]
        print(
            f"p50/p95/p99 ms of {args.requests} requests each after {WARM_UP}, "
            "alternating with the baseline (the same figures from one GROUP BY "
            "over the ledger; a history page's reads: with COUNT(*) over the ledger); "
            "ratio = p95 / baseline p95; goal p95 <= "
            f"{GOAL_P95_MS:g} ms. [query]: not routed yet, the roll-up query alone"
        )
        print_table(
            [
                "target",
                "user",
                "p50",
                "p95",
                "p99",
                "ledger p50",
                "ledger p95",
                "ledger p99",
                "p95/ledger",
                "goal",
            ],
            rows,
        )
        print(f"Plans: EXPLAIN (ANALYZE, BUFFERS) of statements over {PLAN_MS:g} ms")
        for target in found:
            if target.explained:
                print_plans(f"{target.name} ({target.user})", target.call)
        for target in found:
            if target.explained and target.baseline is not None:
                print_plans(f"ledger baseline of {target.name}", target.baseline)
                break
        connection.close()


if __name__ == "__main__":
    main()
