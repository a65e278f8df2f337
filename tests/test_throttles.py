"""The throttles on the database cache, the fallback without REDIS_URL.

(On Redis: tests/test_throttle_redis.py.)
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.management import call_command

from common.throttles import Window, count_in_windows
from eora.settings import cache_from_url

# The start of a clock hour, so that an hour's window does not close mid-test.
HOUR_START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def database_cache(db: None, settings: Any) -> None:
    settings.CACHES = {"default": cache_from_url("")}
    # The migration makes the table for the cache configured then (locmem here).
    call_command("createcachetable", verbosity=0)


def test_database_cache_refuses_past_the_limit_until_the_window_closes(
    database_cache: None,
) -> None:
    window = Window(key="throttle_user_1", limit=3, duration=60)

    with time_machine.travel(HOUR_START + timedelta(seconds=15), tick=False):
        waits = [count_in_windows([window]) for _ in range(4)]

    assert waits == [None, None, None, 45]


def test_database_cache_keeps_an_hours_count_past_its_default_timeout(
    database_cache: None,
) -> None:
    # given a caller who used the 2 requests an hour allows
    window = Window(key="throttle_api_key_1", limit=2, duration=3600)
    with time_machine.travel(HOUR_START, tick=False):
        assert [count_in_windows([window]) for _ in range(2)] == [None, None]

    # when it asks again ten minutes later (the cache's default timeout is five)
    with time_machine.travel(HOUR_START + timedelta(minutes=10), tick=False):
        wait = count_in_windows([window])

    # then it is still refused, until the hour is over
    assert wait == 50 * 60
