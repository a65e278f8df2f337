"""Orders paid by card through Stripe: create, fulfil, refund, dispute.

Network calls to Stripe (`billing.gateway`) happen outside any transaction:
each function reads Stripe first, then records what it read in one short
transaction under the order's row lock. Locks are taken in one order: the order
(or the redemption code) first, then the account, inside `points.services`.

Fulfilment (`sync_payment`) follows Stripe's pattern: one function, safe to run
any number of times and concurrently, called by the webhook and by the return
page. It re-reads the PaymentIntent from Stripe and, under the order's lock,
credits the order once if the payment succeeded and matches the order: the
order it names, the amount received and the currency. A mismatch credits
nothing; it is logged and kept on the order (`problem`) for the admin.

Refunds and disputes take points back in proportion to the money taken back:
with A the order's amount, P its points, B its bonus and R the money refunded
so far plus the amount of an open or lost dispute (at most A), the order has
had floor(P * R / A) points and floor(B * R / A) bonus taken back. It is
computed on the running total, so partial refunds add up to what one refund of
their sum takes, and a full refund takes everything; rounding down leaves a
fraction of a point with the user, never takes one too many. A dispute won
gives back what it took. What was already spent is owed (`points.services`).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from accounts.models import User
from billing import gateway
from billing.exceptions import (
    CardPaymentsUnavailable,
    OrderNotFound,
    OrderNotPayable,
    PackNotFound,
    PaymentDeclined,
    PaymentProviderError,
    RefundRefused,
)
from billing.models import (
    DisputeStatus,
    MoneyBack,
    MoneyBackKind,
    Order,
    OrderStatus,
    PointPack,
    Provider,
)
from points import selectors as ledger_selectors
from points import services as ledger
from points.models import TransactionType
from points.pricing import purchase_bonus, reversal_for

logger = logging.getLogger(__name__)

WON_DISPUTE_STATUSES = {"won", "warning_closed"}
CLOSED_DISPUTE_STATUSES = {DisputeStatus.WON, DisputeStatus.LOST}

ORDER_MISMATCH = gettext_noop(
    "Not credited: the payment %(payment)s does not match the order (%(reasons)s)."
)
AMOUNT_MISMATCH = gettext_noop("received %(received)s, expected %(expected)s")
CURRENCY_MISMATCH = gettext_noop("currency %(received)s, expected %(expected)s")
PAYMENT_MISMATCH = gettext_noop("the order belongs to payment %(expected)s")
NOT_CREATED = gettext_noop("The payment could not be created at Stripe.")


def _record_text(message: str, **values: object) -> str:
    # Kept on the order for the admin: written once, in the service's language.
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(message) % values


def _lock_order(order_id: int) -> Order | None:
    return Order.objects.select_for_update().filter(pk=order_id).first()


def _save(order: Order) -> None:
    order.updated_at = timezone.now()
    order.save()


# Orders -------------------------------------------------------------------------


def create_order(*, user: User, pack_id: int) -> tuple[Order, str]:
    """Create an order of a pack on sale and its PaymentIntent.

    Return the order and the PaymentIntent's client secret, which the browser's
    Payment Element needs and which is not stored.
    """
    if not gateway.card_payments_enabled():
        raise CardPaymentsUnavailable()
    pack = PointPack.objects.filter(pk=pack_id, active=True).first()
    if pack is None:
        raise PackNotFound()
    # The tier in force now sets the order's bonus, kept on the order.
    tier = ledger_selectors.active_tier(ledger.account_of(user=user))
    tier_bonus = purchase_bonus(pack.points, tier.purchase_bonus_bps) if tier else 0
    order = Order.objects.create(
        user=user,
        pack=pack,
        pack_name=pack.name,
        points=pack.points,
        bonus_points=pack.bonus_points + tier_bonus,
        amount=pack.price,
        currency=pack.currency,
        provider=Provider.STRIPE,
    )
    try:
        intent = gateway.create_payment_intent(
            order_id=order.pk,
            amount=order.amount,
            currency=order.currency,
            idempotency_key=f"order-{order.reference}",
        )
    except (PaymentProviderError, PaymentDeclined):
        with transaction.atomic():
            failed = _lock_order(order.pk)
            failed.status = OrderStatus.FAILED
            failed.problem = _record_text(NOT_CREATED)
            _save(failed)
        raise
    with transaction.atomic():
        order = _lock_order(order.pk)
        if order.provider_id is None:
            order.provider_id = intent.id
            _save(order)
    return order, intent.client_secret


def confirm_order(*, user: User, order_id: int, payment_method: str) -> Order:
    """Confirm an order's payment on the server with a method the browser made.

    For pages whose Stripe.js cannot confirm in the browser; the payment is then
    recorded at once, as the return page would.
    """
    order = Order.objects.filter(pk=order_id, user=user).first()
    if order is None:
        raise OrderNotFound()
    if order.status != OrderStatus.PENDING or not order.provider_id:
        raise OrderNotPayable(status=order.status)
    try:
        gateway.confirm_payment(order.provider_id, payment_method=payment_method)
    except PaymentDeclined:
        sync_payment(payment_intent_id=order.provider_id)
        raise
    return sync_payment(payment_intent_id=order.provider_id) or order


def expire_stale_orders(*, older_than: timedelta) -> int:
    """Cancel the payments of orders pending for longer than `older_than`.

    Each payment is cancelled at Stripe, then read back and recorded: the order
    expires, or, if it was paid after all and never recorded, it is credited.
    Return how many orders were looked at.
    """
    stale = Order.objects.filter(
        status=OrderStatus.PENDING,
        provider_id__isnull=False,
        created_at__lt=timezone.now() - older_than,
    ).order_by("pk")
    count = 0
    for payment_intent_id in stale.values_list("provider_id", flat=True):
        gateway.cancel_payment(payment_intent_id)
        sync_payment(payment_intent_id=payment_intent_id)
        count += 1
    return count


# Fulfilment ---------------------------------------------------------------------


def sync_payment(*, payment_intent_id: str) -> Order | None:
    """Read a payment from Stripe and record it on its order: credit it once.

    Return the order, or None if the payment is not one of ours.
    """
    return record_payment(gateway.retrieve_payment(payment_intent_id))


def record_payment(payment: gateway.Payment) -> Order | None:
    """Record a payment read from Stripe on its order, under the order's lock.

    An order not yet credited is credited if the payment succeeded and matches
    it, whatever its status (a payment that failed once may succeed later);
    a cancelled payment expires it, a failed one fails it while pending.
    """
    if payment.order_id is None:
        logger.warning("Payment %s names no order; ignored.", payment.id)
        return None
    with transaction.atomic():
        order = _lock_order(payment.order_id)
        if order is None:
            logger.error("Payment %s names a missing order; ignored.", payment.id)
            return None
        if order.credited:
            return order
        if order.provider_id is None:
            # The intent was made but its id not saved (the request died).
            order.provider_id = payment.id
        if payment.status == "succeeded":
            _credit(order, payment)
        elif payment.status == "canceled":
            order.status = OrderStatus.EXPIRED
        elif payment.failure_message and order.status == OrderStatus.PENDING:
            order.status = OrderStatus.FAILED
        _save(order)
    return order


def _credit(order: Order, payment: gateway.Payment) -> None:
    reasons = _mismatches(order, payment)
    if reasons:
        order.problem = _record_text(
            ORDER_MISMATCH, payment=payment.id, reasons="; ".join(reasons)
        )
        logger.error("Order %s not credited: %s", order.pk, order.problem)
        return
    ledger.credit_purchase(
        account=ledger.account_of(user=order.user),
        points=order.points,
        bonus=order.bonus_points,
        order=order,
        idempotency_key=f"order:{order.pk}",
    )
    order.status = OrderStatus.PAID
    order.paid_at = timezone.now()
    order.receipt_url = payment.receipt_url
    order.problem = ""
    paid_before = (
        Order.objects.filter(user=order.user_id, status=OrderStatus.PAID)
        .exclude(pk=order.pk)
        .aggregate(total=Sum("amount"))["total"]
    )
    ledger.promote_for_purchases(
        account=ledger.account_of(user=order.user),
        total_paid=(paid_before or 0) + order.amount,
    )


def _mismatches(order: Order, payment: gateway.Payment) -> list[str]:
    reasons = []
    if order.provider_id != payment.id:
        reasons.append(_record_text(PAYMENT_MISMATCH, expected=order.provider_id))
    if payment.amount_received != order.amount:
        reasons.append(
            _record_text(
                AMOUNT_MISMATCH,
                received=payment.amount_received,
                expected=order.amount,
            )
        )
    if payment.currency != order.currency:
        reasons.append(
            _record_text(
                CURRENCY_MISMATCH, received=payment.currency, expected=order.currency
            )
        )
    return reasons


# Refunds and disputes -----------------------------------------------------------


def money_taken_back(order: Order) -> int:
    return min(order.amount, order.refunded_amount + disputed_amount_held(order))


def disputed_amount_held(order: Order) -> int:
    """Return the money a dispute holds: its amount while open or once lost."""
    if order.dispute_status in (DisputeStatus.OPEN, DisputeStatus.LOST):
        return order.disputed_amount
    return 0


def _reversed(order: Order) -> int:
    return order.reversed_points + order.reversed_bonus


def _record_money_back(
    order: Order, kind: str, *, amount: int, reversed_before: int
) -> None:
    """Keep a change of the locked order's money taken back, if it moved anything."""
    points = _reversed(order) - reversed_before
    if amount or points:
        MoneyBack.objects.create(order=order, kind=kind, amount=amount, points=points)


def _order_of_payment(payment_intent_id: str | None) -> Order | None:
    order = Order.objects.filter(
        provider=Provider.STRIPE, provider_id=payment_intent_id
    ).first()
    if order is None:
        logger.warning("No order for payment %s; ignored.", payment_intent_id)
        return None
    if not order.credited:
        # Money taken back implies money taken: credit it first, if it matches.
        sync_payment(payment_intent_id=order.provider_id)
    return order


def sync_refunds(*, charge_id: str) -> Order | None:
    """Read a charge's refunds from Stripe and take back their points, once."""
    charge = gateway.retrieve_charge(charge_id)
    order = _order_of_payment(charge.payment_intent_id)
    if order is None:
        return None
    with transaction.atomic():
        order = _lock_order(order.pk)
        refunded = min(charge.amount_refunded, order.amount)
        if refunded > order.refunded_amount:
            more, reversed_before = refunded - order.refunded_amount, _reversed(order)
            order.refunded_amount = refunded
            _take_back(order)
            _save(order)
            _record_money_back(
                order,
                MoneyBackKind.REFUND,
                amount=more,
                reversed_before=reversed_before,
            )
    return order


def record_dispute(*, dispute: dict) -> Order | None:
    """Record a dispute from a signed event: take the points back, or return them.

    A dispute open or lost counts its amount as taken back; a dispute won counts
    nothing. A closed dispute stays closed, whatever event arrives after it.
    """
    payment_intent_id = dispute.get("payment_intent")
    if not payment_intent_id and dispute.get("charge"):
        payment_intent_id = gateway.retrieve_charge(dispute["charge"]).payment_intent_id
    order = _order_of_payment(payment_intent_id)
    if order is None:
        return None
    stripe_status = str(dispute.get("status", ""))
    if stripe_status in WON_DISPUTE_STATUSES:
        status = DisputeStatus.WON
    elif stripe_status == "lost":
        status = DisputeStatus.LOST
    else:
        status = DisputeStatus.OPEN
    with transaction.atomic():
        order = _lock_order(order.pk)
        if order.dispute_status in CLOSED_DISPUTE_STATUSES:
            return order
        disputed_before, reversed_before = disputed_amount_held(order), _reversed(order)
        order.dispute_id = str(dispute.get("id", ""))
        order.dispute_status = status
        order.disputed_amount = min(int(dispute.get("amount") or 0), order.amount)
        _take_back(order)
        _save(order)
        _record_money_back(
            order,
            MoneyBackKind.DISPUTE,
            amount=disputed_amount_held(order) - disputed_before,
            reversed_before=reversed_before,
        )
    return order


def _take_back(order: Order) -> None:
    """Bring the locked order's reversal to what its money taken back calls for."""
    if order.credited:
        points, bonus = reversal_for(
            points=order.points,
            bonus=order.bonus_points,
            amount=order.amount,
            taken_back=money_taken_back(order),
        )
        more_points = points - order.reversed_points
        more_bonus = bonus - order.reversed_bonus
        account = ledger.account_of(user=order.user)
        if more_points > 0 or more_bonus > 0:
            outcome = ledger.take_back(
                account=account,
                points=max(more_points, 0),
                bonus=max(more_bonus, 0),
                order=order,
            )
            order.points_owed += outcome.owed
        returned = max(-more_points, 0) + max(-more_bonus, 0)
        if returned:
            ledger.grant(
                account=account,
                amount=returned,
                type=TransactionType.PAYMENT_REINSTATED,
                order=order,
            )
        order.reversed_points, order.reversed_bonus = points, bonus
        order.status = _status_after_payment(order)


def _status_after_payment(order: Order) -> str:
    if order.dispute_status in (DisputeStatus.OPEN, DisputeStatus.LOST):
        return OrderStatus.DISPUTED
    if order.refunded_amount >= order.amount:
        return OrderStatus.REFUNDED
    if order.refunded_amount > 0:
        return OrderStatus.PARTIALLY_REFUNDED
    return OrderStatus.PAID


def refund_order(*, order_id: int, amount: int | None = None) -> Order:
    """Refund a paid order through Stripe (staff); its points come back as it says.

    Stripe sends `charge.refunded`, whose handler takes the points back; the
    charge is read here too, so that the admin sees it done at once. Both run
    the same step, which counts each refunded amount once.
    """
    order = Order.objects.get(pk=order_id)
    remaining = order.amount - order.refunded_amount
    amount = remaining if amount is None else amount
    if not order.credited or not order.provider_id or not 0 < amount <= remaining:
        raise RefundRefused()
    gateway.refund_payment(
        order.provider_id,
        amount=amount,
        idempotency_key=f"refund-{order.reference}-{order.refunded_amount}-{amount}",
    )
    payment = gateway.retrieve_payment(order.provider_id)
    if payment.charge_id is None:
        return order
    return sync_refunds(charge_id=payment.charge_id) or order
