"""The points page's history filters, its pages and its CSV link."""

import html
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.api_keys import create_api_key, revoke_api_key
from points import services
from points.forms import DATES_REVERSED_MESSAGE
from points.models import Account, TransactionType
from points.selectors import history
from tests.points.turns import chat_turn, seed_history

SEOUL = ZoneInfo("Asia/Seoul")
URL = reverse("points:overview")


def shown(response) -> list[int]:
    return [row.pk for row in response.context["page"].object_list]


@pytest.fixture
def signed_in(client: Client, account: Account) -> Client:
    client.force_login(account.user)
    return client


def test_history_filters_by_type(signed_in: Client, account: Account) -> None:
    refund = services.grant(account=account, amount=5, type=TransactionType.REFUND)
    services.grant(account=account, amount=7)

    response = signed_in.get(URL, {"type": "refund"})

    assert shown(response) == [refund.pk]


def test_history_filters_by_model(signed_in: Client, account: Account) -> None:
    mini = chat_turn(account, model="gpt-4o-mini")
    chat_turn(account, model="gpt-4o")

    response = signed_in.get(URL, {"model": "gpt-4o-mini"})

    assert shown(response) == [mini.pk]


def test_history_filters_by_api_key(signed_in: Client, account: Account) -> None:
    key, _secret = create_api_key(user=account.user, name="laptop")
    by_key = chat_turn(account, api_key=key)
    chat_turn(account)

    response = signed_in.get(URL, {"api_key": key.pk})

    assert shown(response) == [by_key.pk]


def test_history_filters_web_pages_as_rows_without_a_key(
    signed_in: Client, account: Account
) -> None:
    key, _secret = create_api_key(user=account.user, name="laptop")
    chat_turn(account, api_key=key)
    on_the_web = chat_turn(account)

    response = signed_in.get(URL, {"api_key": "web", "type": "chat_usage"})

    assert shown(response) == [on_the_web.pk]


def test_history_date_range_takes_whole_seoul_days(
    signed_in: Client, account: Account
) -> None:
    # given rows at 23:59 on the 1st, 00:00 and 23:59 on the 2nd, 00:00 on the 3rd
    instants = [
        datetime(2025, 3, 1, 23, 59, tzinfo=SEOUL),
        datetime(2025, 3, 2, 0, 0, tzinfo=SEOUL),
        datetime(2025, 3, 2, 23, 59, 59, tzinfo=SEOUL),
        datetime(2025, 3, 3, 0, 0, tzinfo=SEOUL),
    ]
    rows = []
    for instant in instants:
        with time_machine.travel(instant, tick=False):
            rows.append(services.grant(account=account, amount=1))

    # when the range is the 2nd to the 2nd
    response = signed_in.get(URL, {"date_from": "2025-03-02", "date_to": "2025-03-02"})

    # then both rows of the 2nd, and only they, are shown
    assert shown(response) == [rows[2].pk, rows[1].pk]


def test_history_combines_filters(signed_in: Client, account: Account) -> None:
    key, _secret = create_api_key(user=account.user, name="laptop")
    wanted = chat_turn(account, model="gpt-4o-mini", api_key=key)
    chat_turn(account, model="gpt-4o", api_key=key)
    chat_turn(account, model="gpt-4o-mini")

    response = signed_in.get(
        URL, {"type": "chat_usage", "model": "gpt-4o-mini", "api_key": key.pk}
    )

    assert shown(response) == [wanted.pk]


def test_history_pages_keep_the_filters(signed_in: Client, account: Account) -> None:
    for amount in range(1, 26):
        services.grant(account=account, amount=amount, type=TransactionType.REFUND)
        services.grant(account=account, amount=1)

    first = signed_in.get(URL, {"type": "refund"}).content.decode()
    older = re.search(r'<a href="(\?[^"]*page=2[^"]*)"', first)
    assert older is not None
    query = parse_qs(urlsplit(html.unescape(older.group(1))).query)
    second = signed_in.get(URL, {name: values[0] for name, values in query.items()})

    assert query == {"type": ["refund"], "page": ["2"]}
    assert [row.amount for row in second.context["page"].object_list] == [5, 4, 3, 2, 1]


def test_history_filter_choices_are_the_users_own_models_and_keys(
    signed_in: Client, account: Account, make_user
) -> None:
    laptop, _secret = create_api_key(user=account.user, name="laptop")
    old, _secret = create_api_key(user=account.user, name="old")
    revoke_api_key(user=account.user, key_id=old.pk)
    chat_turn(account, model="gpt-4o-mini", api_key=laptop)
    other = make_user()
    create_api_key(user=other, name="someone else's")
    chat_turn(other.points_account, model="other-model")

    filters = signed_in.get(URL).context["filters"]

    assert [value for value, _label in filters.fields["model"].choices] == [
        "",
        "gpt-4o-mini",
    ]
    assert [value for value, _label in filters.fields["api_key"].choices] == [
        "",
        "web",
        str(laptop.pk),
        str(old.pk),
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"type": "nope"},
        {"model": "a-model-never-used"},
        {"api_key": "12345"},
        {"api_key": "x"},
        {"date_from": "yesterday"},
        {"date_to": "2025-02-30"},
        {"date_to": "9999-12-31"},
        {"date_from": "0001-01-01"},
    ],
)
def test_history_shows_invalid_filters_on_the_page(
    signed_in: Client, account: Account, query: dict
) -> None:
    response = signed_in.get(URL, query)

    assert response.status_code == 200
    assert response.context["page"] is None
    assert response.context["filters"].errors
    assert 'class="error" role="alert"' in response.content.decode()


def test_history_refuses_a_range_that_ends_before_it_starts(
    signed_in: Client,
) -> None:
    response = signed_in.get(URL, {"date_from": "2025-03-02", "date_to": "2025-03-01"})

    assert response.context["page"] is None
    assert str(DATES_REVERSED_MESSAGE) in response.content.decode()


def test_history_csv_link_carries_the_filters(
    signed_in: Client, account: Account
) -> None:
    key, _secret = create_api_key(user=account.user, name="laptop")
    chat_turn(account, model="gpt-4o-mini", api_key=key)

    response = signed_in.get(
        URL,
        {
            "type": "chat_usage",
            "model": "gpt-4o-mini",
            "api_key": key.pk,
            "date_from": "2025-03-02",
            "date_to": "2025-03-03",
        },
    )

    link = urlsplit(response.context["csv_url"])
    assert link.path == reverse("api-history-csv")
    assert parse_qs(link.query) == {
        "type": ["chat_usage"],
        "model": ["gpt-4o-mini"],
        "api_key": [str(key.pk)],
        "since": ["2025-03-02T00:00:00+09:00"],
        "until": ["2025-03-04T00:00:00+09:00"],
    }
    assert 'id="history-csv"' in response.content.decode()


def test_history_csv_link_downloads_with_the_session(
    signed_in: Client, account: Account
) -> None:
    services.grant(account=account, amount=5, type=TransactionType.REFUND)
    link = signed_in.get(URL, {"type": "refund"}).context["csv_url"]

    response = signed_in.get(link)

    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert response.status_code == 200
    assert [line.split(",")[0] for line in body.splitlines()] == ["type", "refund"]


@pytest.mark.parametrize("filtered", [False, True])
def test_points_page_query_count_is_pinned(
    signed_in: Client, account: Account, filtered: bool, django_assert_num_queries
) -> None:
    key, _secret = create_api_key(user=account.user, name="laptop")
    for _ in range(30):
        chat_turn(account, api_key=key)
    query = {"model": "gpt-4o", "api_key": key.pk, "page": 2} if filtered else {}

    # The session, the user, the account, the models and keys offered, the count
    # (from the roll-up; unfiltered, the account's version is the count), the
    # page, the open holds, the tier (none).
    with django_assert_num_queries(8 if filtered else 7):
        response = signed_in.get(URL, query)

    assert response.context["page"].paginator.count == (30 if filtered else 31)


@pytest.mark.postgres
def test_history_by_model_reads_its_index_not_the_whole_history(
    account: Account,
) -> None:
    # given a long history of one model and, long ago, one turn of another
    chat_turn(account, model="gpt-4o")
    seed_history(account, 20_000, model="gpt-4o-mini")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE points_transaction")

    # when its newest page is planned
    plan = history(account, model="gpt-4o")[:20].explain()

    # then the planner goes to that model's rows by the (account, model) index
    assert "points_tx_account_model_idx" in plan
    assert "Sort" not in plan


@pytest.mark.postgres
def test_history_by_api_key_reads_its_index(account: Account) -> None:
    # given a long history through one key under a longer, newer one through
    # another
    laptop, _secret = create_api_key(user=account.user, name="laptop")
    phone, _secret = create_api_key(user=account.user, name="phone")
    seed_history(account, 10_000, api_key=laptop)
    seed_history(account, 20_000, api_key=phone)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE points_transaction")

    # when the older key's newest page is planned
    plan = history(account, api_key=laptop.pk)[:20].explain()

    # then it comes by the index in order, without the newer rows or a sort
    assert "points_tx_account_key_idx" in plan
    assert "Sort" not in plan
