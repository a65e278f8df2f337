"""A ledger transaction whose writes travel with its COMMIT, on PostgreSQL.

A turn's hold and its capture each lock the account, read it, decide, and
write two or three rows. Sent one by one, every write waits for its answer
while the account stays locked, and between the answers the thread may wait
for the GIL: on one busy account, that wait is what the other turns queue
behind (`pg_stat_activity` showed the lock holder mostly "idle in
transaction").

Inside `ledger_transaction()`, once the ledger has read all it needs under the
lock, `send_with_commit()` switches the connection to psycopg's pipeline mode:
the writes that follow are sent without waiting, and their answers come back
with the COMMIT's, in one round trip. The rules stay where they are; only the
waiting changes. A row inserted meanwhile learns its id when the answers come
back (`insert`), or at once from `flush()` when something needs it earlier.

Statements that need an answer still work in pipeline mode (a fetch waits for
it), but a row count does not: only the ledger's own writes, whose results
nothing reads before the commit, go after `send_with_commit()`. SQLite has no
pipeline, and nothing changes there. An error in a pipelined write is raised at
the next wait, at the latest by the COMMIT, and the transaction is rolled back
as it would have been.
"""

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Model


class _Batch:
    """The writes of one outermost ledger transaction, and its pipeline."""

    def __init__(self) -> None:
        self.pipeline = None
        # Rows inserted in pipeline mode, and the cursors their ids come back on.
        self.pending: list[tuple[Model, object]] = []

    def start(self) -> None:
        if self.pipeline is None and connection.vendor == "postgresql":
            self.pipeline = connection.connection.pipeline()
            self.pipeline.__enter__()

    def flush(self) -> None:
        """Wait for the answers so far and give the inserted rows their ids."""
        pending, self.pending = self.pending, []
        for row, cursor in pending:
            with cursor:
                (row.pk,) = cursor.fetchone()

    def end(self, error: BaseException | None) -> None:
        """Leave pipeline mode; give the inserted rows their ids if all went well."""
        pipeline, self.pipeline = self.pipeline, None
        succeeded = error is None
        try:
            if pipeline is not None:
                # Raised as Django's errors, as the statements' own would be.
                with connection.wrap_database_errors:
                    pipeline.__exit__(type(error) if error else None, error, None)
        except BaseException:
            succeeded = False
            raise
        finally:
            if succeeded:
                self.flush()
            else:
                for _row, cursor in self.pending:
                    cursor.close()
                self.pending = []


_local = threading.local()


def _batch() -> _Batch | None:
    return getattr(_local, "batch", None)


@contextmanager
def ledger_transaction() -> Iterator[None]:
    """`transaction.atomic()`; the outermost one may send its writes with its end.

    Nested in another, it is a plain `atomic()` (a savepoint): the outermost
    decides when the writes are sent. Only a transaction that ends in a COMMIT
    keeps the pipeline through it; one that ends in a savepoint, or in an error,
    leaves pipeline mode first, so that a pipelined write's error is raised
    inside the block and rolled back there as any other.
    """
    if _batch() is not None:
        with transaction.atomic():
            yield
        return
    commits = not connection.in_atomic_block
    batch = _local.batch = _Batch()
    try:
        with transaction.atomic():
            try:
                yield
                if not commits:
                    batch.end(None)
            except BaseException as error:
                batch.end(error)
                raise
    except BaseException as error:
        # A COMMIT that failed: its error came with the pipelined answers.
        batch.end(error)
        raise
    else:
        batch.end(None)
    finally:
        _local.batch = None


def send_with_commit() -> None:
    """Send the rest of this ledger transaction's statements without waiting.

    Called under the account's lock once every read is done. Outside a
    `ledger_transaction()`, or on SQLite, it does nothing.
    """
    batch = _batch()
    if batch is not None:
        batch.start()


def flush() -> None:
    """Give the rows inserted so far in this ledger transaction their ids."""
    batch = _batch()
    if batch is not None:
        batch.flush()


def insert_later(row: Model, sql: str, values: Sequence[object]) -> bool:
    """Send an `INSERT ... RETURNING id` of `row` pipelined; its id is set when the
    answers come back. Return False, sending nothing, when not in pipeline mode.
    """
    batch = _batch()
    if batch is None or batch.pipeline is None:
        return False
    cursor = connection.cursor()
    cursor.execute(sql, values)
    batch.pending.append((row, cursor))
    return True
