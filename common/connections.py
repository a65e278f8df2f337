"""Database connections around waits that are not the database's."""

from django.db import connection


def return_to_pool() -> None:
    """Give this thread's connection back to the pool, if it is pooled and idle.

    A chat turn waits seconds for the model after its hold is placed. Django keeps
    a thread's connection until the request ends, so without this each turn in
    flight would keep a pooled connection it does not use, and the pool's size
    (DATABASE_POOL_MAX a worker) would cap the turns a worker has in flight.
    Inside a transaction, or without a pool, nothing happens.
    """
    if connection.connection is None or connection.in_atomic_block:
        return
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()
