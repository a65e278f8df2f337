from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.models import User
from points import services
from points.exceptions import (
    HoldExpired,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidArgument,
)
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType
from points.pricing import Rates, Usage

BAD_AMOUNTS = [0, -5, 1.5, True, "10", None, Decimal("3"), 10**16]
USAGE = Usage(
    prompt_tokens=44,
    completion_tokens=33,
    model="gpt-4o",
    rates=Rates(prompt=Decimal(2), completion=Decimal(2)),
)


def fresh(account: Account) -> Account:
    return Account.objects.get(pk=account.pk)


def ledger_rows(account: Account) -> int:
    return Transaction.objects.filter(account=account).count()


# open_account -------------------------------------------------------------------


def test_open_account_gives_signup_bonus_once(user: User) -> None:
    account = services.open_account(user=user)

    assert account.balance == 100_000
    assert list(account.transactions.values_list("type", "amount")) == [
        (TransactionType.SIGNUP_BONUS, 100_000)
    ]


def test_open_account_uses_signup_bonus_setting(settings, make_user) -> None:
    settings.SIGNUP_BONUS_POINTS = 500
    assert make_user().points_account.balance == 500


def test_open_account_without_bonus_writes_no_row(settings, make_user) -> None:
    settings.SIGNUP_BONUS_POINTS = 0
    account = make_user().points_account
    assert (account.balance, ledger_rows(account)) == (0, 0)


# grant --------------------------------------------------------------------------


def test_grant_adds_points_and_writes_row(account: Account) -> None:
    entry = services.grant(account=account, amount=250)

    account = fresh(account)
    assert (entry.amount, entry.balance_after, entry.version) == (250, 100_250, 2)
    assert (account.balance, account.total_earned, account.version) == (
        100_250,
        100_250,
        2,
    )


def test_grant_repeated_with_same_key_returns_first_row(account: Account) -> None:
    first = services.grant(account=account, amount=250, idempotency_key="top-up-1")
    again = services.grant(account=account, amount=250, idempotency_key="top-up-1")

    assert again.pk == first.pk
    assert fresh(account).balance == 100_250


def test_grant_same_key_different_amount_conflicts(account: Account) -> None:
    services.grant(account=account, amount=250, idempotency_key="top-up-1")

    with pytest.raises(IdempotencyConflict):
        services.grant(account=account, amount=300, idempotency_key="top-up-1")
    assert fresh(account).balance == 100_250


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_grant_rejects_bad_amount(account: Account, amount: object) -> None:
    with pytest.raises(InvalidAmount):
        services.grant(account=account, amount=amount)
    assert ledger_rows(account) == 1


def test_grant_rejects_debit_type(account: Account) -> None:
    with pytest.raises(InvalidArgument):
        services.grant(account=account, amount=5, type=TransactionType.CHAT_USAGE)


@pytest.mark.parametrize("key", ["", "   ", 12, "k" * 256])
def test_grant_rejects_bad_idempotency_key(account: Account, key: object) -> None:
    with pytest.raises(InvalidArgument):
        services.grant(account=account, amount=5, idempotency_key=key)
    assert ledger_rows(account) == 1


def test_grant_rejects_unsaved_account() -> None:
    with pytest.raises(InvalidArgument):
        services.grant(account=Account(), amount=5)


# debit --------------------------------------------------------------------------


def test_debit_takes_points_and_records_usage(account: Account) -> None:
    entry = services.debit(account=account, amount=154, usage=USAGE)

    account = fresh(account)
    assert (entry.amount, entry.balance_after) == (-154, 99_846)
    assert (entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == (
        44,
        33,
        77,
    )
    assert (account.total_spent, account.version) == (154, 2)


def test_debit_rejects_amount_above_available(account: Account) -> None:
    with pytest.raises(InsufficientPoints) as refused:
        services.debit(account=account, amount=100_001)

    assert (refused.value.available, refused.value.required) == (100_000, 100_001)
    assert fresh(account).balance == 100_000


def test_debit_cannot_spend_held_points(account: Account) -> None:
    services.place_hold(account=account, amount=99_990)

    with pytest.raises(InsufficientPoints) as refused:
        services.debit(account=account, amount=11)
    assert refused.value.available == 10


def test_debit_repeated_with_same_key_charges_once(account: Account) -> None:
    first = services.debit(account=account, amount=10, idempotency_key="d1")
    again = services.debit(account=account, amount=10, idempotency_key="d1")

    assert again.pk == first.pk
    assert fresh(account).balance == 99_990


def test_debit_same_key_different_amount_conflicts(account: Account) -> None:
    services.debit(account=account, amount=10, idempotency_key="d1")
    with pytest.raises(IdempotencyConflict):
        services.debit(account=account, amount=11, idempotency_key="d1")


def test_debit_refused_for_lack_of_points_is_refused_again(account: Account) -> None:
    with pytest.raises(InsufficientPoints):
        services.debit(account=account, amount=150_000, idempotency_key="big")
    services.grant(account=account, amount=100_000)

    # The balance would cover it now; the key still answers as it first did.
    with pytest.raises(InsufficientPoints) as refused:
        services.debit(account=account, amount=150_000, idempotency_key="big")
    assert refused.value.available == 100_000
    assert fresh(account).balance == 200_000


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_debit_rejects_bad_amount(account: Account, amount: object) -> None:
    with pytest.raises(InvalidAmount):
        services.debit(account=account, amount=amount)
    assert ledger_rows(account) == 1


def test_idempotency_key_used_by_other_operation_conflicts(account: Account) -> None:
    services.grant(account=account, amount=10, idempotency_key="shared")
    with pytest.raises(IdempotencyConflict):
        services.debit(account=account, amount=10, idempotency_key="shared")


# adjust -------------------------------------------------------------------------


def test_adjust_records_staff_user_and_reason(
    account: Account, staff_user: User
) -> None:
    entry = services.adjust(
        account=account, delta=-500, reason="Duplicate bonus", by_user=staff_user
    )

    assert (entry.type, entry.amount, entry.balance_after) == (
        TransactionType.ADMIN_ADJUSTMENT,
        -500,
        99_500,
    )
    assert (entry.created_by, entry.reason) == (staff_user, "Duplicate bonus")


def test_adjust_cannot_take_more_than_available(
    account: Account, staff_user: User
) -> None:
    with pytest.raises(InsufficientPoints):
        services.adjust(account=account, delta=-100_001, reason="x", by_user=staff_user)
    assert fresh(account).balance == 100_000


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_adjust_requires_reason(
    account: Account, staff_user: User, reason: object
) -> None:
    with pytest.raises(InvalidArgument):
        services.adjust(account=account, delta=5, reason=reason, by_user=staff_user)
    assert ledger_rows(account) == 1


def test_adjust_requires_staff_user(account: Account) -> None:
    with pytest.raises(InvalidArgument):
        services.adjust(account=account, delta=5, reason="x", by_user=None)


@pytest.mark.parametrize("delta", [0, 2.5, False, "1"])
def test_adjust_rejects_bad_delta(
    account: Account, staff_user: User, delta: object
) -> None:
    with pytest.raises(InvalidAmount):
        services.adjust(account=account, delta=delta, reason="x", by_user=staff_user)


def test_adjust_repeated_with_same_key_applies_once(
    account: Account, staff_user: User
) -> None:
    first = services.adjust(
        account=account,
        delta=7,
        reason="goodwill",
        by_user=staff_user,
        idempotency_key="a",
    )
    again = services.adjust(
        account=account,
        delta=7,
        reason="goodwill",
        by_user=staff_user,
        idempotency_key="a",
    )
    assert again.pk == first.pk
    with pytest.raises(IdempotencyConflict):
        services.adjust(
            account=account,
            delta=8,
            reason="goodwill",
            by_user=staff_user,
            idempotency_key="a",
        )
    assert fresh(account).balance == 100_007


# holds --------------------------------------------------------------------------


def test_place_hold_reserves_points_without_ledger_row(account: Account) -> None:
    hold = services.place_hold(account=account, amount=1_000)

    account = fresh(account)
    assert (account.balance, account.held, account.available) == (
        100_000,
        1_000,
        99_000,
    )
    assert hold.status == HoldStatus.OPEN
    assert ledger_rows(account) == 1


def test_place_hold_rejects_amount_above_available(account: Account) -> None:
    services.place_hold(account=account, amount=60_000)
    with pytest.raises(InsufficientPoints) as refused:
        services.place_hold(account=account, amount=40_001)
    assert refused.value.available == 40_000
    assert fresh(account).held == 60_000


def test_place_hold_repeated_with_same_key_returns_first_hold(account: Account) -> None:
    first = services.place_hold(account=account, amount=10, idempotency_key="turn-1")
    again = services.place_hold(account=account, amount=10, idempotency_key="turn-1")
    assert again.pk == first.pk
    assert fresh(account).held == 10
    with pytest.raises(IdempotencyConflict):
        services.place_hold(account=account, amount=11, idempotency_key="turn-1")


def test_place_hold_refusal_repeats_for_same_key(account: Account) -> None:
    with pytest.raises(InsufficientPoints):
        services.place_hold(account=account, amount=100_001, idempotency_key="turn-1")
    services.grant(account=account, amount=5)
    with pytest.raises(InsufficientPoints):
        services.place_hold(account=account, amount=100_001, idempotency_key="turn-1")
    assert fresh(account).held == 0


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_place_hold_rejects_bad_amount(account: Account, amount: object) -> None:
    with pytest.raises(InvalidAmount):
        services.place_hold(account=account, amount=amount)
    assert Hold.objects.count() == 0


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True])
def test_place_hold_rejects_bad_ttl(account: Account, ttl: object) -> None:
    with pytest.raises(InvalidArgument):
        services.place_hold(account=account, amount=5, ttl_seconds=ttl)


def test_place_hold_expires_overdue_holds_first(account: Account) -> None:
    stale = services.place_hold(account=account, amount=100_000, ttl_seconds=60)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        services.place_hold(account=account, amount=100_000)

    stale.refresh_from_db()
    assert stale.status == HoldStatus.EXPIRED
    assert fresh(account).held == 100_000


def test_capture_hold_charges_cost_and_releases_rest(account: Account) -> None:
    hold = services.place_hold(account=account, amount=1_000)

    entry = services.capture_hold(hold=hold, actual_cost=154, usage=USAGE)

    account = fresh(account)
    hold.refresh_from_db()
    assert (entry.amount, entry.balance_after, entry.hold_id) == (-154, 99_846, hold.pk)
    assert (account.balance, account.held, account.total_spent) == (99_846, 0, 154)
    assert (hold.status, hold.captured_amount) == (HoldStatus.CAPTURED, 154)
    assert (entry.model, entry.prompt_rate, entry.completion_rate) == (
        "gpt-4o",
        Decimal(2),
        Decimal(2),
    )


def test_capture_hold_never_takes_more_than_hold(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100)

    entry = services.capture_hold(hold=hold, actual_cost=154, usage=USAGE)

    assert (entry.amount, entry.uncharged_points) == (-100, 54)
    assert fresh(account).balance == 99_900


def test_capture_hold_twice_fails(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100)
    services.capture_hold(hold=hold, actual_cost=10)

    with pytest.raises(HoldNotOpen) as refused:
        services.capture_hold(hold=hold, actual_cost=10)
    assert refused.value.status == HoldStatus.CAPTURED
    assert fresh(account).balance == 99_990


def test_capture_released_hold_fails(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100)
    services.release_hold(hold=hold)

    with pytest.raises(HoldNotOpen):
        services.capture_hold(hold=hold, actual_cost=10)
    assert fresh(account).balance == 100_000


def test_capture_expired_hold_fails(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100, ttl_seconds=60)
    later = timezone.now() + timedelta(seconds=61)
    services.expire_holds(now=later)

    with pytest.raises(HoldExpired):
        services.capture_hold(hold=hold, actual_cost=10)
    assert fresh(account).balance == 100_000


def test_capture_overdue_hold_fails_before_expirer_runs(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100, ttl_seconds=60)

    later = timezone.now() + timedelta(seconds=61)
    with time_machine.travel(later), pytest.raises(HoldExpired):
        services.capture_hold(hold=hold, actual_cost=10)
    assert fresh(account).balance == 100_000


@pytest.mark.parametrize("cost", [0, -1, 2.0, True])
def test_capture_hold_rejects_bad_cost(account: Account, cost: object) -> None:
    hold = services.place_hold(account=account, amount=100)
    with pytest.raises(InvalidAmount):
        services.capture_hold(hold=hold, actual_cost=cost)
    hold.refresh_from_db()
    assert hold.status == HoldStatus.OPEN


def test_release_hold_frees_points(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100)

    services.release_hold(hold=hold)

    hold.refresh_from_db()
    account = fresh(account)
    assert hold.status == HoldStatus.RELEASED
    assert (account.balance, account.held, ledger_rows(account)) == (100_000, 0, 1)


def test_release_hold_twice_fails(account: Account) -> None:
    hold = services.place_hold(account=account, amount=100)
    services.release_hold(hold=hold)
    with pytest.raises(HoldNotOpen):
        services.release_hold(hold=hold)


def test_expire_holds_ends_only_overdue_holds(account: Account) -> None:
    due = services.place_hold(account=account, amount=100, ttl_seconds=60)
    later = services.place_hold(account=account, amount=200, ttl_seconds=600)

    expired = services.expire_holds(now=timezone.now() + timedelta(seconds=61))

    due.refresh_from_db()
    later.refresh_from_db()
    assert expired == 1
    assert (due.status, later.status) == (HoldStatus.EXPIRED, HoldStatus.OPEN)
    assert fresh(account).held == 200


def test_expire_holds_with_nothing_due_changes_nothing(account: Account) -> None:
    services.place_hold(account=account, amount=100)
    assert services.expire_holds() == 0
    assert fresh(account).held == 100


def test_debit_ignores_holds_past_their_expiry(account: Account) -> None:
    stale = services.place_hold(account=account, amount=100_000, ttl_seconds=60)

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        entry = services.debit(account=account, amount=1)

    stale.refresh_from_db()
    assert entry.amount == -1
    assert stale.status == HoldStatus.EXPIRED
    assert fresh(account).held == 0


def test_adjust_ignores_holds_past_their_expiry(
    account: Account, staff_user: User
) -> None:
    services.place_hold(account=account, amount=100_000, ttl_seconds=60)

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        entry = services.adjust(
            account=account, delta=-5, reason="x", by_user=staff_user
        )

    assert entry.balance_after == 99_995
