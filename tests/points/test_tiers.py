"""Tier discounts: one rounding rule, fixed when the hold is placed."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.models import User
from points import services
from points.models import Account, Tier, TierChange
from points.pricing import Rates, discounted
from points.services import TokenCount

RATES = Rates(prompt=Decimal(2), completion=Decimal(2))


def reserve(account: Account) -> services.Reservation:
    return services.reserve(
        account=account,
        model="gpt-4o",
        rates=RATES,
        prompt_tokens=26,
        completion_tokens=16,
        minimum_completion_tokens=4,
    )


@pytest.fixture
def gold(db: None) -> Tier:
    return Tier.objects.create(code="gold", name="Gold", discount_bps=1_000)


@pytest.mark.parametrize(
    ("list_cost", "bps", "expected"),
    [
        (84, 1_000, (8, 76)),
        (999, 1_500, (149, 850)),
        (1, 5_000, (0, 1)),
        (3, 9_999, (2, 1)),
    ],
)
def test_discount_is_floored_and_charged_at_least_one_point(
    list_cost: int, bps: int, expected: tuple[int, int]
) -> None:
    assert discounted(list_cost, bps) == expected


def test_set_tier_records_who_and_why(
    account: Account, gold: Tier, staff_user: User
) -> None:
    change = services.set_tier(
        account=account, tier=gold, reason="loyal", by_user=staff_user
    )

    assert (change.tier, change.reason, change.by_user) == (gold, "loyal", staff_user)
    assert Account.objects.get(pk=account.pk).tier == gold
    assert TierChange.objects.count() == 1


def test_hold_and_capture_agree_on_the_discount(
    account: Account, gold: Tier, staff_user: User
) -> None:
    services.set_tier(account=account, tier=gold, reason="test", by_user=staff_user)

    reservation = reserve(account)
    settlement = services.settle(reservation=reservation, counted=TokenCount(26, 16))

    assert (reservation.hold.amount, reservation.hold.discount_bps) == (76, 1_000)
    assert reservation.tier == "gold"
    entry = settlement.entry
    assert (entry.list_cost, entry.discount, entry.amount) == (84, 8, -76)
    assert entry.tier == "gold"
    assert (settlement.list_cost, settlement.charged) == (84, 76)


def test_tier_ending_mid_turn_keeps_the_held_discount(
    account: Account, gold: Tier, staff_user: User
) -> None:
    ends_at = timezone.now() + timedelta(seconds=10)
    services.set_tier(
        account=account, tier=gold, reason="test", by_user=staff_user, ends_at=ends_at
    )
    reservation = reserve(account)

    with time_machine.travel(ends_at + timedelta(seconds=1), tick=False):
        settlement = services.settle(
            reservation=reservation, counted=TokenCount(26, 16)
        )
        next_turn = reserve(account)

    assert (settlement.entry.discount, settlement.charged) == (8, 76)
    assert (next_turn.hold.amount, next_turn.hold.discount_bps) == (84, 0)


def test_no_tier_charges_the_list_cost(account: Account) -> None:
    settlement = services.settle(
        reservation=reserve(account), counted=TokenCount(26, 16)
    )

    assert (settlement.entry.list_cost, settlement.entry.discount) == (84, 0)
    assert settlement.charged == 84
