"""SQL that makes the ledger table append-only inside the database itself.

The guard rejects UPDATE and DELETE on every row (and TRUNCATE on PostgreSQL), so
no code path, ORM call or hand-written SQL can rewrite history. The only way past
it is the whole-database wipe of `manage.py flush` (which the test runner uses):
this project's database backends lift the guard for the length of that one
transaction and nothing else.
"""

LEDGER_TABLE = "points_transaction"
APPEND_ONLY_MESSAGE = "points_transaction is append-only"
MAINTENANCE_SETTING = "eora.ledger_maintenance"

POSTGRESQL_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION points_transaction_append_only() RETURNS trigger AS $$
    BEGIN
        IF current_setting('{MAINTENANCE_SETTING}', true) = 'on' THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql;
    """,
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

POSTGRESQL_LIFT_FOR_TRANSACTION = f"SET LOCAL {MAINTENANCE_SETTING} = 'on';"

SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER IF NOT EXISTS points_transaction_no_update
    BEFORE UPDATE ON {LEDGER_TABLE}
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS points_transaction_no_delete
    BEFORE DELETE ON {LEDGER_TABLE}
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
