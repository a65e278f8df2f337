"""Refunds (through localstripe) and disputes (recorded events) take points back."""

import secrets
from collections.abc import Callable

import pytest

from accounts.models import User
from billing import codes, gateway, services
from billing.models import DisputeStatus, Order, OrderStatus, PointPack
from points import services as ledger
from points.audit import audit_accounts
from points.models import Account, TransactionType
from tests.billing.conftest import (
    PACK_BONUS,
    PACK_POINTS,
    LocalStripe,
    balance_of,
    event_payload,
    owed_by,
)

pytestmark = pytest.mark.django_db

Deliver = Callable[..., object]


@pytest.fixture
def paid_order(
    buyer: User, make_order: Callable, charge_card: Callable
) -> Callable[..., Order]:
    def pay(chosen: PointPack | None = None) -> Order:
        order = make_order(buyer, chosen)
        charge_card(order)
        return services.sync_payment(payment_intent_id=order.provider_id)

    return pay


def refund(localstripe: LocalStripe, order: Order, amount: int) -> str:
    """Refund at localstripe; return the charge.refunded event it does not send."""
    gateway.refund_payment(
        order.provider_id, amount=amount, idempotency_key=secrets.token_hex(8)
    )
    intent = localstripe.get(f"payment_intents/{order.provider_id}")
    charge = localstripe.get(f"charges/{intent['latest_charge']['id']}")
    return event_payload("charge.refunded", charge)


def dispute_event(
    order: Order, type: str, status: str, amount: int | None = None
) -> str:
    """A recorded dispute event: localstripe has no disputes."""
    charge_id = gateway.retrieve_payment(order.provider_id).charge_id
    return event_payload(
        type,
        {
            "id": f"dp_{order.reference.hex[:14]}",
            "object": "dispute",
            "amount": order.amount if amount is None else amount,
            "currency": order.currency,
            "charge": charge_id,
            "payment_intent": order.provider_id,
            "reason": "fraudulent",
            "status": status,
        },
    )


def rows(order: Order, *types: str) -> list[int]:
    return list(
        order.ledger_rows.filter(type__in=types)
        .order_by("pk")
        .values_list("amount", flat=True)
    )


def spend(user: User, points: int) -> None:
    ledger.debit(account=Account.objects.get(user=user), amount=points)


def test_full_refund_takes_back_points_and_bonus(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    order = paid_order()

    response = deliver(refund(stripe_on, order, order.amount))

    order.refresh_from_db()
    assert response.status_code == 200
    assert order.status == OrderStatus.REFUNDED
    assert rows(order, TransactionType.TOP_UP_REVERSAL) == [-PACK_POINTS]
    assert rows(order, TransactionType.BONUS_REVERSAL) == [-PACK_BONUS]
    assert (balance_of(buyer), owed_by(buyer)) == (0, 0)
    assert audit_accounts() == []


def test_partial_refunds_take_back_a_rounded_down_share_adding_up_to_all(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    # given a pack whose points do not divide by its price
    odd = PointPack.objects.create(
        name="Odd", points=1_000, bonus_points=100, price=3_000, currency="krw"
    )
    order = paid_order(odd)

    # when a third is refunded, three times
    deliver(refund(stripe_on, order, 1_000))
    order.refresh_from_db()
    first = (order.status, balance_of(buyer))
    deliver(refund(stripe_on, order, 1_000))
    deliver(refund(stripe_on, order, 1_000))

    # then each takes floor(share of the running total), and all of it in the end
    order.refresh_from_db()
    assert first == (OrderStatus.PARTIALLY_REFUNDED, 1_100 - 333 - 33)
    assert rows(order, TransactionType.TOP_UP_REVERSAL) == [-333, -333, -334]
    assert rows(order, TransactionType.BONUS_REVERSAL) == [-33, -33, -34]
    assert (order.status, balance_of(buyer)) == (OrderStatus.REFUNDED, 0)
    assert audit_accounts() == []


def test_refund_events_repeated_or_out_of_order_take_back_once(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    order = paid_order()
    first = refund(stripe_on, order, 2_000)
    second = refund(stripe_on, order, 1_000)

    # the later event first (the charge now says 3,000 refunded), then both again
    for payload in (second, first, second, first):
        deliver(payload)

    order.refresh_from_db()
    assert order.refunded_amount == 3_000
    assert rows(order, TransactionType.TOP_UP_REVERSAL) == [-30_000]
    assert balance_of(buyer) == (PACK_POINTS + PACK_BONUS) * 2 // 5
    assert audit_accounts() == []


def test_refund_of_spent_points_records_a_debt_and_never_a_negative_balance(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    order = paid_order()
    spend(buyer, 40_000)

    deliver(refund(stripe_on, order, order.amount))

    order.refresh_from_db()
    assert (balance_of(buyer), owed_by(buyer)) == (0, 40_000)
    assert order.points_owed == 40_000
    assert audit_accounts() == []


def test_next_points_received_repay_the_debt_first(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    # given 40,000 points owed
    order = paid_order()
    spend(buyer, 40_000)
    deliver(refund(stripe_on, order, order.amount))
    [code] = codes.create_codes(points=30_000, count=1)
    [larger] = codes.create_codes(points=25_000, count=1)

    # when codes of 30,000 and then 25,000 points are redeemed
    codes.redeem_code(user=buyer, code=code, address="127.0.0.1")
    after_first = (balance_of(buyer), owed_by(buyer))
    codes.redeem_code(user=buyer, code=larger, address="127.0.0.1")

    # then the first repays 30,000 of the debt, the second the last 10,000
    account = Account.objects.get(user=buyer)
    repayments = account.transactions.filter(type=TransactionType.DEBT_REPAYMENT)
    assert after_first == (0, 10_000)
    assert (account.balance, account.owed) == (15_000, 0)
    assert list(repayments.order_by("pk").values_list("amount", flat=True)) == [
        -30_000,
        -10_000,
    ]
    assert audit_accounts() == []


def test_dispute_lost_after_the_points_were_spent_records_a_debt(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    order = paid_order()
    spend(buyer, 50_000)

    deliver(dispute_event(order, "charge.dispute.created", "needs_response"))
    opened = (balance_of(buyer), owed_by(buyer))
    deliver(dispute_event(order, "charge.dispute.closed", "lost"))

    order.refresh_from_db()
    assert opened == (0, 50_000)
    assert (balance_of(buyer), owed_by(buyer)) == (0, 50_000)
    assert (order.status, order.dispute_status) == (
        OrderStatus.DISPUTED,
        DisputeStatus.LOST,
    )
    assert rows(order, TransactionType.TOP_UP_REVERSAL) == [-5_000]
    assert audit_accounts() == []


def test_dispute_won_returns_what_it_took_less_the_debt_it_made(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    # given a dispute that took 5,000 points and left 50,000 owed
    order = paid_order()
    spend(buyer, 50_000)
    deliver(dispute_event(order, "charge.dispute.created", "needs_response"))

    deliver(dispute_event(order, "charge.dispute.closed", "won"))

    # then the 55,000 come back, of which 50,000 repay the debt
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == (
        OrderStatus.PAID,
        DisputeStatus.WON,
    )
    assert rows(order, TransactionType.PAYMENT_REINSTATED) == [55_000]
    assert (balance_of(buyer), owed_by(buyer)) == (5_000, 0)
    assert audit_accounts() == []


def test_dispute_closed_before_its_opening_event_arrives_stays_closed(
    stripe_on: LocalStripe, paid_order: Callable, buyer: User, deliver: Deliver
) -> None:
    order = paid_order()

    deliver(dispute_event(order, "charge.dispute.closed", "won"))
    deliver(dispute_event(order, "charge.dispute.created", "needs_response"))

    order.refresh_from_db()
    assert order.dispute_status == DisputeStatus.WON
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
    assert audit_accounts() == []


def test_refund_event_for_a_payment_never_recorded_credits_then_takes_back(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    # given a payment whose success reached neither the webhook nor the return page
    order = make_order(buyer)
    charge_card(order)

    deliver(refund(stripe_on, order, order.amount))

    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert rows(order, TransactionType.TOP_UP) == [PACK_POINTS]
    assert rows(order, TransactionType.TOP_UP_REVERSAL) == [-PACK_POINTS]
    assert balance_of(buyer) == 0
    assert audit_accounts() == []
