"""Daily free points: one top-up a day, expiry at midnight KST, spent first."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from accounts.models import User
from points import services
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType

ALLOWANCE = 1000
# 23:59:59 and 00:00:00 of 2 December 2026 in Asia/Seoul (UTC+9).
LAST_SECOND = datetime(2026, 12, 1, 14, 59, 59, tzinfo=UTC)
MIDNIGHT = datetime(2026, 12, 1, 15, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def allowance(settings) -> None:
    settings.DAILY_FREE_POINTS = ALLOWANCE


def fresh(account: Account) -> Account:
    return Account.objects.get(pk=account.pk)


def rows(account: Account, type: str) -> list[Transaction]:
    return list(
        Transaction.objects.filter(account=account, type=type).order_by("version")
    )


def test_first_use_of_the_day_tops_up_free_points_once(
    make_user: Callable[..., User],
) -> None:
    with time_machine.travel(LAST_SECOND, tick=False):
        user = make_user()
        account = services.account_of(user=user)
        services.account_of(user=user)

    assert account.free_balance == ALLOWANCE
    assert [row.free_amount for row in rows(account, "daily_free")] == [ALLOWANCE]


def test_midnight_expires_what_is_left_and_grants_the_new_day_once(
    make_user: Callable[..., User],
) -> None:
    # Given 300 free points spent on the last second of the day
    with time_machine.travel(LAST_SECOND, tick=False):
        user = make_user()
        account = services.account_of(user=user)
        services.debit(account=account, amount=300)
        assert services.free_points_reset_at() - LAST_SECOND == timedelta(seconds=1)
    # When the account is used at midnight, twice
    with time_machine.travel(MIDNIGHT, tick=False):
        services.account_of(user=user)
        account = services.account_of(user=user)
        reset_at = services.free_points_reset_at()
    # Then 700 expired once, and the allowance was granted once more
    assert [row.amount for row in rows(account, "free_expiry")] == [-700]
    assert [row.amount for row in rows(account, "daily_free")] == [ALLOWANCE] * 2
    assert account.free_balance == ALLOWANCE
    assert reset_at == MIDNIGHT + timedelta(days=1)


def test_free_points_do_not_accumulate(make_user: Callable[..., User]) -> None:
    with time_machine.travel(LAST_SECOND, tick=False):
        user = make_user()
    for day in range(3):
        with time_machine.travel(MIDNIGHT + timedelta(days=day), tick=False):
            account = services.account_of(user=user)

    assert account.free_balance == ALLOWANCE
    assert account.balance == 100_000 + ALLOWANCE


def test_debit_spends_free_points_before_paid_points(account: Account) -> None:
    entry = services.debit(account=account, amount=ALLOWANCE + 5)

    assert (entry.amount, entry.free_amount) == (-(ALLOWANCE + 5), -ALLOWANCE)
    assert (fresh(account).free_balance, fresh(account).balance) == (0, 100_000 - 5)


def test_hold_spanning_free_and_paid_captures_free_first(account: Account) -> None:
    hold = services.place_hold(account=account, amount=1500)
    assert (hold.free_amount, fresh(account).free_held) == (ALLOWANCE, ALLOWANCE)

    entry = services.capture_hold(hold=hold, actual_cost=1200)

    assert entry.free_amount == -ALLOWANCE
    after = fresh(account)
    assert (after.free_balance, after.free_held, after.held) == (0, 0, 0)
    assert after.balance == 100_000 - 200


def test_capture_below_free_part_returns_the_rest_to_free_points(
    account: Account,
) -> None:
    hold = services.place_hold(account=account, amount=1500)

    services.capture_hold(hold=hold, actual_cost=400)

    after = fresh(account)
    assert (after.free_balance, after.free_held) == (ALLOWANCE - 400, 0)
    assert after.balance == 100_000 + ALLOWANCE - 400


def test_released_hold_returns_each_part(account: Account) -> None:
    hold = services.place_hold(account=account, amount=1500)

    services.release_hold(hold=hold)

    after = fresh(account)
    assert (after.free_balance, after.free_held, after.held) == (ALLOWANCE, 0, 0)
    assert after.balance == 100_000 + ALLOWANCE


def test_expired_hold_returns_each_part(account: Account) -> None:
    hold = services.place_hold(account=account, amount=1500, ttl_seconds=1)

    with time_machine.travel(hold.expires_at, tick=False):
        assert services.expire_holds() == 1

    after = fresh(account)
    assert (after.free_held, after.held) == (0, 0)
    assert after.free_balance == ALLOWANCE


def test_hold_open_at_midnight_counts_toward_the_new_allowance(
    make_user: Callable[..., User],
) -> None:
    with time_machine.travel(LAST_SECOND, tick=False):
        user = make_user()
        account = services.account_of(user=user)
        hold = services.place_hold(account=account, amount=300, ttl_seconds=60)
    with time_machine.travel(MIDNIGHT, tick=False):
        account = services.account_of(user=user)
        assert (account.free_balance, account.free_held) == (ALLOWANCE, 300)
        services.release_hold(hold=hold)

    assert [row.amount for row in rows(account, "free_expiry")] == [-700]
    assert [row.amount for row in rows(account, "daily_free")] == [ALLOWANCE, 700]
    assert fresh(account).free_available == ALLOWANCE
    assert hold.status == HoldStatus.RELEASED


def test_turned_off_writes_no_free_rows(
    settings, make_user: Callable[..., User]
) -> None:
    settings.DAILY_FREE_POINTS = 0

    account = services.account_of(user=make_user())
    services.debit(account=account, amount=10)

    assert not Transaction.objects.filter(
        type__in=[TransactionType.DAILY_FREE, TransactionType.FREE_EXPIRY]
    ).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_first_requests_at_midnight_grant_once(
    make_user: Callable[..., User],
) -> None:
    from tests.points.test_concurrency import run_together

    with (
        override_settings(DAILY_FREE_POINTS=ALLOWANCE),
        time_machine.travel(LAST_SECOND, tick=False),
    ):
        account = make_user().points_account
        services.debit(account=account, amount=300)
    with (
        override_settings(DAILY_FREE_POINTS=ALLOWANCE),
        time_machine.travel(MIDNIGHT, tick=False),
    ):
        results = run_together(
            lambda _index: services.account_of(user=account.user).free_balance,
            count=20,
        )

    assert results == [ALLOWANCE] * 20
    assert len(rows(account, "free_expiry")) == 1
    assert len(rows(account, "daily_free")) == 2


def test_expirer_at_midnight_counts_the_holds_it_ends(
    make_user: Callable[..., User],
) -> None:
    with time_machine.travel(LAST_SECOND, tick=False):
        account = make_user().points_account
        hold = services.place_hold(account=account, amount=300, ttl_seconds=1)
    with time_machine.travel(MIDNIGHT, tick=False):
        expired = services.expire_holds()

    assert expired == 1
    assert Hold.objects.get(pk=hold.pk).status == HoldStatus.EXPIRED
    assert [row.amount for row in rows(account, "free_expiry")] == [-700]
    assert fresh(account).free_available == ALLOWANCE
