from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from common.pagination import INVALID_CURSOR_MESSAGE
from points import services
from points.apis import SINCE_NOT_BEFORE_UNTIL_MESSAGE
from points.models import ModelRate, TransactionType
from points.pricing import Rates, Usage

# More pages than any test here makes: a cursor that never ends fails the test.
MAX_PAGES = 10


def history_pages(api: APIClient, **query: object) -> list[dict]:
    """Return every page of GET /api/user/points/history, following `next_cursor`."""
    pages = [api.get("/api/user/points/history", query).json()]
    while pages[-1]["next_cursor"] is not None and len(pages) < MAX_PAGES:
        query["cursor"] = pages[-1]["next_cursor"]
        pages.append(api.get("/api/user/points/history", query).json())
    return pages


def test_points_in_seed_shape(api: APIClient, user) -> None:
    body = api.get("/api/user/points").json()

    assert body["success"] is True
    assert (body["points"], body["available"], body["held"]) == (100_000, 100_000, 0)
    assert (body["total_earned"], body["total_spent"]) == (100_000, 0)
    assert body["last_updated"]


def test_points_field_is_total_available_under_open_hold(api: APIClient, user) -> None:
    services.place_hold(account=user.points_account, amount=500)
    body = api.get("/api/user/points").json()
    assert (body["points"], body["available"], body["held"]) == (99_500, 99_500, 500)


def test_history_in_seed_shape_newest_first(api: APIClient, user) -> None:
    usage = Usage(44, 33, "gpt-4o", Rates(Decimal(2), Decimal(2)))
    hold = services.place_hold(account=user.points_account, amount=1_000)
    services.capture_hold(hold=hold, actual_cost=usage.cost, usage=usage)

    body = api.get("/api/user/points/history").json()

    assert (body["success"], body["total_records"], body["next_cursor"]) == (
        True,
        2,
        None,
    )
    newest, bonus = body["history"]
    assert newest["type"] == "chat_usage"
    assert (newest["amount"], newest["balance_after"]) == (-154, 99_846)
    assert newest["description"] == services.usage_description(usage)
    details = newest["token_details"]
    assert (
        details["prompt_tokens"],
        details["completion_tokens"],
        details["total_tokens"],
    ) == (44, 33, 77)
    # A row written without a tier: no list cost of its own, nothing taken off.
    assert (details["list_cost"], details["discount"], details["tier"]) == (None, 0, "")
    assert bonus["token_details"] is None
    with translation.override(settings.LANGUAGE_CODE):
        signup_bonus = services.CREDIT_DESCRIPTIONS[TransactionType.SIGNUP_BONUS]
        assert bonus["description"] == gettext(signup_bonus) % {"points": "100,000"}
    assert set(newest) == {
        "type",
        "amount",
        "description",
        "timestamp",
        "balance_after",
        "token_details",
    }


def test_history_pages_with_cursor(api: APIClient, user) -> None:
    for amount in range(1, 26):
        services.grant(account=user.points_account, amount=amount)

    pages = history_pages(api, limit=10)

    amounts = [row["amount"] for page in pages for row in page["history"]]
    assert amounts == [*range(25, 0, -1), 100_000]
    assert [len(page["history"]) for page in pages] == [10, 10, 6]
    assert pages[-1]["next_cursor"] is None
    assert {page["total_records"] for page in pages} == {26}


def test_history_rows_written_at_the_same_instant_each_come_once(
    api: APIClient, user
) -> None:
    # given five rows written at the same instant as each other
    with time_machine.travel(timezone.now(), tick=False):
        for amount in range(1, 6):
            services.grant(account=user.points_account, amount=amount)

    # when they are read two at a time
    pages = history_pages(api, limit=2)

    # then each comes exactly once, newest first
    amounts = [row["amount"] for page in pages for row in page["history"]]
    assert amounts == [5, 4, 3, 2, 1, 100_000]
    assert len({row["timestamp"] for page in pages for row in page["history"]}) == 2


def test_history_cursor_keeps_the_filters(api: APIClient, user) -> None:
    for amount in range(1, 6):
        services.grant(
            account=user.points_account, amount=amount, type=TransactionType.REFUND
        )
        services.grant(account=user.points_account, amount=amount * 10)

    pages = history_pages(api, limit=2, type="refund")

    amounts = [row["amount"] for page in pages for row in page["history"]]
    assert amounts == [5, 4, 3, 2, 1]
    assert {page["total_records"] for page in pages} == {5}


def test_history_defaults_to_twenty_rows(api: APIClient, user) -> None:
    for _ in range(25):
        services.grant(account=user.points_account, amount=1)
    assert len(api.get("/api/user/points/history").json()["history"]) == 20


def test_history_filters_by_type_and_date(api: APIClient, user) -> None:
    services.grant(account=user.points_account, amount=5, type=TransactionType.REFUND)
    since = (timezone.now() - timedelta(minutes=1)).isoformat()

    body = api.get(
        "/api/user/points/history", {"type": "refund", "since": since}
    ).json()

    assert [row["type"] for row in body["history"]] == ["refund"]
    assert body["total_records"] == 1
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert (
        api.get("/api/user/points/history", {"since": future}).json()["history"] == []
    )


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"limit": ""},
        {"cursor": 0},
        {"cursor": ""},
        {"type": "nope"},
        {"type": ""},
        {"since": "yesterday"},
        {"since": ""},
        {"until": ""},
    ],
)
def test_history_rejects_bad_query(api: APIClient, query) -> None:
    response = api.get("/api/user/points/history", query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_history_rejects_since_not_before_until(api: APIClient) -> None:
    instant = timezone.now().isoformat()

    response = api.get("/api/user/points/history", {"since": instant, "until": instant})

    assert response.status_code == 400
    assert response.json()["error"] == str(SINCE_NOT_BEFORE_UNTIL_MESSAGE)


def test_history_rejects_a_cursor_not_handed_out(api: APIClient) -> None:
    # "p=x": a position that is not a version.
    response = api.get("/api/user/points/history", {"cursor": "cD14"})

    assert response.status_code == 400
    assert response.json()["errors"]["cursor"] == [str(INVALID_CURSOR_MESSAGE)]


@pytest.mark.parametrize("rows", [20, 100])
def test_history_query_count_does_not_grow_with_rows(
    api: APIClient, user, rows: int, django_assert_num_queries
) -> None:
    for _ in range(rows):
        services.grant(account=user.points_account, amount=1)
    # The key (with its user), its last-used time (first use), the account, the page.
    with django_assert_num_queries(4):
        api.get("/api/user/points/history", {"limit": rows})


@pytest.mark.parametrize("rows", [20, 100])
def test_history_next_page_query_count_does_not_grow_with_rows(
    api: APIClient, user, rows: int, django_assert_num_queries
) -> None:
    for _ in range(rows):
        services.grant(account=user.points_account, amount=1)
    cursor = api.get("/api/user/points/history", {"limit": 2}).json()["next_cursor"]

    # The account, the filtered count, the page (the key is kept from the first
    # page's request).
    with django_assert_num_queries(3):
        api.get(
            "/api/user/points/history",
            {"limit": rows, "cursor": cursor, "type": "top_up"},
        )


def test_points_query_count(api: APIClient, django_assert_num_queries) -> None:
    # The key (with its user), its last-used time (first use), the account.
    with django_assert_num_queries(3):
        api.get("/api/user/points")


def test_models_lists_rates(api: APIClient, settings) -> None:
    settings.LLM_MODELS = ["gpt-4o-mini", "gpt-4o"]
    ModelRate.objects.create(model="gpt-4o", prompt_rate="1.5", completion_rate="6")

    body = api.get("/api/models").json()

    assert body["models"] == [
        {
            "id": "gpt-4o-mini",
            "default": True,
            "prompt_rate": "2.0000",
            "completion_rate": "2.0000",
        },
        {
            "id": "gpt-4o",
            "default": False,
            "prompt_rate": "1.5000",
            "completion_rate": "6.0000",
        },
    ]


def test_one_user_never_sees_anothers_points(make_user) -> None:
    other = make_user()
    services.grant(account=other.points_account, amount=777)
    mine = make_user()
    _key, secret = create_api_key(user=mine, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert client.get("/api/user/points").json()["points"] == 100_000
    history = client.get("/api/user/points/history").json()["history"]
    assert [row["amount"] for row in history] == [100_000]


def test_points_split_free_and_paid_with_reset_time(
    api: APIClient, user, settings
) -> None:
    # Given 1,000 free points a day, and the account used first at 12:00 KST
    settings.DAILY_FREE_POINTS = 1_000
    noon = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    with time_machine.travel(noon, tick=False):
        services.debit(account=user.points_account, amount=300)
        body = api.get("/api/user/points").json()

    assert (body["free_points"], body["paid_points"]) == (700, 100_000)
    assert body["available"] == 100_700
    assert body["free_points_reset_at"] == "2026-12-03T00:00:00+09:00"


def test_points_page_shows_free_and_paid_points(client, user, settings) -> None:
    settings.DAILY_FREE_POINTS = 1_000
    client.force_login(user)

    page = client.get("/points/").content.decode()

    assert 'id="points-free">1,000<' in page
    assert 'id="paid-points">100,000<' in page
    assert "data-countdown" in page
