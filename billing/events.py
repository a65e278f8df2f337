"""Stripe's webhook events: verified, stored once by id, then handled.

An event is stored before it is handled, and marked processed after; a repeat
of a processed event changes nothing. Handling reads Stripe again and records
what it read with the idempotent services of `billing.services`, so a repeat
of an event not yet processed (or the same event delivered several times at
once) credits or takes back nothing twice. Types not handled here are stored
and acknowledged.
"""

import logging
from collections.abc import Callable

from django.db import IntegrityError
from django.utils import timezone

from billing import gateway, services
from billing.exceptions import BillingError
from billing.models import Provider, ProviderEvent

logger = logging.getLogger(__name__)


def _payment(event_object: dict) -> None:
    services.sync_payment(payment_intent_id=event_object["id"])


def _refund(event_object: dict) -> None:
    services.sync_refunds(charge_id=event_object["id"])


def _dispute(event_object: dict) -> None:
    # localstripe has no disputes; the signed event's own fields are used.
    services.record_dispute(dispute=event_object)


HANDLERS: dict[str, Callable[[dict], None]] = {
    "payment_intent.succeeded": _payment,
    "payment_intent.payment_failed": _payment,
    "payment_intent.canceled": _payment,
    "charge.refunded": _refund,
    "charge.dispute.created": _dispute,
    "charge.dispute.closed": _dispute,
}


def receive_stripe_event(*, payload: bytes, signature: str | None) -> ProviderEvent:
    """Verify, store and handle one webhook delivery; return the stored event.

    Raise `InvalidSignature` (nothing stored) or, if handling failed, the error,
    so that Stripe delivers the event again.
    """
    event = gateway.verify_event(payload, signature)
    stored = _store(event)
    if stored.processed_at is None:
        process_event(stored)
    return stored


def _store(event: dict) -> ProviderEvent:
    try:
        stored, _created = ProviderEvent.objects.get_or_create(
            provider=Provider.STRIPE,
            event_id=event["id"],
            defaults={"type": event["type"], "payload": event},
        )
    except IntegrityError:
        # Another delivery of it was stored between our look and our insert.
        stored = ProviderEvent.objects.get(
            provider=Provider.STRIPE, event_id=event["id"]
        )
    return stored


def process_event(stored: ProviderEvent) -> None:
    """Handle a stored event and mark it processed; keep the error if it fails."""
    handler = HANDLERS.get(stored.type)
    try:
        if handler is not None:
            handler(stored.payload["data"]["object"])
    except BillingError as error:
        ProviderEvent.objects.filter(pk=stored.pk).update(error=str(error.message))
        raise
    now = timezone.now()
    ProviderEvent.objects.filter(pk=stored.pk, processed_at__isnull=True).update(
        processed_at=now, error=""
    )
    stored.processed_at = stored.processed_at or now
