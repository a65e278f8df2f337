"""Stripe, through its Python SDK: the only module that talks to it.

Every function makes network calls: never call one inside `transaction.atomic()`.
Answers come back as small frozen dataclasses read from what Stripe sends, so that
the rest of the app never handles SDK objects. Errors become `PaymentDeclined`
(the card was refused) or `PaymentProviderError` (anything else).

localstripe, which the tests run in Stripe's place, differs in places: a
PaymentIntent has no `amount_received` (the captured charge's amount says it),
`latest_charge` always comes back expanded, and a PaymentIntent is confirmed
with the payment method set on it beforehand. What is read here works on both.
"""

import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings

from billing.exceptions import (
    CardPaymentsUnavailable,
    InvalidSignature,
    PaymentDeclined,
    PaymentProviderError,
)

logger = logging.getLogger(__name__)

ORDER_METADATA_KEY = "order_id"
MAX_NETWORK_RETRIES = 2


@dataclass(frozen=True)
class CreatedIntent:
    id: str
    client_secret: str


@dataclass(frozen=True)
class Payment:
    """A PaymentIntent as Stripe reports it now."""

    id: str
    status: str
    order_id: int | None
    amount: int
    amount_received: int
    currency: str
    charge_id: str | None
    receipt_url: str
    failure_message: str


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent_id: str | None
    amount_refunded: int


def card_payments_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_PUBLISHABLE_KEY)


def publishable_key() -> str:
    return settings.STRIPE_PUBLISHABLE_KEY


@lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str, timeout: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base},
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _client() -> stripe.StripeClient:
    if not card_payments_enabled():
        raise CardPaymentsUnavailable()
    return _client_for(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
    )


def _provider_error(error: stripe.StripeError, doing: str) -> Exception:
    if isinstance(error, stripe.CardError):
        return PaymentDeclined()
    logger.error("Stripe failed while %s: %s", doing, error)
    return PaymentProviderError()


def create_payment_intent(
    *, order_id: int, amount: int, currency: str, idempotency_key: str
) -> CreatedIntent:
    """Create the PaymentIntent of an order, once per key, with its id in metadata."""
    try:
        intent = _client().v1.payment_intents.create(
            {
                "amount": amount,
                "currency": currency,
                "payment_method_types": ["card"],
                "metadata": {ORDER_METADATA_KEY: str(order_id)},
            },
            {"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise _provider_error(error, "creating a payment") from error
    return CreatedIntent(id=intent.id, client_secret=intent.client_secret)


def retrieve_payment(payment_intent_id: str) -> Payment:
    """Read a PaymentIntent, with its latest charge, as Stripe has it now."""
    try:
        intent = _client().v1.payment_intents.retrieve(
            payment_intent_id, {"expand": ["latest_charge"]}
        )
    except stripe.StripeError as error:
        raise _provider_error(error, "reading a payment") from error
    return payment_from(intent.to_dict())


def payment_from(intent: dict[str, Any]) -> Payment:
    """Return the Payment of a PaymentIntent read with its latest charge expanded."""
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, dict) else {}
    received = intent.get("amount_received")
    if received is None:
        # localstripe: the captured, succeeded charge says what was taken.
        succeeded = charge.get("status") == "succeeded" and charge.get("captured")
        received = charge.get("amount", 0) if succeeded else 0
    error = intent.get("last_payment_error") or {}
    return Payment(
        id=intent["id"],
        status=intent.get("status", ""),
        order_id=_order_id(intent.get("metadata") or {}),
        amount=int(intent.get("amount") or 0),
        amount_received=int(received or 0),
        currency=str(intent.get("currency") or "").lower(),
        charge_id=charge.get("id"),
        receipt_url=charge.get("receipt_url") or "",
        failure_message=str(error.get("message") or ""),
    )


def _order_id(metadata: dict[str, Any]) -> int | None:
    value = str(metadata.get(ORDER_METADATA_KEY, ""))
    return int(value) if value.isdigit() else None


def confirm_payment(payment_intent_id: str, *, payment_method: str) -> None:
    """Confirm a PaymentIntent on the server with a payment method from the browser.

    The method is set on the intent first, then the intent is confirmed: the one
    way that both Stripe and localstripe accept.
    """
    try:
        client = _client()
        client.v1.payment_intents.update(
            payment_intent_id, {"payment_method": payment_method}
        )
        client.v1.payment_intents.confirm(payment_intent_id)
    except stripe.StripeError as error:
        raise _provider_error(error, "confirming a payment") from error


def cancel_payment(payment_intent_id: str) -> bool:
    """Cancel a PaymentIntent not yet paid; return False if Stripe refused it.

    Stripe refuses to cancel an intent that succeeded (or is being paid).
    """
    try:
        _client().v1.payment_intents.cancel(payment_intent_id)
    except stripe.InvalidRequestError:
        return False
    except stripe.StripeError as error:
        raise _provider_error(error, "cancelling a payment") from error
    return True


def refund_payment(
    payment_intent_id: str, *, amount: int, idempotency_key: str
) -> None:
    """Ask Stripe to refund `amount` of a payment; it then sends `charge.refunded`."""
    try:
        _client().v1.refunds.create(
            {"payment_intent": payment_intent_id, "amount": amount},
            {"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise _provider_error(error, "refunding a payment") from error


def retrieve_charge(charge_id: str) -> Charge:
    try:
        charge = _client().v1.charges.retrieve(charge_id).to_dict()
    except stripe.StripeError as error:
        raise _provider_error(error, "reading a charge") from error
    return Charge(
        id=charge["id"],
        payment_intent_id=charge.get("payment_intent"),
        amount_refunded=int(charge.get("amount_refunded") or 0),
    )


def verify_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Return the event of a webhook body whose `Stripe-Signature` is ours and fresh.

    The SDK checks the signature and refuses timestamps older than the tolerance;
    timestamps as far in the future are refused here too.
    """
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance
        )
        event = json.loads(text)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise InvalidSignature() from error
    if _signed_at(signature or "") > time.time() + tolerance:
        raise InvalidSignature()
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidSignature()
    return event


def _signed_at(signature: str) -> int:
    for item in signature.split(","):
        name, _, value = item.partition("=")
        if name.strip() == "t" and value.strip().isdigit():
            return int(value)
    return 0
