"""Real threads against one account, each on its own PostgreSQL connection."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.models import User
from points import services
from points.audit import audit_accounts
from points.exceptions import HoldExpired, HoldNotOpen, InsufficientPoints, PointsError
from points.models import (
    Account,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Transaction,
    TransactionType,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

# Below the pool's 20 connections, with one left for the test's own thread.
THREADS = 16
PRICE = 300
AFFORDABLE = 7
# Enough for AFFORDABLE calls and not one more.
BALANCE = AFFORDABLE * PRICE + PRICE - 1
ROUNDS = 20

Result = TypeVar("Result")


@pytest.fixture
def funded_account(make_user: Callable[..., User]) -> Account:
    """Return an account holding exactly BALANCE points, and no sign-up bonus."""
    with override_settings(SIGNUP_BONUS_POINTS=0):
        account = make_user().points_account
    services.grant(account=account, amount=BALANCE)
    return account


def fresh(account: Account) -> Account:
    return Account.objects.get(pk=account.pk)


def run_together(
    task: Callable[[int], Result], count: int = THREADS
) -> list[Result | PointsError]:
    """Run `task(0..count-1)` on `count` threads released at the same instant.

    A domain error is returned as that thread's result; anything else fails the
    test. Each thread closes its own connection, so it goes back to the pool.
    """
    barrier = threading.Barrier(count)

    def work(index: int) -> Result | PointsError:
        try:
            barrier.wait(timeout=10)
            return task(index)
        except PointsError as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def test_concurrent_debits_take_exactly_what_the_balance_covers(
    funded_account: Account,
) -> None:
    results = run_together(
        lambda _: services.debit(account=funded_account, amount=PRICE)
    )

    debits = [r for r in results if isinstance(r, Transaction)]
    refusals = [r for r in results if isinstance(r, InsufficientPoints)]
    account = fresh(funded_account)
    assert (len(debits), len(refusals)) == (AFFORDABLE, THREADS - AFFORDABLE)
    assert all(r.required == PRICE and r.available < PRICE for r in refusals)
    assert account.balance == BALANCE - AFFORDABLE * PRICE
    assert (account.total_spent, account.version) == (
        AFFORDABLE * PRICE,
        1 + AFFORDABLE,
    )
    # Each debit saw the one before it: the balances form one unbroken chain.
    assert sorted(d.balance_after for d in debits) == [
        BALANCE - n * PRICE for n in range(AFFORDABLE, 0, -1)
    ]
    assert audit_accounts() == []


def test_concurrent_holds_reserve_exactly_what_the_balance_covers(
    funded_account: Account,
) -> None:
    results = run_together(
        lambda _: services.place_hold(account=funded_account, amount=PRICE)
    )

    holds = [r for r in results if isinstance(r, Hold)]
    refusals = [r for r in results if isinstance(r, InsufficientPoints)]
    account = fresh(funded_account)
    assert (len(holds), len(refusals)) == (AFFORDABLE, THREADS - AFFORDABLE)
    assert all(r.required == PRICE and r.available < PRICE for r in refusals)
    assert (account.balance, account.held) == (BALANCE, AFFORDABLE * PRICE)
    assert account.available == PRICE - 1
    assert Hold.objects.filter(account=account, status=HoldStatus.OPEN).count() == (
        AFFORDABLE
    )
    assert audit_accounts() == []


def test_capture_racing_expiry_of_same_hold_has_exactly_one_winner(
    funded_account: Account,
) -> None:
    cost = 40
    captured = 0
    for _ in range(ROUNDS):
        # Due for an expirer that looks ahead, not yet for capture by real time.
        hold = services.place_hold(account=funded_account, amount=100, ttl_seconds=60)
        later = timezone.now() + timedelta(seconds=120)

        def race(
            index: int, hold: Hold = hold, later: datetime = later
        ) -> Transaction | int:
            if index == 0:
                return services.capture_hold(hold=hold, actual_cost=cost)
            return services.expire_holds(now=later)

        capture, expired = run_together(race, count=2)

        hold.refresh_from_db()
        if isinstance(capture, Transaction):
            captured += 1
            assert expired == 0
            assert (hold.status, hold.captured_amount) == (HoldStatus.CAPTURED, cost)
            assert capture.amount == -cost
        else:
            assert isinstance(capture, HoldExpired)
            assert expired == 1
            assert (hold.status, hold.captured_amount) == (HoldStatus.EXPIRED, 0)
        assert fresh(funded_account).held == 0

    account = fresh(funded_account)
    assert account.balance == BALANCE - captured * cost
    assert account.version == 1 + captured
    assert audit_accounts() == []


def test_capture_racing_release_of_same_hold_has_exactly_one_winner(
    funded_account: Account,
) -> None:
    cost = 40
    captured = 0
    for _ in range(ROUNDS):
        hold = services.place_hold(account=funded_account, amount=100)

        def race(index: int, hold: Hold = hold) -> Transaction | Hold:
            if index == 0:
                return services.capture_hold(hold=hold, actual_cost=cost)
            return services.release_hold(hold=hold)

        capture, release = run_together(race, count=2)

        hold.refresh_from_db()
        if isinstance(capture, Transaction):
            captured += 1
            assert isinstance(release, HoldNotOpen)
            assert hold.status == HoldStatus.CAPTURED
        else:
            assert isinstance(capture, HoldNotOpen)
            assert isinstance(release, Hold)
            assert hold.status == HoldStatus.RELEASED
        assert fresh(funded_account).held == 0

    account = fresh(funded_account)
    assert account.balance == BALANCE - captured * cost
    assert audit_accounts() == []


def test_concurrent_repeats_of_keyed_debit_write_one_row(
    funded_account: Account,
) -> None:
    results = run_together(
        lambda _: services.debit(
            account=funded_account, amount=PRICE, idempotency_key="turn-1"
        )
    )

    assert all(isinstance(r, Transaction) for r in results)
    assert {r.pk for r in results} == {
        Transaction.objects.get(account=funded_account, idempotency_key="turn-1").pk
    }
    assert (
        Transaction.objects.filter(
            account=funded_account, type=TransactionType.CHAT_USAGE
        ).count()
        == 1
    )
    assert IdempotencyRecord.objects.filter(account=funded_account).count() == 1
    assert fresh(funded_account).balance == BALANCE - PRICE
    assert audit_accounts() == []


def test_concurrent_repeats_of_refused_keyed_debit_are_refused_alike(
    funded_account: Account,
) -> None:
    results = run_together(
        lambda _: services.debit(
            account=funded_account, amount=BALANCE + 1, idempotency_key="turn-1"
        )
    )

    assert all(isinstance(r, InsufficientPoints) for r in results)
    assert {(r.available, r.required) for r in results} == {(BALANCE, BALANCE + 1)}
    assert IdempotencyRecord.objects.filter(account=funded_account).count() == 1
    assert fresh(funded_account).version == 1
    assert audit_accounts() == []


def test_concurrent_repeats_of_keyed_hold_place_one_hold(
    funded_account: Account,
) -> None:
    results = run_together(
        lambda _: services.place_hold(
            account=funded_account, amount=PRICE, idempotency_key="turn-1"
        )
    )

    assert len({r.pk for r in results if isinstance(r, Hold)}) == 1
    assert all(isinstance(r, Hold) for r in results)
    assert fresh(funded_account).held == PRICE
    assert audit_accounts() == []
