"""Tiers in billing: the purchase bonus on new orders and automatic tiers."""

from collections.abc import Callable

import pytest

from accounts.models import User
from billing import services
from billing.models import Order
from points import services as ledger
from points.models import Tier, TierChange
from points.pricing import purchase_bonus
from tests.billing.conftest import PACK_BONUS, PACK_POINTS, PACK_PRICE


def pay(order: Order, charge_card: Callable[..., None]) -> Order:
    charge_card(order)
    return services.sync_payment(payment_intent_id=order.provider_id)


@pytest.mark.parametrize(
    ("points", "bps", "bonus"),
    [(50_000, 0, 0), (50_000, 250, 1_250), (333, 1_000, 33), (1, 9_999, 0)],
)
def test_purchase_bonus_is_floor_of_points_times_bps(
    points: int, bps: int, bonus: int
) -> None:
    assert purchase_bonus(points, bps) == bonus


def test_order_gets_the_tier_bonus_when_created(
    buyer: User, staff_user: User, make_order: Callable[..., Order]
) -> None:
    gold = Tier.objects.create(code="gold", name="Gold", purchase_bonus_bps=250)
    ledger.set_tier(
        account=buyer.points_account, tier=gold, reason="vip", by_user=staff_user
    )

    order = make_order(buyer)

    assert order.bonus_points == PACK_BONUS + PACK_POINTS * 250 // 10_000


def test_order_without_a_tier_keeps_the_pack_bonus(
    buyer: User, make_order: Callable[..., Order]
) -> None:
    assert make_order(buyer).bonus_points == PACK_BONUS


def test_paid_orders_reaching_a_threshold_give_the_tier(
    buyer: User, make_order: Callable[..., Order], charge_card: Callable[..., None]
) -> None:
    silver = Tier.objects.create(
        code="silver", name="Silver", order=1, purchase_threshold=2 * PACK_PRICE
    )
    pay(make_order(buyer), charge_card)
    buyer.points_account.refresh_from_db()
    assert buyer.points_account.tier_id is None

    pay(make_order(buyer), charge_card)

    buyer.points_account.refresh_from_db()
    change = TierChange.objects.get(account=buyer.points_account)
    assert (buyer.points_account.tier_id, change.tier_id) == (silver.pk, silver.pk)
    assert change.reason == f"automatic: purchases reached {2 * PACK_PRICE}"
    assert change.by_user is None


def test_automatic_tier_never_downgrades_a_staff_set_tier(
    buyer: User,
    staff_user: User,
    make_order: Callable[..., Order],
    charge_card: Callable[..., None],
) -> None:
    Tier.objects.create(
        code="silver", name="Silver", order=1, purchase_threshold=PACK_PRICE
    )
    gold = Tier.objects.create(code="gold", name="Gold", order=2)
    ledger.set_tier(
        account=buyer.points_account, tier=gold, reason="vip", by_user=staff_user
    )

    pay(make_order(buyer), charge_card)

    buyer.points_account.refresh_from_db()
    assert buyer.points_account.tier_id == gold.pk
    assert TierChange.objects.filter(account=buyer.points_account).count() == 1


def test_automatic_tier_upgrades_a_lower_tier(
    buyer: User,
    staff_user: User,
    make_order: Callable[..., Order],
    charge_card: Callable[..., None],
) -> None:
    bronze = Tier.objects.create(code="bronze", name="Bronze", order=1)
    silver = Tier.objects.create(
        code="silver", name="Silver", order=2, purchase_threshold=PACK_PRICE
    )
    ledger.set_tier(
        account=buyer.points_account, tier=bronze, reason="start", by_user=staff_user
    )

    pay(make_order(buyer), charge_card)

    buyer.points_account.refresh_from_db()
    assert buyer.points_account.tier_id == silver.pk
