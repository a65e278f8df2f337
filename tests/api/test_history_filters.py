"""GET /api/user/points/history filtered by model and by API key."""

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from points import services
from points.apis import INVALID_API_KEY_FILTER_MESSAGE
from points.models import Account, TransactionType
from tests.points.turns import chat_turn

URL = "/api/user/points/history"


@pytest.fixture
def account(user) -> Account:
    return user.points_account


@pytest.fixture
def laptop(user) -> ApiKey:
    key, _secret = create_api_key(user=user, name="laptop")
    return key


def descriptions(body: dict) -> list[tuple[str, int]]:
    return [(row["type"], row["amount"]) for row in body["history"]]


def test_history_filters_by_model(api: APIClient, account: Account) -> None:
    mini = chat_turn(account, model="gpt-4o-mini", prompt_tokens=10)
    chat_turn(account, model="gpt-4o")

    body = api.get(URL, {"model": "gpt-4o-mini"}).json()

    assert [row["token_details"]["model"] for row in body["history"]] == ["gpt-4o-mini"]
    assert body["history"][0]["amount"] == mini.amount
    assert body["total_records"] == 1


def test_history_filters_by_api_key(
    api: APIClient, account: Account, laptop: ApiKey
) -> None:
    by_key = chat_turn(account, api_key=laptop, prompt_tokens=10)
    chat_turn(account)

    body = api.get(URL, {"api_key": laptop.pk}).json()

    assert descriptions(body) == [("chat_usage", by_key.amount)]
    assert body["total_records"] == 1


def test_history_filters_web_pages_as_rows_without_a_key(
    api: APIClient, account: Account, laptop: ApiKey
) -> None:
    chat_turn(account, api_key=laptop)
    on_the_web = chat_turn(account, prompt_tokens=10)

    body = api.get(URL, {"api_key": "web"}).json()

    # The sign-up bonus has no key either.
    assert descriptions(body) == [
        ("chat_usage", on_the_web.amount),
        ("signup_bonus", 100_000),
    ]
    assert body["total_records"] == 2


def test_history_combines_model_key_and_type(
    api: APIClient, account: Account, laptop: ApiKey
) -> None:
    wanted = chat_turn(account, model="gpt-4o-mini", api_key=laptop, prompt_tokens=9)
    chat_turn(account, model="gpt-4o", api_key=laptop)
    chat_turn(account, model="gpt-4o-mini")
    services.grant(account=account, amount=5, type=TransactionType.REFUND)

    body = api.get(
        URL, {"model": "gpt-4o-mini", "api_key": laptop.pk, "type": "chat_usage"}
    ).json()

    assert descriptions(body) == [("chat_usage", wanted.amount)]


def test_history_cursor_keeps_the_model_filter(
    api: APIClient, account: Account
) -> None:
    for _ in range(5):
        chat_turn(account, model="gpt-4o-mini")
        chat_turn(account, model="gpt-4o")

    first = api.get(URL, {"model": "gpt-4o-mini", "limit": 3}).json()
    second = api.get(
        URL, {"model": "gpt-4o-mini", "limit": 3, "cursor": first["next_cursor"]}
    ).json()

    models = {
        row["token_details"]["model"] for row in first["history"] + second["history"]
    }
    assert (len(first["history"]), len(second["history"])) == (3, 2)
    assert models == {"gpt-4o-mini"}
    assert second["next_cursor"] is None


def test_history_key_of_another_user_finds_nothing(
    api: APIClient, account: Account, make_user
) -> None:
    other = make_user()
    their_key, _secret = create_api_key(user=other, name="theirs")
    chat_turn(other.points_account, api_key=their_key)

    body = api.get(URL, {"api_key": their_key.pk}).json()

    assert (body["history"], body["total_records"]) == ([], 0)


@pytest.mark.parametrize(
    "query",
    [
        {"model": ""},
        {"model": "m" * 101},
        {"api_key": ""},
        {"api_key": "0"},
        {"api_key": "-1"},
        {"api_key": "1.5"},
        {"api_key": "WEB"},
        {"api_key": "٣"},
        {"api_key": str(2**63)},
    ],
)
def test_history_rejects_bad_filters(api: APIClient, query: dict) -> None:
    response = api.get(URL, query)

    body = response.json()
    assert response.status_code == 400
    assert (body["success"], body["code"]) == (False, "invalid_request")


def test_history_names_the_api_key_filters_values(api: APIClient) -> None:
    body = api.get(URL, {"api_key": "laptop"}).json()

    assert body["errors"]["api_key"] == [str(INVALID_API_KEY_FILTER_MESSAGE)]


def test_history_without_new_filters_keeps_its_shape(
    api: APIClient, account: Account
) -> None:
    chat_turn(account)

    body = api.get(URL, {"limit": 1, "type": "chat_usage"}).json()

    assert set(body) == {"success", "history", "total_records", "next_cursor"}
    assert set(body["history"][0]) == {
        "type",
        "amount",
        "description",
        "timestamp",
        "balance_after",
        "token_details",
    }


def test_history_filtered_by_model_and_key_query_count(
    api: APIClient, account: Account, laptop: ApiKey, django_assert_num_queries
) -> None:
    for _ in range(30):
        chat_turn(account, api_key=laptop)
    api.get("/api/user/points")

    # The account, the filtered count, the page (the key and its user are cached
    # in process since the request before).
    with django_assert_num_queries(3):
        response = api.get(URL, {"model": "gpt-4o", "api_key": laptop.pk, "limit": 50})

    assert len(response.json()["history"]) == 30
