"""How many rows a filtered history holds, counted from the daily roll-up.

The history page's "page N of M" and the history API's `total_records` count
the filtered rows. Counting them in the ledger reads every row that matches (a
long history: all of them); whole days are counted from `UsageDay` instead, and
only a bound inside a day reads that part of its day from the ledger.
"""

import itertools
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from points.limits import day_start
from points.models import TransactionType
from points.selectors import WEB_PAGES, history, history_count
from tests.points.usage_ledger import (
    FIRST_MINUTE,
    LAST_MINUTE,
    MODELS,
    NEXT_WEEK,
    SINCE,
    UNTIL,
    SeededLedger,
    seed_ledger,
)

LEDGER_READ = re.compile(r'FROM "points_transaction"', re.IGNORECASE)


@pytest.fixture
def seeded(settings, user: User) -> SeededLedger:
    return seed_ledger(user, settings)


def bounds() -> list[tuple[datetime | None, datetime | None]]:
    """Whole days, parts of days, one instant, reversed and open bounds."""
    midnight = day_start(FIRST_MINUTE.date() + timedelta(days=1))  # 2026-12-01 KST
    return [
        (None, None),
        (day_start(SINCE), None),
        (None, day_start(UNTIL)),
        (day_start(SINCE), midnight),
        (midnight, day_start(UNTIL)),
        # Inside the days on both sides of the Seoul midnight.
        (LAST_MINUTE, FIRST_MINUTE),
        (LAST_MINUTE + timedelta(seconds=1), NEXT_WEEK),
        (LAST_MINUTE - timedelta(hours=3), FIRST_MINUTE + timedelta(hours=30)),
        (day_start(SINCE), FIRST_MINUTE),
        (FIRST_MINUTE, None),
        (None, LAST_MINUTE + timedelta(seconds=1)),
        (FIRST_MINUTE, FIRST_MINUTE),
        (NEXT_WEEK, LAST_MINUTE),
    ]


def test_every_filter_counts_what_the_ledger_holds(seeded: SeededLedger) -> None:
    # given a ledger with turns on both sides of a Seoul midnight, free points,
    # a refund, two models, web turns and two keys (one revoked)
    account = seeded.account
    types = [None, [TransactionType.CHAT_USAGE], ["refund", "daily_free"]]
    models = [None, *MODELS, "gpt-4o", "never-used"]
    keys = [None, WEB_PAGES, seeded.key.pk, seeded.revoked_key.pk]
    checked = 0
    for chosen_types, model, api_key, (since, until) in itertools.product(
        types, models, keys, bounds()
    ):
        filters = {
            "types": chosen_types,
            "model": model,
            "api_key": api_key,
            "since": since,
            "until": until,
        }
        # when the rows are counted from the roll-up
        counted = history_count(account, **filters)

        # then it is the number of rows the history shows, exactly
        assert counted == history(account, **filters).count(), filters
        checked += counted > 0
    assert checked > 100


def test_whole_days_are_counted_without_reading_the_ledger(
    seeded: SeededLedger,
) -> None:
    whole = {"since": day_start(SINCE), "until": day_start(UNTIL), "model": MODELS[0]}

    with CaptureQueriesContext(connection) as queries:
        assert history_count(seeded.account, **whole) == 4

    assert len(queries) == 1
    assert not LEDGER_READ.search(queries[0]["sql"])


def test_a_bound_inside_a_day_reads_only_that_part_of_the_ledger(
    seeded: SeededLedger,
) -> None:
    # A minute before the first turn up to the end of the week after.
    since = LAST_MINUTE - timedelta(minutes=1)

    with CaptureQueriesContext(connection) as queries:
        counted = history_count(seeded.account, since=since, until=day_start(UNTIL))

    assert counted == history(seeded.account, since=since).count()
    ledger_reads = [
        query["sql"] for query in queries if LEDGER_READ.search(query["sql"])
    ]
    # The roll-up for the whole days, the ledger from `since` to its midnight.
    assert len(queries) == 2
    assert len(ledger_reads) == 1
    assert '"points_transaction"."created_at" <' in ledger_reads[0]


def test_history_page_numbers_its_pages_from_the_count(
    seeded: SeededLedger, client: Client
) -> None:
    client.force_login(seeded.user)

    response = client.get(reverse("points:overview"), {"model": MODELS[0]})

    paginator = response.context["page"].paginator
    rows = history(seeded.account, model=MODELS[0]).count()
    assert paginator.count == rows
    assert paginator.num_pages == 1
    assert response.context["page"].object_list.count() == rows


def test_history_api_total_counts_a_filter_inside_a_day(seeded: SeededLedger) -> None:
    api = APIClient()
    api.force_authenticate(seeded.user)
    since = LAST_MINUTE - timedelta(seconds=30)
    until = FIRST_MINUTE + timedelta(seconds=30)

    body = api.get(
        "/api/user/points/history",
        {"since": since.isoformat(), "until": until.isoformat(), "limit": 1},
    ).json()

    assert (
        body["total_records"]
        == history(seeded.account, since=since, until=until).count()
    )
    assert body["total_records"] > 1
    assert len(body["history"]) == 1


def test_a_bound_at_the_end_of_the_calendar_counts_nothing(user: User) -> None:
    api = APIClient()
    api.force_authenticate(user)

    # The day after 9999-12-31 does not exist: no whole day to sum.
    response = api.get(
        "/api/user/points/history", {"since": "9999-12-31T00:00:01+09:00"}
    )

    assert response.status_code == 200
    assert response.json()["total_records"] == 0
