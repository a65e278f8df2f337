"""PostgreSQL backend whose flush may empty the append-only ledger table."""

from django.db.backends.postgresql import base, operations

from points.ledger_guard import LEDGER_TABLE, POSTGRESQL_LIFT_FOR_TRANSACTION


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if LEDGER_TABLE in tables and statements:
            # Django runs a flush's statements in one transaction, so SET LOCAL lifts
            # the guard for exactly this wipe.
            statements.insert(0, POSTGRESQL_LIFT_FOR_TRANSACTION)
        return statements


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
