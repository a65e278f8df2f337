"""Refunds (through localstripe) and disputes (recorded events) take points back."""

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from importlib import import_module

import pytest
import time_machine
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from billing import codes, gateway, services
from billing.models import (
    DisputeStatus,
    MoneyBack,
    MoneyBackKind,
    Order,
    OrderStatus,
    PointPack,
)
from points import services as ledger
from points.audit import audit_accounts
from points.dashboard import Period, order_refunds
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


# Money taken back, per day it was taken back ------------------------------------

# Asia/Seoul: 2026-12-01 10:00, 2026-12-03 10:00 and 2026-12-05 10:00.
REFUNDED_AT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
DISPUTED_AT = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
WON_AT = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def test_each_change_of_money_taken_back_is_kept_on_its_day(
    stripe_on: LocalStripe, paid_order: Callable, deliver: Deliver
) -> None:
    # given a paid order refunded in part, then disputed, then the dispute won
    order = paid_order()
    with time_machine.travel(REFUNDED_AT, tick=False):
        deliver(refund(stripe_on, order, 1_000))
        # the same refund read again changes nothing
        services.sync_refunds(
            charge_id=gateway.retrieve_payment(order.provider_id).charge_id
        )
    with time_machine.travel(DISPUTED_AT, tick=False):
        deliver(dispute_event(order, "charge.dispute.created", "needs_response", 2_000))
    with time_machine.travel(WON_AT, tick=False):
        deliver(dispute_event(order, "charge.dispute.closed", "won", 2_000))
    order.refresh_from_db()

    # then each change is a row on its own day, with the points it moved
    changes = [
        (timezone.localdate(row.created_at), row.kind, row.amount, row.points)
        for row in MoneyBack.objects.filter(order=order).order_by("created_at")
    ]
    refund_points, dispute_points = changes[0][3], changes[1][3]
    assert changes == [
        (date(2026, 12, 1), MoneyBackKind.REFUND, 1_000, refund_points),
        (date(2026, 12, 3), MoneyBackKind.DISPUTE, 2_000, dispute_points),
        (date(2026, 12, 5), MoneyBackKind.DISPUTE, -2_000, -dispute_points),
    ]
    assert refund_points > 0
    assert dispute_points > 0
    # and the rows add up to what the order keeps
    assert sum(row[2] for row in changes) == services.money_taken_back(order)
    assert sum(row[3] for row in changes) == (
        order.reversed_points + order.reversed_bonus
    )

    # and the dashboard reports the refund on its day, not on the order's last change
    period = Period(since=date(2026, 11, 30), until=date(2026, 12, 6))
    assert [
        (row["day"], row["orders"], row["refunded"], row["disputed"])
        for row in order_refunds(period=period)
    ] == [
        (date(2026, 12, 1), 1, 1_000, 0),
        (date(2026, 12, 3), 1, 0, 2_000),
        (date(2026, 12, 5), 1, 0, -2_000),
    ]


def test_orders_refunded_before_money_back_rows_get_theirs(
    stripe_on: LocalStripe, paid_order: Callable, deliver: Deliver
) -> None:
    from django.apps import apps

    backfill = import_module("billing.migrations.0003_money_back")
    # given orders refunded, disputed and lost, refunded and disputed, disputed
    # and won, and untouched, as they were before the table (no rows)
    refunded, lost, both, won, untouched = (paid_order() for _ in range(5))
    deliver(refund(stripe_on, refunded, 1_000))
    deliver(dispute_event(lost, "charge.dispute.created", "needs_response", 2_000))
    deliver(dispute_event(lost, "charge.dispute.closed", "lost", 2_000))
    deliver(refund(stripe_on, both, 1_000))
    deliver(dispute_event(both, "charge.dispute.created", "needs_response", 3_000))
    deliver(dispute_event(won, "charge.dispute.created", "needs_response", 2_000))
    deliver(dispute_event(won, "charge.dispute.closed", "won", 2_000))
    MoneyBack.objects.all().delete()

    backfill.money_back_of_past_orders(apps, None)

    # then each gets rows dated by its last change, adding up to what it keeps
    # (the points all on its first row); a dispute won holds nothing
    def points(order: Order) -> int:
        order.refresh_from_db()
        return order.reversed_points + order.reversed_bonus

    assert sorted(
        (row.order_id, row.kind, row.amount, row.points, row.created_at)
        for row in MoneyBack.objects.all()
    ) == sorted(
        [
            (refunded.pk, "refund", 1_000, points(refunded), refunded.updated_at),
            (lost.pk, "dispute", 2_000, points(lost), lost.updated_at),
            (both.pk, "refund", 1_000, points(both), both.updated_at),
            (both.pk, "dispute", 3_000, 0, both.updated_at),
        ]
    )
    assert audit_accounts() == []


def test_audit_reports_money_back_rows_that_do_not_add_up(
    stripe_on: LocalStripe, paid_order: Callable, deliver: Deliver
) -> None:
    order = paid_order()
    deliver(refund(stripe_on, order, 1_000))
    changes = MoneyBack.objects.filter(order=order)

    changes.update(amount=F("amount") - 1)
    problems = [str(problem) for problem in audit_accounts()]
    changes.update(amount=F("amount") + 1)

    assert len(problems) == 1
    assert (
        f"order {order.pk}: money taken back changes add up to refunded 999"
        in (problems[0])
    )
    assert audit_accounts() == []
