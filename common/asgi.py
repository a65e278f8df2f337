"""Django's ASGI handler, with each request's sync thread taken from a pool.

Django runs every request in a `ThreadSensitiveContext`: the request's sync code
(its signals, sync middleware, the ORM calls of an async view) runs on one
thread of its own. asgiref makes that thread for the request and, at the end,
starts one more thread to join it. Starting a thread waits for the new thread to
take the GIL, so under load two thread starts a request were a fifth of the
event loop's time on the `/v1` path (py-spy, bench/gateway.py).

`PooledThreadContext` keeps the same rule, one request, one thread, but lends
each request a single-thread executor from an idle pool and takes it back at
the end. A worker thread then serves requests one after another, as a WSGI
server's threads do; its database connection is closed (handed back to the
pool) by Django's `request_finished`, as before.

A thread-sensitive call that outlives its request (a settlement shielded from a
client's disconnect) keeps asgiref's own rule: it gets an executor of its own,
not one lent to the next request.
"""

from concurrent.futures import ThreadPoolExecutor
from threading import Lock

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle executors beyond this many are shut down instead of kept: a burst of
# requests leaves no more threads behind it than this.
MAX_IDLE_EXECUTORS = 64


class ExecutorPool:
    """Single-thread executors, lent one a request."""

    def __init__(self, max_idle: int = MAX_IDLE_EXECUTORS) -> None:
        self.max_idle = max_idle
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        return len(self._idle)


POOL = ExecutorPool()


class PooledThreadContext(ThreadSensitiveContext):
    """A `ThreadSensitiveContext` whose thread is lent by `pool`."""

    def __init__(self, pool: ExecutorPool = POOL) -> None:
        super().__init__()
        self.pool = pool

    async def __aenter__(self) -> "PooledThreadContext":
        await super().__aenter__()
        if self.token is not None:
            # The outermost context: its calls go to the lent executor.
            SyncToAsync.context_to_thread_executor[self] = self.pool.take()
        return self

    async def __aexit__(self, exc, value, tb) -> None:
        executor = SyncToAsync.context_to_thread_executor.pop(self, None)
        # With its executor gone, the base class only restores the context.
        await super().__aexit__(exc, value, tb)
        if executor is not None:
            self.pool.give_back(executor)


class PooledThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler, running each request on a pooled thread."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(
                f"Django can only handle ASGI/HTTP connections, not {scope['type']}."
            )
        async with PooledThreadContext():
            await self.handle(scope, receive, send)
