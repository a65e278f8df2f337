"""The usage roll-ups (`UsageDay`, `UsageTotal`, `ConversationDay`, `ChatDay`),
kept by a trigger on the ledger.

Every insert into the ledger adds its row to one `UsageDay` row (the account's
day, type, model, API key and tier) and one `UsageTotal` row (the same without
the account, spread over `USAGE_TOTAL_SHARDS` rows by account id); a chat turn
also to the account's `ChatDay` row and, saved in a conversation, to one
`ConversationDay` row; all in the same
statement's transaction, so a roll-up is never behind its ledger and costs the
application no round trip. Days are TIME_ZONE's dates: on PostgreSQL the zone is
written into the trigger function when it is installed, on SQLite each
connection computes it (`eora_local_day`). `rebuild` recomputes both tables
from the ledger (and reinstalls the trigger with the current TIME_ZONE);
`points_audit` compares them with the ledger.

SQLite drops a table's triggers when a migration rebuilds it: a migration that
alters `points_transaction` calls `install` again, as it does the ledger guard.
"""

from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction

from points.models import USAGE_TOTAL_SHARDS, LedgerSums

LOCAL_DAY_FUNCTION = "eora_local_day"
# The sums `UsageDay` and `UsageTotal` keep besides their row count.
SUMS = tuple(field.name for field in LedgerSums._meta.fields if field.name != "rows")
# What each sum adds from a ledger row (`NEW` in the trigger, the row in a rebuild).
_ROW_VALUES = {
    "amount": "{r}.amount",
    "free_amount": "{r}.free_amount",
    "prompt_tokens": "COALESCE({r}.prompt_tokens, 0)",
    "completion_tokens": "COALESCE({r}.completion_tokens, 0)",
    "list_cost": "COALESCE({r}.list_cost, 0)",
    "discount": "{r}.discount",
    "uncharged_points": "{r}.uncharged_points",
}
DAY_GROUP = ("account_id", "day", "type", "model", "key_id", "tier")
TOTAL_GROUP = ("day", "type", "model", "tier", "shard")
CONVERSATION_GROUP = ("account_id", "day", "conversation_id")
CHAT_GROUP = ("account_id", "day")
# Each roll-up: its table, the columns it groups by, the sums it keeps, and which
# ledger rows it sums (SQL on the row `{r}`; None for all).
TABLES = (
    ("points_usageday", DAY_GROUP, SUMS, None),
    ("points_usagetotal", TOTAL_GROUP, SUMS, None),
    (
        "points_conversationday",
        CONVERSATION_GROUP,
        ("amount",),
        "{r}.conversation_id IS NOT NULL",
    ),
    (
        "points_chatday",
        CHAT_GROUP,
        ("amount", "free_amount", "prompt_tokens", "completion_tokens"),
        "{r}.type = 'chat_usage'",
    ),
)


def _day_sql(vendor: str, column: str) -> str:
    if vendor == "postgresql":
        zone = ZoneInfo(settings.TIME_ZONE).key.replace("'", "''")
        return f"(({column}) AT TIME ZONE '{zone}')::date"
    return f"{LOCAL_DAY_FUNCTION}({column})"


def _group_values(r: str, vendor: str) -> dict[str, str]:
    return {
        "account_id": f"{r}.account_id",
        "day": _day_sql(vendor, f"{r}.created_at"),
        "type": f"{r}.type",
        "model": f"{r}.model",
        "key_id": f"COALESCE({r}.api_key_id, 0)",
        "tier": f"{r}.tier",
        "shard": f"({r}.account_id % {USAGE_TOTAL_SHARDS})",
        "conversation_id": f"{r}.conversation_id",
    }


def _upsert(
    table: str, group: tuple[str, ...], sums: tuple[str, ...], vendor: str
) -> str:
    values = _group_values("NEW", vendor)
    columns = [*group, "rows", *sums]
    row = (
        [values[name] for name in group]
        + ["1"]
        + [_ROW_VALUES[name].format(r="NEW") for name in sums]
    )
    updates = ", ".join(
        f"{name} = {table}.{name} + excluded.{name}" for name in ("rows", *sums)
    )
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(row)}) "
        f"ON CONFLICT ({', '.join(group)}) DO UPDATE SET {updates};"
    )


def _postgresql_install(tables: tuple = TABLES) -> list[str]:
    body = []
    for table, group, sums, where in tables:
        upsert = _upsert(table, group, sums, "postgresql")
        if where is not None:
            upsert = f"IF {where.format(r='NEW')} THEN {upsert} END IF;"
        body.append(upsert)
    statements = "\n            ".join(body)
    return [
        f"""
        CREATE OR REPLACE FUNCTION points_usage_rollup() RETURNS trigger AS $$
        BEGIN
            {statements}
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql;
        """,
        "DROP TRIGGER IF EXISTS points_transaction_usage_rollup ON points_transaction;",
        """
        CREATE TRIGGER points_transaction_usage_rollup
        AFTER INSERT ON points_transaction
        FOR EACH ROW EXECUTE FUNCTION points_usage_rollup();
        """,
    ]


SQLITE_TRIGGER = "points_transaction_usage_rollup"


def _sqlite_install(tables: tuple = TABLES) -> list[str]:
    statements = [f"DROP TRIGGER IF EXISTS {SQLITE_TRIGGER};"]
    for index, (table, group, sums, where) in enumerate(tables):
        name = f"{SQLITE_TRIGGER}_{index}"
        when = f" WHEN {where.format(r='NEW')}" if where is not None else ""
        statements += [
            f"DROP TRIGGER IF EXISTS {name};",
            f"CREATE TRIGGER {name} AFTER INSERT ON points_transaction{when}"
            f" BEGIN {_upsert(table, group, sums, 'sqlite')} END;",
        ]
    return statements


POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS points_transaction_usage_rollup ON points_transaction;",
    "DROP FUNCTION IF EXISTS points_usage_rollup();",
]
SQLITE_REMOVE = [
    f"DROP TRIGGER IF EXISTS {SQLITE_TRIGGER}{suffix};"
    for suffix in ("", *(f"_{index}" for index in range(len(TABLES))))
]


def install(connection: Any = default_connection, tables: tuple = TABLES) -> None:
    """Install (or replace) the trigger that keeps the roll-ups (`tables`: the
    roll-ups a migration knows of; all by default)."""
    statements = (
        _postgresql_install(tables)
        if connection.vendor == "postgresql"
        else _sqlite_install(tables)
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def remove(connection: Any = default_connection) -> None:
    statements = (
        POSTGRESQL_REMOVE if connection.vendor == "postgresql" else SQLITE_REMOVE
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _local_day(value: str | None) -> str | None:
    """Return TIME_ZONE's date of a UTC timestamp as SQLite stores it."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE)).date().isoformat()


def on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Give a new SQLite connection the function the trigger calls."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            LOCAL_DAY_FUNCTION, 1, _local_day, deterministic=True
        )


def _aggregate_sql(
    group: tuple[str, ...], sums: tuple[str, ...], where: str | None, vendor: str
) -> str:
    """Return SELECT of the ledger summed as a roll-up keeps it."""
    values = _group_values("t", vendor)
    keys = [values[name] for name in group]
    totals = [f"SUM({_ROW_VALUES[name].format(r='t')})" for name in sums]
    condition = f" WHERE {where.format(r='t')}" if where is not None else ""
    return (
        f"SELECT {', '.join(f'{k} AS {n}' for k, n in zip(keys, group, strict=True))},"
        f" COUNT(*) AS rows, "
        + ", ".join(f"{s} AS {n}" for s, n in zip(totals, sums, strict=True))
        + f" FROM points_transaction t{condition} GROUP BY {', '.join(keys)}"
    )


def rebuild(
    connection: Any = default_connection, tables: tuple = TABLES
) -> tuple[int, ...]:
    """Recompute the roll-ups from the ledger; return their new row counts.

    The ledger is locked against inserts (SHARE) while it runs on PostgreSQL, so
    no row is missed or counted twice; SQLite's write transaction does the same.
    """
    vendor = connection.vendor
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            if vendor == "postgresql":
                cursor.execute("LOCK TABLE points_transaction IN SHARE MODE")
        install(connection, tables)
        with connection.cursor() as cursor:
            counts = []
            for table, group, sums, where in tables:
                cursor.execute(f"DELETE FROM {table}")
                columns = ", ".join((*group, "rows", *sums))
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) "
                    f"{_aggregate_sql(group, sums, where, vendor)}"
                )
                counts.append(cursor.rowcount)
    return tuple(counts)


def differences(connection: Any = default_connection) -> list[str]:
    """Return each roll-up row that disagrees with the ledger, described."""
    vendor = connection.vendor
    found: list[str] = []
    with connection.cursor() as cursor:
        for table, group, sums, where in TABLES:
            names = (*group, "rows", *sums)
            cursor.execute(
                f"SELECT {', '.join(names)} FROM {table} WHERE rows <> 0 OR "
                + " OR ".join(f"{name} <> 0" for name in sums)
            )
            kept = {row[: len(group)]: row[len(group) :] for row in cursor.fetchall()}
            cursor.execute(_aggregate_sql(group, sums, where, vendor))
            expected = {
                row[: len(group)]: row[len(group) :] for row in cursor.fetchall()
            }
            kept = {_key(k): tuple(v) for k, v in kept.items()}
            expected = {_key(k): tuple(v) for k, v in expected.items()}
            for key in sorted(set(kept) | set(expected), key=str):
                if kept.get(key) != expected.get(key):
                    found.append(
                        f"{table} {dict(zip(group, key, strict=True))}: kept "
                        f"{kept.get(key)}, ledger {expected.get(key)}"
                    )
    return found


def _key(values: tuple) -> tuple:
    # Dates and UUIDs come back as objects from PostgreSQL, as text from SQLite.
    return tuple(
        v.isoformat() if isinstance(v, date) else v.hex if isinstance(v, UUID) else v
        for v in values
    )
