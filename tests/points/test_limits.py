"""Spending limits: the user's daily and monthly limits, and each key's."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from points import services
from points.exceptions import SpendingLimitReached
from points.models import Account, Hold
from points.pricing import Rates
from points.services import TokenCount

RATES = Rates(prompt=Decimal(2), completion=Decimal(2))
TURN = 84  # (26 + 16) tokens x 2 points
# 23:59:59 on 31 December 2026 and 00:00:00 on 1 January 2027 in Asia/Seoul.
LAST_SECOND = datetime(2026, 12, 31, 14, 59, 59, tzinfo=UTC)
MIDNIGHT = datetime(2026, 12, 31, 15, 0, 0, tzinfo=UTC)


def reserve(account: Account, api_key: ApiKey | None = None) -> services.Reservation:
    return services.reserve(
        account=account,
        model="gpt-4o",
        rates=RATES,
        prompt_tokens=26,
        completion_tokens=16,
        minimum_completion_tokens=16,
        api_key=api_key,
    )


def turn(account: Account, api_key: ApiKey | None = None) -> None:
    services.settle(
        reservation=reserve(account, api_key),
        counted=TokenCount(26, 16),
        api_key=api_key,
    )


def test_turn_up_to_the_daily_limit_passes_and_the_next_is_refused(
    account: Account,
) -> None:
    services.set_spending_limits(account=account, daily=2 * TURN, monthly=None)
    turn(account)
    turn(account)

    with pytest.raises(SpendingLimitReached) as refused:
        reserve(account)

    assert (refused.value.limit, refused.value.spent) == (2 * TURN, 2 * TURN)
    assert refused.value.status_code == 402
    assert Hold.objects.filter(account=account).count() == 2


def test_open_holds_count_toward_the_limit(account: Account) -> None:
    services.set_spending_limits(account=account, daily=TURN + 1, monthly=None)
    reserve(account)

    with pytest.raises(SpendingLimitReached) as refused:
        reserve(account)

    assert refused.value.spent == TURN


@pytest.mark.parametrize("limits", [(TURN, None), (None, TURN)])
def test_daily_and_monthly_limits_reset_at_midnight_kst(
    account: Account, limits: tuple[int | None, int | None]
) -> None:
    daily, monthly = limits
    services.set_spending_limits(account=account, daily=daily, monthly=monthly)
    with time_machine.travel(LAST_SECOND, tick=False):
        turn(account)
        with pytest.raises(SpendingLimitReached) as refused:
            reserve(account)
    assert refused.value.resets_at == MIDNIGHT

    with time_machine.travel(MIDNIGHT, tick=False):
        turn(account)


def test_api_key_over_its_limit_is_refused_and_others_are_not(
    account: Account,
) -> None:
    key, _secret = create_api_key(
        user=account.user, name="bot", points_limit=TURN, limit_period="weekly"
    )
    turn(account, key)

    with pytest.raises(SpendingLimitReached) as refused:
        reserve(account, key)
    reserve(account)

    assert (refused.value.limit, refused.value.spent) == (TURN, TURN)


def test_limits_api_reads_and_sets_limits(user: User) -> None:
    client = APIClient()
    client.force_login(user)

    put = client.put("/api/user/limits", {"daily": 500, "monthly": None}, format="json")
    got = client.get("/api/user/limits").json()

    assert put.status_code == 200
    assert (got["daily"], got["monthly"]) == (500, None)


def test_limits_api_rejects_a_limit_below_one(user: User) -> None:
    client = APIClient()
    client.force_login(user)

    response = client.put(
        "/api/user/limits", {"daily": 0, "monthly": None}, format="json"
    )

    assert response.status_code == 400


def test_chat_over_the_limit_is_refused_with_402(user: User) -> None:
    services.set_spending_limits(account=user.points_account, daily=1, monthly=None)
    client = APIClient()
    client.force_login(user)

    response = client.post("/api/chat", {"message": "hello"}, format="json")

    body = response.json()
    assert response.status_code == 402
    assert (body["code"], body["limit"], body["spent"]) == (
        "spending_limit_reached",
        1,
        0,
    )
    assert body["resets_at"]
    assert not Hold.objects.exists()


def test_keys_list_shows_spending_in_the_period(account: Account) -> None:
    key, _secret = create_api_key(
        user=account.user, name="bot", points_limit=1000, limit_period="daily"
    )
    turn(account, key)
    reserve(account, key)
    client = APIClient()
    client.force_login(account.user)

    (listed,) = client.get("/api/keys").json()["keys"]

    assert (listed["points_limit"], listed["limit_period"]) == (1000, "daily")
    assert listed["spent_in_period"] == 2 * TURN


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_cannot_pass_the_limit_together(
    make_user: Callable[..., User],
) -> None:
    from tests.points.test_concurrency import run_together

    account = make_user().points_account
    services.set_spending_limits(account=account, daily=5 * TURN, monthly=None)

    results = run_together(lambda _index: reserve(account))

    refused = [r for r in results if isinstance(r, SpendingLimitReached)]
    assert (len(results) - len(refused), len(refused)) == (5, 11)
    assert Hold.objects.filter(account=account).count() == 5
