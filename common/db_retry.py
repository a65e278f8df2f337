"""Read-only requests survive a database connection that was dropped under them.

The pool checks each connection as it is handed out, but one can still die while
a request holds it (PostgreSQL restarted, a backend terminated). A GET, HEAD or
OPTIONS request that failed on such a connection changed nothing, so it is safe
to close the broken connection and run the request once more. Writes are never
repeated: their client learns of the error and decides.
"""

import logging

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from common.middleware import NonBlockingMiddleware

logger = logging.getLogger(__name__)

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOST_CONNECTION_ERRORS = (OperationalError, InterfaceError)
# Set on a request whose view failed on a lost connection; read once, to retry.
RETRY_ATTRIBUTE = "_eora_retry_on_new_connection"
# Stands in for the failed view's answer until the request is run again.
PLACEHOLDER_STATUS = 503


def close_broken_connections() -> None:
    """Close the unusable connections, and drop their pools' dead idle ones.

    A connection lost to a restart means the idle ones in its pool are lost too.
    Checking them all at once spares the next request psycopg_pool's growing
    pause between failed checks on the way out of the pool (1 s, 2 s, 4 s...).
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and connection.is_usable():
            continue
        connection.close()
        pool = getattr(connection, "pool", None)
        if pool is not None:
            pool.check()


class RetryReadsOnLostConnectionMiddleware(NonBlockingMiddleware):
    """Run a read-only request once more when its view lost the database.

    `process_exception` sees the error itself (by the time an outer middleware
    gets the answer, Django has turned it into a 500 page); it closes the broken
    connections in the view's own thread and marks the request, and `__call__`
    then runs everything below this middleware again.
    """

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        if _take_retry_mark(request):
            response = self.get_response(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        if _take_retry_mark(request):
            response = await self.get_response(request)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if (
            request.method not in READ_ONLY_METHODS
            or not isinstance(exception, LOST_CONNECTION_ERRORS)
            or hasattr(request, RETRY_ATTRIBUTE)
        ):
            return None
        logger.warning(
            "Database error in %s %s; retrying once on a new connection: %s",
            request.method,
            request.path,
            exception,
        )
        close_broken_connections()
        setattr(request, RETRY_ATTRIBUTE, True)
        return HttpResponse(status=PLACEHOLDER_STATUS)


def _take_retry_mark(request: HttpRequest) -> bool:
    """Return whether the request is to be run again; a request runs again once."""
    if getattr(request, RETRY_ATTRIBUTE, False):
        setattr(request, RETRY_ATTRIBUTE, False)
        return True
    return False
