"""Stripe's signed webhook against localstripe's payments, and fulfilment.

The events carry objects read from localstripe (what it would send); the app
reads the payment again from localstripe, as it reads it from Stripe.
"""

import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing import gateway
from billing.exceptions import InvalidSignature, PaymentDeclined
from billing.models import Order, OrderStatus, ProviderEvent
from points.audit import audit_accounts
from points.models import TransactionType
from tests.billing.conftest import (
    DECLINED_CARD,
    PACK_BONUS,
    PACK_POINTS,
    LocalStripe,
    balance_of,
    event_payload,
    signed,
)

pytestmark = pytest.mark.django_db

Deliver = Callable[..., object]


def succeeded_event(localstripe: LocalStripe, order: Order) -> str:
    intent = localstripe.get(f"payment_intents/{order.provider_id}")
    return event_payload("payment_intent.succeeded", intent)


def credit_rows(order: Order) -> list[tuple[str, int]]:
    return list(order.ledger_rows.order_by("pk").values_list("type", "amount"))


def test_succeeded_event_credits_points_and_bonus_as_two_rows(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    order = make_order(buyer)
    charge_card(order)

    response = deliver(succeeded_event(stripe_on, order))

    order.refresh_from_db()
    assert response.status_code == 200
    assert order.status == OrderStatus.PAID
    assert credit_rows(order) == [
        (TransactionType.TOP_UP, PACK_POINTS),
        (TransactionType.BONUS, PACK_BONUS),
    ]
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
    assert audit_accounts() == []


def test_event_with_a_bad_signature_is_refused_and_changes_nothing(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    payload = succeeded_event(stripe_on, order)

    response = deliver(payload, signature=signed(payload, "whsec_not_ours"))

    order.refresh_from_db()
    assert response.status_code == 400
    assert response.json()["code"] == InvalidSignature.code
    assert order.status == OrderStatus.PENDING
    assert ProviderEvent.objects.count() == 0
    assert balance_of(buyer) == 0


# Clear of the 300 s tolerance by more than the rounding of whole seconds.
@pytest.mark.parametrize("seconds_off", [-310, 310])
def test_event_signed_outside_the_tolerance_is_refused(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
    webhook_secret: str,
    seconds_off: int,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    payload = succeeded_event(stripe_on, order)
    stamp = int(time.time()) + seconds_off

    response = deliver(
        payload, signature=signed(payload, webhook_secret, timestamp=stamp)
    )

    assert response.status_code == 400
    assert ProviderEvent.objects.count() == 0
    assert balance_of(buyer) == 0


def test_event_without_a_signature_is_refused(
    client: Client, stripe_on: LocalStripe
) -> None:
    response = client.post(
        "/webhooks/stripe/",
        data=event_payload("ping", {}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == InvalidSignature.code


def test_same_event_delivered_twice_is_stored_and_credited_once(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    payload = succeeded_event(stripe_on, order)

    first, second = deliver(payload), deliver(payload)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["event"] == second.json()["event"]
    assert ProviderEvent.objects.filter(processed_at__isnull=False).count() == 1
    assert len(credit_rows(order)) == 2
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS


def test_succeeded_event_before_the_return_page_credits_once(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
    client: Client,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    deliver(succeeded_event(stripe_on, order))
    client.force_login(buyer)

    response = client.get(f"/points/top-up/return/?order={order.pk}", follow=True)

    assert response.status_code == 200
    assert len(credit_rows(order)) == 2
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
    assert audit_accounts() == []


def test_succeeded_event_after_the_return_page_credits_nothing_more(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
    client: Client,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    client.force_login(buyer)
    client.get(f"/points/top-up/return/?order={order.pk}")
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS

    response = deliver(succeeded_event(stripe_on, order))

    assert response.status_code == 200
    assert len(credit_rows(order)) == 2
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
    assert audit_accounts() == []


def test_amount_that_does_not_match_the_order_credits_nothing(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    # given a PaymentIntent whose amount was changed at Stripe before payment
    order = make_order(buyer)
    gateway._client().v1.payment_intents.update(order.provider_id, {"amount": 100})
    charge_card(order)

    response = deliver(succeeded_event(stripe_on, order))

    order.refresh_from_db()
    assert response.status_code == 200
    assert order.status == OrderStatus.PENDING
    assert "100" in order.problem and "5000" in order.problem
    assert credit_rows(order) == []
    assert balance_of(buyer) == 0
    assert audit_accounts() == []


def test_currency_that_does_not_match_the_order_credits_nothing(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    order = make_order(buyer)
    gateway._client().v1.payment_intents.update(order.provider_id, {"currency": "usd"})
    charge_card(order)

    deliver(succeeded_event(stripe_on, order))

    order.refresh_from_db()
    assert "usd" in order.problem
    assert credit_rows(order) == []
    assert balance_of(buyer) == 0


def test_event_of_a_payment_that_is_not_an_order_is_acknowledged(
    stripe_on: LocalStripe, deliver: Deliver
) -> None:
    intent = gateway._client().v1.payment_intents.create(
        {"amount": 700, "currency": "krw", "payment_method_types": ["card"]}
    )

    response = deliver(
        event_payload("payment_intent.succeeded", {"id": intent.id, "object": "x"})
    )

    assert response.status_code == 200
    assert ProviderEvent.objects.get().processed_at is not None


def test_declined_payment_fails_the_order(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    order = make_order(buyer)
    with pytest.raises(PaymentDeclined):
        charge_card(order, DECLINED_CARD)
    intent = stripe_on.get(f"payment_intents/{order.provider_id}")

    deliver(event_payload("payment_intent.payment_failed", intent))

    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert balance_of(buyer) == 0


def test_cancelled_payment_expires_the_order(
    stripe_on: LocalStripe, buyer: User, make_order: Callable, deliver: Deliver
) -> None:
    order = make_order(buyer)
    gateway._client().v1.payment_intents.cancel(order.provider_id)
    intent = stripe_on.get(f"payment_intents/{order.provider_id}")

    deliver(event_payload("payment_intent.canceled", intent))

    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED


def test_unknown_event_type_is_stored_and_acknowledged(
    stripe_on: LocalStripe, deliver: Deliver
) -> None:
    response = deliver(event_payload("customer.created", {"id": "cus_1"}))

    assert response.status_code == 200
    stored = ProviderEvent.objects.get()
    assert (stored.type, stored.processed_at is not None) == ("customer.created", True)


def test_event_that_stripe_cannot_answer_for_is_kept_for_a_retry(
    stripe_on: LocalStripe,
    settings,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    deliver: Deliver,
) -> None:
    # given Stripe unreachable when the event arrives
    order = make_order(buyer)
    charge_card(order)
    payload = succeeded_event(stripe_on, order)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    refused = deliver(payload)

    # then Stripe is asked to deliver it again, and the retry credits it
    assert refused.status_code == 502
    assert ProviderEvent.objects.get().processed_at is None
    settings.STRIPE_API_BASE = stripe_on.url
    assert deliver(payload).status_code == 200
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS


def test_localstripe_payment_intent_reads_as_received(
    stripe_on: LocalStripe, buyer: User, make_order: Callable, charge_card: Callable
) -> None:
    # localstripe has no amount_received: the captured charge says it
    order = make_order(buyer)
    charge_card(order)

    payment = gateway.retrieve_payment(order.provider_id)

    assert "amount_received" not in stripe_on.get(
        f"payment_intents/{order.provider_id}"
    )
    assert (payment.status, payment.amount_received, payment.currency) == (
        "succeeded",
        order.amount,
        "krw",
    )
    assert payment.order_id == order.pk


def test_payment_intent_carries_the_order_id(
    stripe_on: LocalStripe, buyer: User, make_order: Callable
) -> None:
    order = make_order(buyer)

    intent = stripe_on.get(f"payment_intents/{order.provider_id}")

    assert intent["metadata"] == {"order_id": str(order.pk)}
    assert (intent["amount"], intent["currency"]) == (order.amount, "krw")


def test_webhook_url_refuses_other_methods(client: Client) -> None:
    assert client.get("/webhooks/stripe/").status_code == 405


def test_stale_orders_expire_and_a_stale_paid_one_is_credited(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    # given two orders left pending a day: one never paid, one paid unrecorded
    abandoned, paid = make_order(buyer), make_order(buyer)
    charge_card(paid)

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        call_command("expire_orders", "--hours=24", stdout=StringIO())

    abandoned.refresh_from_db()
    paid.refresh_from_db()
    intent = stripe_on.get(f"payment_intents/{abandoned.provider_id}")
    assert (abandoned.status, intent["status"]) == (OrderStatus.EXPIRED, "canceled")
    assert paid.status == OrderStatus.PAID
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
