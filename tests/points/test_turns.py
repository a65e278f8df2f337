"""The ledger's turn API: `reserve` before the model answers, `settle` after."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from points import services
from points.audit import audit_accounts
from points.exceptions import HoldNotOpen, IdempotencyConflict, InsufficientPoints
from points.models import Account, Hold, HoldStatus, IdempotencyRecord, Transaction
from points.services import TokenCount, UsageSource
from tests.points.turns import reserve_turn as reserve


def fresh(account: Account) -> Account:
    return Account.objects.get(pk=account.pk)


def drain(account: Account, staff_user: User, *, leave: int) -> None:
    services.adjust(
        account=account,
        delta=-(fresh(account).available - leave),
        reason="test",
        by_user=staff_user,
    )


# reserve ---------------------------------------------------------------------------


def test_reserve_holds_prompt_plus_completion_limit(account: Account) -> None:
    reservation = reserve(account)

    assert (reservation.hold.amount, reservation.completion_limit) == (84, 16)
    assert fresh(account).held == 84


def test_reserve_lowers_limit_to_what_available_points_pay_for(
    account: Account, staff_user: User
) -> None:
    drain(account, staff_user, leave=70)

    reservation = reserve(account)

    assert (reservation.completion_limit, reservation.hold.amount) == (9, 70)


def test_reserve_refuses_below_minimum_answer_and_holds_nothing(
    account: Account, staff_user: User
) -> None:
    drain(account, staff_user, leave=59)

    with pytest.raises(InsufficientPoints) as refused:
        reserve(account)

    assert (refused.value.available, refused.value.required) == (59, 60)
    assert not Hold.objects.exists()


def test_reserve_repeated_key_replays_first_hold(account: Account) -> None:
    first = reserve(account, idempotency_key="k", request_fingerprint="a")

    again = reserve(account, idempotency_key="k", request_fingerprint="a")

    assert (again.hold.pk, again.replayed, first.replayed) == (
        first.hold.pk,
        True,
        False,
    )
    assert fresh(account).held == 84


def test_reserve_same_key_other_request_conflicts(account: Account) -> None:
    reserve(account, idempotency_key="k", request_fingerprint="a")

    with pytest.raises(IdempotencyConflict):
        reserve(account, idempotency_key="k", request_fingerprint="b")


def test_reserve_refusal_is_replayed_after_a_top_up(
    account: Account, staff_user: User
) -> None:
    drain(account, staff_user, leave=10)
    with pytest.raises(InsufficientPoints):
        reserve(account, idempotency_key="k")
    services.grant(account=account, amount=1_000)

    with pytest.raises(InsufficientPoints):
        reserve(account, idempotency_key="k")
    assert not Hold.objects.exists()


def test_reserve_accepts_a_key_of_the_full_documented_length(account: Account) -> None:
    reservation = reserve(account, idempotency_key="k" * 255)

    assert reservation.hold.idempotency_key == services.turn_key("k" * 255)
    record = IdempotencyRecord.objects.get(operation="reserve")
    assert record.key == services.turn_key("k" * 255)


def test_reserve_ends_overdue_holds_in_the_same_lock(account: Account) -> None:
    stale = reserve(account, completion_tokens=49_000, ttl_seconds=60)

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        reserve(account, completion_tokens=49_000)

    stale.hold.refresh_from_db()
    assert stale.hold.status == HoldStatus.EXPIRED
    assert fresh(account).held == 98_052


def statements(captured: CaptureQueriesContext) -> list[str]:
    """Return the statements sent, without transaction control (BEGIN, SAVEPOINT)."""
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")
    return [
        query["sql"].split()[0]
        for query in captured.captured_queries
        if not query["sql"].startswith(control)
    ]


def test_reserve_sends_three_statements(account: Account) -> None:
    # Lock the account, insert the hold, update `held`; with no hold open there is
    # no overdue hold to look for.
    with CaptureQueriesContext(connection) as captured:
        reserve(account)
    assert statements(captured) == ["SELECT", "INSERT", "UPDATE"]


def test_reserve_beside_an_open_hold_sends_three_statements(account: Account) -> None:
    # The lock itself says that no open hold is overdue: nothing to end.
    reserve(account)

    with CaptureQueriesContext(connection) as captured:
        reserve(account)

    assert statements(captured) == ["SELECT", "INSERT", "UPDATE"]


def test_reserve_ends_an_overdue_hold_before_holding_again(account: Account) -> None:
    first = reserve(account, ttl_seconds=3)

    with (
        time_machine.travel(timezone.now() + timedelta(seconds=4)),
        CaptureQueriesContext(connection) as captured,
    ):
        reserve(account)

    first.hold.refresh_from_db()
    assert first.hold.status == HoldStatus.EXPIRED
    assert statements(captured) == ["SELECT", "UPDATE", "UPDATE", "INSERT", "UPDATE"]
    assert fresh(account).held == 84


# settle ----------------------------------------------------------------------------


def test_settle_charges_the_providers_usage_of_a_whole_answer(
    account: Account,
) -> None:
    reservation = reserve(account, completion_tokens=100)

    settled = services.settle(
        reservation=reservation,
        counted=TokenCount(26, 30),
        reported=TokenCount(25, 20),
    )

    assert (settled.charged, settled.source) == (90, UsageSource.PROVIDER)
    assert (settled.entry.prompt_tokens, settled.entry.completion_tokens) == (25, 20)
    assert fresh(account).held == 0
    assert audit_accounts() == []


def test_settle_charges_our_count_of_a_dropped_answer(account: Account) -> None:
    reservation = reserve(account, completion_tokens=100)

    settled = services.settle(
        reservation=reservation,
        counted=TokenCount(26, 5),
        reported=TokenCount(26, 90),
        delivered_in_full=False,
    )

    assert (settled.charged, settled.source) == (62, UsageSource.COUNTED)


@pytest.mark.parametrize(
    "reported",
    [
        TokenCount(-1, 20),
        TokenCount(26, -5),
        TokenCount(None, 20),
        TokenCount(26, None),
        TokenCount(26.0, 20),
        TokenCount(26, 2.5),
        TokenCount("26", 20),
        TokenCount(True, 20),
        TokenCount(26, 10**12),
    ],
)
def test_settle_treats_usage_that_is_not_a_count_as_missing(
    account: Account, reported: TokenCount
) -> None:
    reservation = reserve(account, completion_tokens=100)

    settled = services.settle(
        reservation=reservation, counted=TokenCount(26, 7), reported=reported
    )

    assert (settled.charged, settled.source) == (66, UsageSource.COUNTED)
    assert audit_accounts() == []


def test_settle_caps_the_charge_at_the_hold(account: Account) -> None:
    reservation = reserve(account)

    settled = services.settle(
        reservation=reservation,
        counted=TokenCount(26, 16),
        reported=TokenCount(10, 5_000),
    )

    assert (settled.charged, settled.uncharged) == (84, 10_020 - 84)
    assert settled.entry.uncharged_points == 10_020 - 84


def test_settle_after_expiry_is_capped_at_the_hold_too(account: Account) -> None:
    # Given a hold of 84 points that expired while the model was answering
    reservation = reserve(account, ttl_seconds=3)
    services.expire_holds(now=timezone.now() + timedelta(seconds=4))

    # When the provider reports 5,000 completion tokens
    settled = services.settle(
        reservation=reservation,
        counted=TokenCount(26, 16),
        reported=TokenCount(10, 5_000),
    )

    # Then no more than the user agreed to is charged
    assert (settled.charged, settled.uncharged) == (84, 10_020 - 84)
    assert fresh(account).balance == 100_000 - 84
    assert audit_accounts() == []


def test_settle_overdue_hold_before_the_expirer_runs(account: Account) -> None:
    reservation = reserve(account, ttl_seconds=3)

    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        settled = services.settle(reservation=reservation, counted=TokenCount(26, 16))

    reservation.hold.refresh_from_db()
    assert settled.charged == 84
    assert (reservation.hold.status, reservation.hold.captured_amount) == (
        HoldStatus.EXPIRED,
        84,
    )
    assert fresh(account).held == 0
    assert audit_accounts() == []


def test_settle_after_expiry_charges_at_most_what_is_available(
    account: Account, staff_user: User
) -> None:
    reservation = reserve(account, ttl_seconds=3)
    services.expire_holds(now=timezone.now() + timedelta(seconds=4))
    drain(account, staff_user, leave=50)

    settled = services.settle(reservation=reservation, counted=TokenCount(26, 16))

    assert (settled.charged, settled.uncharged, settled.remaining) == (50, 34, 0)


def test_settle_after_expiry_with_nothing_available_writes_no_row(
    account: Account, staff_user: User
) -> None:
    reservation = reserve(account, ttl_seconds=3)
    services.expire_holds(now=timezone.now() + timedelta(seconds=4))
    drain(account, staff_user, leave=0)
    rows = Transaction.objects.count()

    settled = services.settle(reservation=reservation, counted=TokenCount(26, 16))

    assert (settled.entry, settled.charged, settled.uncharged) == (None, 0, 84)
    assert Transaction.objects.count() == rows
    assert audit_accounts() == []


def test_settle_twice_is_refused(account: Account) -> None:
    reservation = reserve(account)
    services.settle(reservation=reservation, counted=TokenCount(26, 16))

    with pytest.raises(HoldNotOpen):
        services.settle(reservation=reservation, counted=TokenCount(26, 16))
    assert fresh(account).balance == 100_000 - 84


def test_settle_released_hold_is_refused(account: Account) -> None:
    reservation = reserve(account)
    services.release_hold(hold=reservation.hold)

    with pytest.raises(HoldNotOpen):
        services.settle(reservation=reservation, counted=TokenCount(26, 16))
    assert fresh(account).balance == 100_000


def test_settle_sends_four_statements(account: Account) -> None:
    reservation = reserve(account)

    with CaptureQueriesContext(connection) as captured:
        services.settle(reservation=reservation, counted=TokenCount(26, 16))

    # Lock the account and the hold (one statement), update the account, insert
    # the row, update the hold.
    assert statements(captured) == ["SELECT", "UPDATE", "INSERT", "UPDATE"]


def test_settle_after_expiry_twice_is_refused(account: Account) -> None:
    reservation = reserve(account, ttl_seconds=3)
    services.expire_holds(now=timezone.now() + timedelta(seconds=4))
    services.settle(reservation=reservation, counted=TokenCount(26, 16))

    with pytest.raises(HoldNotOpen):
        services.settle(reservation=reservation, counted=TokenCount(26, 16))
    assert fresh(account).balance == 100_000 - 84


def test_account_of_a_known_id_reads_nothing_until_a_field_is_used(
    account: Account, django_assert_num_queries
) -> None:
    # An API key carries its user's account id: the turn holds by it unread.
    user = User.objects.get(pk=account.user_id)
    with django_assert_num_queries(0):
        known = services.account_of(user=user, account_id=account.pk)
    assert (known.pk, known.user_id) == (account.pk, account.user_id)

    reservation = reserve(known)

    assert reservation.hold.account_id == account.pk
    # A field not read is loaded when used, never a default's value.
    with django_assert_num_queries(1):
        assert known.held == 84
