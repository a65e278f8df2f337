"""The spending-limits page, the refusal that links to it, and key spending."""

import json

import pytest
from django.test import Client

from accounts.api_keys import create_api_key
from accounts.models import User
from points.exceptions import SpendingLimitReached
from points.models import Account


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def test_limits_page_saves_the_users_limits(signed_in: Client, user: User) -> None:
    response = signed_in.post(
        "/points/limits/", {"daily": "500", "monthly": "", "alert_below": "100"}
    )

    account = Account.objects.get(user=user)
    assert response.status_code == 302
    assert (account.daily_limit, account.monthly_limit, account.alert_below) == (
        500,
        None,
        100,
    )


def test_limits_page_refuses_a_limit_below_one(signed_in: Client, user: User) -> None:
    response = signed_in.post("/points/limits/", {"daily": "0"})

    assert response.status_code == 200
    assert Account.objects.get(user=user).daily_limit is None


def test_refused_form_turn_links_to_the_limits_page(
    signed_in: Client, user: User
) -> None:
    signed_in.post("/points/limits/", {"daily": "1"})

    page = signed_in.post("/chat/send/", {"message": "hello"}, follow=True)

    html = page.content.decode()
    assert str(SpendingLimitReached.code) not in html
    assert 'href="/points/limits/"' in html


def test_refused_api_turn_says_the_limit_and_the_reset(
    signed_in: Client, user: User
) -> None:
    signed_in.post("/points/limits/", {"daily": "1"})

    response = signed_in.post(
        "/api/chat", json.dumps({"message": "hello"}), content_type="application/json"
    )

    body = response.json()
    assert (response.status_code, body["code"]) == (402, SpendingLimitReached.code)
    assert (body["limit"], body["spent"]) == (1, 0)
    assert body["resets_at"]


def test_keys_page_shows_each_keys_spending(signed_in: Client, user: User) -> None:
    create_api_key(user=user, name="reporting")

    page = signed_in.get("/settings/api-keys/")

    assert page.status_code == 200
    assert page.context["keys"][0].spent_in_period == 0
