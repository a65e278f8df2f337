"""GET /api/user/usage: the user's usage from the roll-up, in the /api envelope."""

from datetime import date, timedelta

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from points.apis import RANGE_TOO_LONG_MESSAGE, SINCE_AFTER_UNTIL_MESSAGE
from points.models import TransactionType
from points.usage import MAX_RANGE_DAYS, period_start
from tests.points.usage_ledger import (
    SINCE,
    TODAY,
    UNTIL,
    SeededLedger,
    credits_of,
    figures_of,
    ledger_rows,
    local_day,
    seed_ledger,
)

URL = "/api/user/usage"
FIGURES = (
    "points",
    "free_points",
    "prompt_tokens",
    "completion_tokens",
    "turns",
    "uncharged_points",
)


@pytest.fixture
def seeded(settings, user: User) -> SeededLedger:
    return seed_ledger(user, settings)


@pytest.fixture
def signed_in(seeded: SeededLedger) -> APIClient:
    client = APIClient()
    client.force_authenticate(seeded.user)
    return client


def get(client: Client, **params: str):
    with time_machine.travel(TODAY, tick=False):
        return client.get(URL, params)


def figures(row: dict) -> dict[str, int]:
    return {name: row[name] for name in FIGURES}


def test_usage_defaults_to_the_last_30_days_by_day(signed_in: APIClient) -> None:
    body = get(signed_in).json()

    assert (body["success"], body["granularity"], body["group_by"]) == (
        True,
        "day",
        None,
    )
    assert (body["since"], body["until"]) == ("2026-11-10", "2026-12-09")
    assert body["time_zone"] == "Asia/Seoul"
    assert len(body["series"]) == 30
    assert body["series"][0]["period"] == "2026-11-10"
    assert all(row["group"] is None for row in body["series"])


def test_usage_figures_equal_the_ledger_rows(
    signed_in: APIClient, seeded: SeededLedger
) -> None:
    body = get(signed_in, since=SINCE.isoformat(), until=UNTIL.isoformat()).json()

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    assert body["totals"] == figures_of(rows)
    assert body["credits"] == credits_of(rows)
    assert body["credits"][TransactionType.REFUND] == 321
    assert body["totals"]["uncharged_points"] > 0
    assert body["totals"]["free_points"] > 0
    for row in body["series"]:
        day = date.fromisoformat(row["period"])
        assert figures(row) == figures_of([r for r in rows if local_day(r) == day])


def test_usage_by_week_and_model(signed_in: APIClient, seeded: SeededLedger) -> None:
    body = get(
        signed_in,
        since=SINCE.isoformat(),
        until=UNTIL.isoformat(),
        granularity="week",
        group_by="model",
    ).json()

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    assert [g["id"] for g in body["groups"]] != []
    assert {g["id"] for g in body["groups"]} == {
        r.model for r in rows if r.type == TransactionType.CHAT_USAGE
    }
    assert sorted({row["period"] for row in body["series"]}) == [
        "2026-11-23",
        "2026-11-30",
        "2026-12-07",
    ]
    for row in body["series"]:
        monday = date.fromisoformat(row["period"])
        assert figures(row) == figures_of(
            [
                r
                for r in rows
                if period_start(local_day(r), "week") == monday
                and r.model == row["group"]
            ]
        )


def test_usage_by_month_and_api_key_through_an_api_key(
    seeded: SeededLedger, api: APIClient
) -> None:
    # The `api` fixture's key belongs to the same user: API keys read usage too.
    body = get(
        api,
        since=SINCE.isoformat(),
        until=UNTIL.isoformat(),
        granularity="month",
        group_by="api_key",
    ).json()

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    groups = {g["id"]: (g["label"], g["revoked"]) for g in body["groups"]}
    assert groups[str(seeded.revoked_key.pk)] == ("Old laptop", True)
    assert groups[str(seeded.key.pk)] == ("CI server", False)
    assert "0" in groups
    for row in body["series"]:
        month = date.fromisoformat(row["period"])
        assert figures(row) == figures_of(
            [
                r
                for r in rows
                if local_day(r).replace(day=1) == month
                and str(r.api_key_id or 0) == row["group"]
            ]
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2026-12-02", "until": "2026-12-01"}, SINCE_AFTER_UNTIL_MESSAGE),
        ({"since": "2026-12-10"}, SINCE_AFTER_UNTIL_MESSAGE),
        (
            {"since": "2025-12-08", "until": "2026-12-09"},
            RANGE_TOO_LONG_MESSAGE % {"days": MAX_RANGE_DAYS},
        ),
    ],
)
def test_usage_refuses_bad_ranges(
    signed_in: APIClient, params: dict[str, str], message: str
) -> None:
    response = get(signed_in, **params)

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_request"
    assert response.json()["error"] == str(message)


def test_usage_accepts_exactly_366_days(signed_in: APIClient) -> None:
    since = UNTIL - timedelta(days=MAX_RANGE_DAYS - 1)
    response = get(signed_in, since=since.isoformat(), until=UNTIL.isoformat())

    assert response.status_code == 200
    assert len(response.json()["series"]) == MAX_RANGE_DAYS


@pytest.mark.parametrize(
    "params",
    [
        {"granularity": "year"},
        {"group_by": "tier"},
        {"since": "yesterday"},
        {"since": ""},
        {"page": "2"},
    ],
)
def test_usage_refuses_unknown_or_malformed_parameters(
    signed_in: APIClient, params: dict[str, str]
) -> None:
    response = get(signed_in, **params)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_usage_needs_authentication(db: None) -> None:
    response = APIClient().get(URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_usage_query_count_does_not_grow_with_the_ledger(
    signed_in: APIClient, django_assert_num_queries
) -> None:
    get(signed_in)  # today's free points are granted on the first request
    # The account, the roll-up, the keys' names.
    with django_assert_num_queries(3):
        get(
            signed_in,
            since=SINCE.isoformat(),
            until=UNTIL.isoformat(),
            group_by="api_key",
        )


def test_usage_schema_documents_the_endpoint(signed_in: APIClient) -> None:
    schema = signed_in.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/user/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "granularity",
        "group_by",
        "since",
        "until",
    }
    assert "UsageCredits" in schema["components"]["schemas"]
