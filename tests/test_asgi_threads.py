"""Each ASGI request's sync code runs on a thread lent by a pool, one a request.

The loops run with `asyncio.run`, as under uvicorn: `async_to_sync` would run
thread-sensitive code on the calling thread instead.
"""

import asyncio
import threading
import time

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.core.signals import request_started

from common.asgi import ExecutorPool, PooledThreadASGIHandler, PooledThreadContext

pytestmark = pytest.mark.django_db(transaction=True)


def scope(path: str = "/api/models") -> dict:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 8300),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }


async def request(handler: PooledThreadASGIHandler) -> int:
    sent: list[dict] = []
    received = False

    async def receive() -> dict:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await handler(scope(), receive, send)
    return sent[0]["status"]


@pytest.fixture
def threads_of_requests():
    """Record the thread each request's sync `request_started` receivers ran on."""
    seen: list[threading.Thread] = []

    def record(**kwargs) -> None:
        seen.append(threading.current_thread())
        time.sleep(0.05)  # long enough for concurrent requests to overlap

    request_started.connect(record, weak=False)
    try:
        yield seen
    finally:
        request_started.disconnect(record)


def test_requests_one_after_another_reuse_one_thread(threads_of_requests) -> None:
    handler = PooledThreadASGIHandler()
    handler_pool = ExecutorPool()

    async def two_requests() -> list[int]:
        statuses = []
        for _ in range(2):
            async with PooledThreadContext(handler_pool):
                statuses.append(await request(handler))
        return statuses

    started = threading.active_count()
    statuses = asyncio.run(two_requests())

    assert statuses == [401, 401]  # /api/models needs credentials
    first, second = threads_of_requests
    assert first is second
    assert first is not threading.main_thread()
    # The thread made for the first request is the only one left behind.
    assert handler_pool.idle == 1
    assert threading.active_count() <= started + 1


def test_concurrent_requests_each_get_their_own_thread(threads_of_requests) -> None:
    handler = PooledThreadASGIHandler()

    async def concurrent(count: int) -> list[int]:
        return await asyncio.gather(*(request(handler) for _ in range(count)))

    assert asyncio.run(concurrent(3)) == [401, 401, 401]
    assert len(set(threads_of_requests)) == 3
    # The three executors were given back, to serve the next requests.
    asyncio.run(concurrent(3))
    assert len(set(threads_of_requests)) == 3


def test_a_call_outliving_its_request_does_not_take_the_next_requests_thread() -> None:
    pool = ExecutorPool()

    async def scenario() -> tuple[threading.Thread, ...]:
        gate = asyncio.Event()

        async def late() -> threading.Thread:
            await gate.wait()
            return await sync_to_async(threading.current_thread)()

        async with PooledThreadContext(pool):
            lent = await sync_to_async(threading.current_thread)()
            task = asyncio.ensure_future(late())
        # The request ended; the next one takes the same executor.
        async with PooledThreadContext(pool):
            following = await sync_to_async(threading.current_thread)()
            gate.set()
            late_thread = await task
        return lent, following, late_thread

    lent, following, late_thread = asyncio.run(scenario())
    assert lent is following
    assert late_thread is not lent
    assert late_thread is not threading.main_thread()


def test_idle_executors_beyond_the_limit_are_shut_down() -> None:
    pool = ExecutorPool(max_idle=1)
    first, second = pool.take(), pool.take()
    first.submit(lambda: None).result()
    second.submit(lambda: None).result()

    pool.give_back(first)
    pool.give_back(second)

    assert pool.idle == 1
    assert pool.take() is first
    with pytest.raises(RuntimeError):
        second.submit(lambda: None)


def test_nested_contexts_keep_the_outer_thread() -> None:
    pool = ExecutorPool()

    async def nested() -> tuple[threading.Thread, ...]:
        async with PooledThreadContext(pool) as outer:
            before = await sync_to_async(threading.current_thread)()
            async with PooledThreadContext(pool):
                inner = await sync_to_async(threading.current_thread)()
            assert SyncToAsync.context_to_thread_executor.get(outer) is not None
        return before, inner

    before, inner = asyncio.run(nested())
    assert before is inner
    assert pool.idle == 1
