"""SQLite backend whose flush may empty the append-only ledger table."""

from django.db.backends.sqlite3 import base, operations

from points.ledger_guard import LEDGER_TABLE, SQLITE_INSTALL, SQLITE_REMOVE


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if LEDGER_TABLE in tables and statements:
            # SQLite's DDL is transactional and Django runs a flush in one
            # transaction, so the guard is back before anyone else can write.
            statements = [*SQLITE_REMOVE, *statements, *SQLITE_INSTALL]
        return statements


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
