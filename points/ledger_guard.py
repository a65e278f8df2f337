"""SQL that makes the ledger table append-only inside the database itself.

The guard rejects UPDATE and DELETE on every row (and TRUNCATE on PostgreSQL), so
no code path, ORM call or hand-written SQL can rewrite history. It stands aside
only for a connection in maintenance: on PostgreSQL the session setting
`eora.ledger_maintenance = 'on'`, on SQLite the connection's
`eora_ledger_maintenance()` function returning 1. Nothing in the application
turns maintenance on; the test suite does (`lift_for_tests`), so that the test
runner's `flush` can empty the tables between tests.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LEDGER_TABLE = "points_transaction"
APPEND_ONLY_MESSAGE = "points_transaction is append-only"
MAINTENANCE_SETTING = "eora.ledger_maintenance"
MAINTENANCE_FUNCTION = "eora_ledger_maintenance"
_lifted = False

POSTGRESQL_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION points_transaction_append_only() RETURNS trigger AS $$
    BEGIN
        IF current_setting('{MAINTENANCE_SETTING}', true) = 'on' THEN
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql;
    """,
    f"DROP TRIGGER IF EXISTS points_transaction_no_update_delete ON {LEDGER_TABLE};",
    f"DROP TRIGGER IF EXISTS points_transaction_no_truncate ON {LEDGER_TABLE};",
    f"""
    CREATE TRIGGER points_transaction_no_update_delete
    BEFORE UPDATE OR DELETE ON {LEDGER_TABLE}
    FOR EACH ROW EXECUTE FUNCTION points_transaction_append_only();
    """,
    f"""
    CREATE TRIGGER points_transaction_no_truncate
    BEFORE TRUNCATE ON {LEDGER_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION points_transaction_append_only();
    """,
]

POSTGRESQL_REMOVE = [
    f"DROP TRIGGER IF EXISTS points_transaction_no_truncate ON {LEDGER_TABLE};",
    f"DROP TRIGGER IF EXISTS points_transaction_no_update_delete ON {LEDGER_TABLE};",
    "DROP FUNCTION IF EXISTS points_transaction_append_only();",
]

SQLITE_INSTALL = [
    "DROP TRIGGER IF EXISTS points_transaction_no_update;",
    "DROP TRIGGER IF EXISTS points_transaction_no_delete;",
    f"""
    CREATE TRIGGER points_transaction_no_update
    BEFORE UPDATE ON {LEDGER_TABLE} WHEN NOT {MAINTENANCE_FUNCTION}()
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;
    """,
    f"""
    CREATE TRIGGER points_transaction_no_delete
    BEFORE DELETE ON {LEDGER_TABLE} WHEN NOT {MAINTENANCE_FUNCTION}()
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;
    """,
]

SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS points_transaction_no_update;",
    "DROP TRIGGER IF EXISTS points_transaction_no_delete;",
]


def install(connection) -> None:
    statements = (
        POSTGRESQL_INSTALL if connection.vendor == "postgresql" else SQLITE_INSTALL
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def remove(connection) -> None:
    statements = (
        POSTGRESQL_REMOVE if connection.vendor == "postgresql" else SQLITE_REMOVE
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _maintenance() -> int:
    return int(_lifted)


def prepare_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Give a new connection what the guard asks of it (`connection_created`)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(MAINTENANCE_FUNCTION, 0, _maintenance)
    elif connection.vendor == "postgresql" and _lifted:
        with connection.cursor() as cursor:
            cursor.execute(f"SET {MAINTENANCE_SETTING} = 'on'")


def lift_for_tests() -> None:
    """Put every connection made from now on in maintenance. Tests only."""
    global _lifted
    _lifted = True


@contextmanager
def enforced(connection: Any) -> Iterator[None]:
    """Enforce the guard inside the current transaction, maintenance or not."""
    global _lifted
    lifted, _lifted = _lifted, False
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL {MAINTENANCE_SETTING} = 'off'")
        yield
    finally:
        _lifted = lifted
