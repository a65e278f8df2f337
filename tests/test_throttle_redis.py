"""The throttles on a real Redis (database 5), and on one that never answers."""

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import User
from common.throttles import (
    STORE_UNAVAILABLE_MESSAGE,
    UserRateThrottle,
    Window,
    count_in_windows,
    throttle_wait,
)
from eora.settings import cache_from_url

REDIS_URL = "redis://127.0.0.1:6379/5"
# Long enough for any healthy machine; a throttle that hangs fails here instead.
HANG_GUARD_SECONDS = 20


class CountingConnection(redis.Connection):
    """A redis-py connection that counts what it writes to the socket."""

    writes = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """Return the URL of a server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_until_stopped() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept_until_stopped, daemon=True)
    acceptor.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/5"
    stop.set()
    acceptor.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        message = f"Redis is not reachable at {REDIS_URL}: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"{message} (set CI to make this a failure)")
    yield client
    client.close()


@pytest.fixture
def redis_cache_prefix(redis_client: redis.Redis, settings: Any) -> Iterator[str]:
    """Point the default cache at Redis, under a prefix of this test's own."""
    prefix = f"eora-throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {**cache_from_url(REDIS_URL), "KEY_PREFIX": prefix}}
    yield prefix
    for key in redis_client.scan_iter(match=f"{prefix}:*"):
        redis_client.delete(key)


@pytest.fixture
def api(make_user: Callable[..., User]) -> APIClient:
    secret = create_api_key(user=make_user(), name="test")[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def stored_key(window: Window) -> str:
    return caches["default"].make_key(window.key)


def anonymous_request() -> Any:
    request = RequestFactory().get("/api/user/points")
    request.user = AnonymousUser()
    return request


def run_guarded(call: Callable[[], object]) -> list[object]:
    """Return what `call` returned, failing the test if it has not within the guard."""
    answers: list[object] = []
    caller = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    caller.start()
    caller.join(timeout=HANG_GUARD_SECONDS)
    assert not caller.is_alive(), "the throttle hung on a Redis that never answers"
    return answers


@pytest.mark.parametrize(
    "throttle",
    [
        pytest.param(lambda request: throttle_wait(request) is None, id="plain"),
        pytest.param(
            lambda request: UserRateThrottle().allow_request(request, None), id="drf"
        ),
    ],
)
def test_throttle_lets_request_through_when_redis_never_answers(
    throttle: Callable[[Any], bool],
    silent_redis_url: str,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a cache on a Redis that accepts connections and never answers
    settings.CACHES = {"default": cache_from_url(silent_redis_url)}
    request = anonymous_request()

    # when a request is throttled
    answers = run_guarded(lambda: throttle(request))

    # then it is let through, and the outage is logged as an error
    assert answers == [True]
    assert [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR
    ] == [STORE_UNAVAILABLE_MESSAGE]


def test_counter_left_without_expiry_gets_one_on_next_request(
    redis_client: redis.Redis, redis_cache_prefix: str
) -> None:
    # given a counter without a TTL, as the check-then-increment bug left them
    window = Window(key="throttle_user_1", limit=10, duration=60)
    redis_client.set(stored_key(window), 5)

    # when the caller sends another request
    count_in_windows([window])

    # then the counter expires with the window again
    assert int(redis_client.get(stored_key(window))) == 6
    assert 0 < redis_client.pttl(stored_key(window)) <= 60_000


def test_window_closing_between_requests_never_leaves_counter_without_expiry(
    redis_client: redis.Redis, redis_cache_prefix: str
) -> None:
    # given a window whose counter expires just before the next request
    window = Window(key="throttle_user_1", limit=10, duration=60)
    redis_client.set(stored_key(window), 3, px=1)
    time.sleep(0.01)

    # when the request is counted
    wait = count_in_windows([window])

    # then it opens a new window, with its expiry
    assert wait is None
    assert int(redis_client.get(stored_key(window))) == 1
    assert 0 < redis_client.pttl(stored_key(window)) <= 60_000


def test_counts_each_sequential_request_exactly(
    redis_client: redis.Redis, redis_cache_prefix: str
) -> None:
    window = Window(key="throttle_api_key_1", limit=10, duration=60)

    waits = [count_in_windows([window]) for _ in range(7)]

    assert waits == [None] * 7
    assert int(redis_client.get(stored_key(window))) == 7


def test_refuses_past_the_limit_until_the_window_closes(
    redis_client: redis.Redis, redis_cache_prefix: str
) -> None:
    # given a caller who used the 3 requests of a window that closes in 42 s
    window = Window(key="throttle_user_1", limit=3, duration=60)
    assert [count_in_windows([window]) for _ in range(3)] == [None] * 3
    redis_client.pexpire(stored_key(window), 42_000)

    # when it sends one more
    wait = count_in_windows([window])

    # then it is refused until the window closes
    assert wait is not None
    assert 41 < wait <= 42


def test_user_and_key_rates_are_counted_in_one_round_trip(
    make_user: Callable[..., User],
    redis_client: redis.Redis,
    redis_cache_prefix: str,
    settings: Any,
) -> None:
    # given a Redis connection that counts its writes, warmed up (connected, script
    # loaded) by another caller's request
    cache = settings.CACHES["default"]
    options = {**cache["OPTIONS"], "connection_class": CountingConnection}
    settings.CACHES = {"default": {**cache, "OPTIONS": options}}
    throttle_wait(anonymous_request())
    user = make_user()
    key = create_api_key(user=user, name="counted")[0]
    request = RequestFactory().get("/api/chat")
    request.user, request.auth = user, key
    CountingConnection.writes = 0

    # when a request with a user and an API key is throttled
    wait = throttle_wait(request)

    # then both rates were counted, with one command sent to Redis
    assert wait is None
    assert CountingConnection.writes == 1
    for scope, ident in (("user", user.pk), ("api_key", key.pk)):
        stored = caches["default"].make_key(f"throttle_{scope}_{ident}")
        assert int(redis_client.get(stored)) == 1
        assert redis_client.pttl(stored) > 0


def test_api_answers_429_with_retry_after_of_the_window_left(
    api: APIClient, redis_client: redis.Redis, redis_cache_prefix: str, settings: Any
) -> None:
    # given a user who spent the 2 requests of a window that closes in 30 s
    settings.API_THROTTLE_RATES = {"user": "2/min", "api_key": "100/min"}
    assert api.get("/api/user/points").status_code == 200
    assert api.get("/api/user/points").status_code == 200
    [counter] = redis_client.scan_iter(match=f"{redis_cache_prefix}:*throttle_user_*")
    redis_client.pexpire(counter, 30_000)

    # when the user asks again
    response = api.get("/api/user/points")

    # then the answer is 429, retry after the rest of the window
    assert response.status_code == 429
    assert 29 <= int(response["Retry-After"]) <= 30
    assert response.json()["retry_after"] == int(response["Retry-After"])


def test_drf_view_counts_user_and_key_rates_in_one_round_trip(
    api: APIClient,
    redis_client: redis.Redis,
    redis_cache_prefix: str,
    settings: Any,
) -> None:
    # given a Redis connection that counts its writes, warmed up by a request
    cache = settings.CACHES["default"]
    options = {**cache["OPTIONS"], "connection_class": CountingConnection}
    settings.CACHES = {"default": {**cache, "OPTIONS": options}}
    assert api.get("/api/user/points").status_code == 200
    CountingConnection.writes = 0

    # when a DRF view answers a request made with an API key
    response = api.get("/api/user/points")

    # then both rates were counted, with one command sent to Redis
    assert response.status_code == 200
    assert CountingConnection.writes == 1
    for scope in ("user", "api_key"):
        [counter] = redis_client.scan_iter(
            match=f"{redis_cache_prefix}:*throttle_{scope}_*"
        )
        assert int(redis_client.get(counter)) == 2


def test_requests_in_their_own_contexts_share_one_redis_connection(
    redis_client: redis.Redis, redis_cache_prefix: str
) -> None:
    # Under ASGI each request runs in a context of its own, where Django's
    # `caches` would give it a cache, a pool and a Redis connection of its own.
    window = Window(key="throttle_user_shared", limit=100, duration=60)

    async def one_request() -> float | None:
        return await sync_to_async(count_in_windows, thread_sensitive=False)([window])

    def connections_received() -> int:
        return int(redis_client.info("stats")["total_connections_received"])

    asyncio.run(one_request())  # the process's first opens the connection
    before = connections_received()
    waits = [asyncio.run(one_request()) for _ in range(5)]

    assert waits == [None] * 5
    assert int(redis_client.get(stored_key(window))) == 6
    assert connections_received() == before
