"""Throttles shared by every API, counted in a cache all workers see.

Kept apart from `common.api`: DRF reads these classes while it defines `APIView`,
so this module must not import `rest_framework.views`.

Each rate is a fixed window per caller. On Redis a request is counted in every
window that applies to it by one script: one round trip, atomic, and a window's
counter can never be left without its expiry (which would refuse that caller
for good). Other caches (the database cache without REDIS_URL, the local memory
cache of the tests) count in windows aligned on the clock; the database cache's
increment reads and writes back, so it is only approximate under races.

If the store is down or does not answer in time the request is let through and
the error logged: an outage of the rate limiter must not take the API down.
"""

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver
from redis import RedisError
from rest_framework import throttling

logger = logging.getLogger(__name__)

STORE_ERRORS = (RedisError, OSError, DatabaseError)
STORE_UNAVAILABLE_MESSAGE = "Throttle store unavailable; request not throttled."

# KEYS: one counter per window. ARGV: each window's length in milliseconds.
# Return each window's count, this request included, and its milliseconds left.
# A counter without an expiry (just opened, or left so by an older release) gets
# one here, in the same atomic step as its increment.
COUNT_SCRIPT = """
local replies = {}
for index, key in ipairs(KEYS) do
  local count = redis.call("INCR", key)
  local left = redis.call("PTTL", key)
  if left < 0 then
    left = tonumber(ARGV[index])
    redis.call("PEXPIRE", key, left)
  end
  replies[2 * index - 1] = count
  replies[2 * index] = left
end
return replies
"""


@dataclass(frozen=True)
class Window:
    """One caller's rate: at most `limit` requests per `duration` seconds."""

    key: str
    limit: int
    duration: int


@dataclass(frozen=True)
class Spent:
    """A window's requests so far, this one included, and its seconds left."""

    count: int
    seconds_left: float


# The throttle store, one a process (see `_store`).
_shared: dict[str, BaseCache] = {}


def _store() -> BaseCache:
    """Return the cache the throttles count in: one for the whole process.

    Django's `caches[alias]` is one per asyncio context, so under ASGI every
    request built its own Redis connection pool and opened a new connection
    (a TCP connect and a handshake) to count itself. The throttles share one
    instance instead; redis-py's pool, like the other caches, is thread-safe.
    """
    store = _shared.get("store")
    if store is None:
        store = _shared["store"] = caches.create_connection(DEFAULT_CACHE_ALIAS)
    return store


@receiver(setting_changed)
def _forget_store(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        _shared.clear()


def count_in_windows(windows: Sequence[Window]) -> float | None:
    """Count one request in every window; return the seconds to wait if refused.

    Return None when every window still had room for it.
    """
    if not windows:
        return None
    cache = _store()
    try:
        if isinstance(cache, RedisCache):
            spent = _count_in_redis(cache, windows)
        else:
            spent = [_count_in_cache(cache, window) for window in windows]
    except STORE_ERRORS:
        logger.exception(STORE_UNAVAILABLE_MESSAGE)
        return None
    waits = [
        used.seconds_left
        for window, used in zip(windows, spent, strict=True)
        if used.count > window.limit
    ]
    return max(waits, default=None)


def _count_in_redis(cache: RedisCache, windows: Sequence[Window]) -> list[Spent]:
    keys = [cache.make_and_validate_key(window.key) for window in windows]
    # Django's own client and connection pool, with the timeouts of CACHES.
    client = cache._cache.get_client(keys[0], write=True)
    script = client.register_script(COUNT_SCRIPT)
    replies = script(keys=keys, args=[window.duration * 1000 for window in windows])
    return [
        # A window about to close still asks for a wait, however short.
        Spent(count=int(count), seconds_left=max(int(left), 1) / 1000)
        for count, left in zip(replies[::2], replies[1::2], strict=True)
    ]


def _count_in_cache(cache: BaseCache, window: Window) -> Spent:
    now = time.time()
    opened = now - now % window.duration
    seconds_left = opened + window.duration - now
    key = f"{window.key}:{int(opened)}"
    timeout = math.ceil(seconds_left)
    cache.add(key, 0, timeout=timeout)
    try:
        count = cache.incr(key)
    except ValueError:
        # Evicted between add and incr: this request opens the window again.
        count = 1
        cache.set(key, count, timeout=timeout)
    # The database cache's incr writes the key back with the default timeout.
    cache.touch(key, timeout=timeout)
    return Spent(count=count, seconds_left=seconds_left)


class ConfiguredRateThrottle(throttling.SimpleRateThrottle):
    """A DRF throttle whose rate is read from API_THROTTLE_RATES when used.

    DRF's own throttle reads a history from the cache and writes it back, so
    processes that race overshoot the rate; this one counts atomically.
    """

    wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def window(self, request: Any, view: Any = None) -> Window | None:
        """Return the caller's window, or None if this rate does not apply."""
        rate = self.get_rate()
        key = None if rate is None else self.get_cache_key(request, view)
        if key is None:
            return None
        limit, duration = self.parse_rate(rate)
        return Window(key=key, limit=limit, duration=duration)

    def allow_request(self, request: Any, view: Any) -> bool:
        window = self.window(request, view)
        self.wait_seconds = None if window is None else count_in_windows([window])
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


class UserRateThrottle(ConfiguredRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return self.cache_format % {
                "scope": self.scope,
                "ident": self.get_ident(request),
            }
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ApiKeyRateThrottle(ConfiguredRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        # `request.auth` is the API key a request was authenticated with (a
        # session leaves it None); any saved model with a primary key will do.
        key_id = getattr(getattr(request, "auth", None), "pk", None)
        if key_id is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key_id}


REQUEST_THROTTLES = (UserRateThrottle, ApiKeyRateThrottle)


def throttle_wait(request: Any) -> float | None:
    """Count the request against the caller's user and key rates at once.

    Return None if it may proceed, else the seconds until it may be retried. On
    Redis every rate is counted in one round trip.
    """
    throttles = [throttle_class() for throttle_class in REQUEST_THROTTLES]
    windows = [window for t in throttles if (window := t.window(request))]
    return count_in_windows(windows)


class RequestRateThrottle(throttling.BaseThrottle):
    """Every rate of REQUEST_THROTTLES for a DRF view, in one round trip.

    DRF asks each throttle class in turn; one class that counts the user's and
    the key's windows together spares a view the second trip to Redis.
    """

    wait_seconds: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.wait_seconds = throttle_wait(request)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds
