"""Hold + capture through the ledger against the same SQL sent raw, on PostgreSQL.

A cycle is `points.services.reserve` then `points.services.settle`: the two
transactions of a chat turn. The baseline replays the statements those calls
send, captured at run time (Django's `execute_wrapper`: text, parameters and
results), through a psycopg connection opened with Django's own connection
parameters (cursor class, binding, adapters), in the same two transactions,
pipelining the statements the ledger pipelines (`points.pipeline`). A
parameter that differs between two captured cycles and follows a value returned
earlier in the cycle (the new hold's id, the account's version + 1, ...) is
computed from the replay's own results; the audit checks the replayed ledger.

Variants: client-side binding (Django's default) and server-side binding with
prepared statements (`server_side_binding`, `prepare_threshold`), on both sides.

    .venv/bin/python -m bench.ledger [--seconds 2] [--rounds 3]

BENCH_POSTGRES_URL names the server (default postgres://postgres@127.0.0.1:5432/
test); the benchmark creates a database bench_... on it and drops it at the end.
"""

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from bench.harness import POSTGRES_URL, print_table, use_database
from tests.live_server import throwaway_database

VARIANTS = {
    "client-side binding": {},
    "prepared statements": {"server_side_binding": True, "prepare_threshold": 0},
}
WARM_UP_CYCLES = 50
TOP_UP = 10**12
# About what a short chat turn with the demo model counts.
MODEL = "eora-demo"
PROMPT_TOKENS = 30
COMPLETION_TOKENS = 40


@dataclass
class Statement:
    sql: str
    params: list[object] | None
    rows: list[tuple]
    # The last statement of its transaction: COMMIT follows.
    commit: bool = False
    # Sent in pipeline mode (`points.pipeline`): its answer comes with the COMMIT's.
    pipelined: bool = False


@dataclass(frozen=True)
class Follows:
    """A parameter that is a result of an earlier statement plus a fixed delta."""

    statement: int
    row: int
    column: int
    delta: int


def make_turn(
    email: str = "bench@example.com",
) -> tuple[Callable[[], object], Callable[[object], object]]:
    """Return the two ledger calls of a chat turn, on a new account."""
    from django.conf import settings

    from accounts.services import register_user
    from points import services
    from points.pricing import rates_for

    user = register_user(email=email, password=None)
    account = services.account_of(user=user)
    services.grant(account=account, amount=TOP_UP)
    rates = rates_for(MODEL)

    def reserve() -> services.Reservation:
        return services.reserve(
            account=account,
            model=MODEL,
            rates=rates,
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=settings.CHAT_MAX_COMPLETION_TOKENS,
            minimum_completion_tokens=settings.CHAT_MIN_COMPLETION_TOKENS,
        )

    def settle(reservation: services.Reservation) -> services.Settlement:
        return services.settle(
            reservation=reservation,
            counted=services.TokenCount(PROMPT_TOKENS, COMPLETION_TOKENS),
        )

    return reserve, settle


def capture(reserve: Callable, settle: Callable) -> list[Statement]:
    """Run one cycle; return the statements it sent, with their results."""
    from django.db import connection

    sent: list[Statement] = []

    def record(
        execute: Callable, sql: str, params: Sequence | None, many: bool, context: dict
    ) -> object:
        raw = connection.connection
        pipelined = raw.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF
        result = execute(sql, params, many, context)
        if pipelined:
            # Wait for its answer here (a nested pipeline syncs as it ends), to
            # record it; the replay sends it pipelined as the ledger does.
            with raw.pipeline():
                pass
        cursor = context["cursor"].cursor
        rows = cursor.fetchall() if cursor.description else []
        if rows:
            cursor.scroll(0, mode="absolute")
        params = None if params is None else list(params)
        sent.append(Statement(sql, params, rows, pipelined=pipelined))
        return result

    with connection.execute_wrapper(record):
        reservation = reserve()
        sent[-1].commit = True
        settle(reservation)
        sent[-1].commit = True
    return sent


def plan_replay(first: list[Statement], second: list[Statement]) -> list[Statement]:
    """Return the statements, each parameter that varies tied to an earlier result.

    A parameter that differs between two cycles by as much as a result of an
    earlier statement does, in both at the same distance, follows that result;
    of several, the nearest (the new hold's id follows the INSERT's id, the
    account's new version its locked version + 1).
    """
    if [s.sql for s in first] != [s.sql for s in second]:
        raise RuntimeError("two cycles sent different statements")
    plan = []
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        params = a.params and list(a.params)
        pairs = zip(a.params or (), b.params or (), strict=True)
        for position, (x, y) in enumerate(pairs):
            if x == y or not isinstance(x, int) or isinstance(x, bool):
                continue
            candidates = [
                Follows(k, r, c, x - value)
                for k in range(index)
                for r, row in enumerate(first[k].rows)
                for c, value in enumerate(row)
                if isinstance(value, int) and y - second[k].rows[r][c] == x - value
            ]
            if candidates:
                params[position] = min(candidates, key=lambda f: abs(f.delta))
        plan.append(Statement(a.sql, params, [], a.commit, a.pipelined))
    return plan


def replay(connection: psycopg.Connection, plan: list[Statement]) -> None:
    """Send the plan, pipelining what the ledger pipelined, through each COMMIT."""
    results: list[list[tuple]] = []
    pipeline = None
    waiting: list[tuple[int, psycopg.Cursor]] = []
    for statement in plan:
        params = statement.params and [
            results[p.statement][p.row][p.column] + p.delta
            if isinstance(p, Follows)
            else p
            for p in statement.params
        ]
        if statement.pipelined and pipeline is None:
            pipeline = connection.pipeline()
            pipeline.__enter__()
        cursor = connection.execute(statement.sql, params)
        results.append([])
        if pipeline is None:
            results[-1] = cursor.fetchall() if cursor.description else []
        else:
            waiting.append((len(results) - 1, cursor))
        if statement.commit:
            connection.commit()
            if pipeline is not None:
                pipeline.__exit__(None, None, None)
                pipeline = None
                for index, answered in waiting:
                    results[index] = answered.fetchall() if answered.description else []
                waiting = []


def cycles_per_second(run: Callable[[], None], seconds: float) -> tuple[float, float]:
    """Return cycles a second and client CPU milliseconds a cycle."""
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        run()
        count += 1
    elapsed = time.perf_counter() - started
    return count / elapsed, (time.process_time() - cpu) / count * 1000


def measure(
    turn: tuple[Callable, Callable], options: dict, seconds: float, rounds: int
) -> tuple:
    """Return statements a cycle, then cycles/s and CPU ms of services and raw."""
    from django.db import connection

    from points.audit import audit_accounts

    connection.close()
    connection.settings_dict["OPTIONS"] = dict(options)
    reserve, settle = turn

    def services() -> None:
        settle(reserve())

    for _ in range(WARM_UP_CYCLES):
        services()
    plan = plan_replay(capture(*turn), capture(*turn))
    with psycopg.connect(**connection.get_connection_params()) as raw_connection:
        raw_connection.autocommit = False

        def raw() -> None:
            replay(raw_connection, plan)

        for _ in range(WARM_UP_CYCLES):
            raw()
        samples: dict[Callable, list[tuple[float, float]]] = {services: [], raw: []}
        for round_ in range(rounds):
            for run in (services, raw) if round_ % 2 == 0 else (raw, services):
                samples[run].append(cycles_per_second(run, seconds))
    if problems := audit_accounts():
        raise RuntimeError(f"the replay broke the ledger: {problems}")
    medians = [
        statistics.median(sample[i] for sample in samples[run])
        for run in (services, raw)
        for i in (0, 1)
    ]
    return len(plan), *medians, medians[0] / medians[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database(POSTGRES_URL, "bench_") as url:
        use_database(url, migrate=True)
        turn = make_turn()
        rows = [
            (name, *measure(turn, options, args.seconds, args.rounds))
            for name, options in VARIANTS.items()
        ]
        from django.db import connection

        connection.close()
    print(
        "reserve + settle cycles/s, one thread, one account; median of "
        f"{args.rounds} alternating rounds of {args.seconds:g} s; goal ratio >= 0.5"
    )
    print_table(
        [
            "variant",
            "statements",
            "services c/s",
            "services CPU ms",
            "raw c/s",
            "raw CPU ms",
            "services/raw",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
