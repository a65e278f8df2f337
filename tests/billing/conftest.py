"""Billing's fixtures: packs, and localstripe running in Stripe's place.

localstripe runs as a subprocess for the whole session, the way Stripe runs in
production; the app's Stripe client points at it through STRIPE_API_BASE.
"""

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from django.test import Client
from django.test.utils import override_settings
from pytest_django.fixtures import Settings

from accounts.models import User
from billing import gateway, services
from billing.models import Order, PointPack
from points.models import Account

LOCALSTRIPE = Path(sys.executable).parent / "localstripe"
TEST_CARD = "4242424242424242"
# localstripe declines charges (not attachments) of this card.
DECLINED_CARD = "4000000000000341"
PACK_PRICE = 5_000
PACK_POINTS = 50_000
PACK_BONUS = 5_000


@dataclass(frozen=True)
class LocalStripe:
    url: str
    secret_key: str
    publishable_key: str

    def get(self, path: str) -> dict[str, Any]:
        """Return a Stripe object as localstripe serves it (as a webhook would)."""
        response = httpx.get(
            f"{self.url}/v1/{path}",
            headers={"Authorization": f"Bearer {self.secret_key}"},
        )
        response.raise_for_status()
        return response.json()

    def card(self, number: str = TEST_CARD) -> str:
        """Return the id of a card made with the publishable key, as a browser does."""
        response = httpx.post(
            f"{self.url}/v1/tokens",
            data={
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2035",
                "card[cvc]": "123",
                "key": self.publishable_key,
            },
        )
        response.raise_for_status()
        return response.json()["card"]["id"]

    def send_webhooks_to(self, url: str, secret: str) -> None:
        """Have localstripe sign and send its events to `url` (until reset)."""
        response = httpx.post(
            f"{self.url}/_config/webhooks/eora",
            json={"url": url, "secret": secret},
        )
        response.raise_for_status()

    def stop_sending_webhooks(self) -> None:
        response = httpx.post(
            f"{self.url}/_config/webhooks/eora",
            json={"url": "http://127.0.0.1:9/", "secret": "unused", "events": []},
        )
        response.raise_for_status()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """Run localstripe on a free port for the session; yield where it answers."""
    port = _free_port()
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(LOCALSTRIPE), "--port", str(port), "--from-scratch"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/js.stripe.com/v3/", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"localstripe did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield LocalStripe(
            url=url,
            secret_key=f"sk_test_{secrets.token_hex(12)}",
            publishable_key=f"pk_test_{secrets.token_hex(12)}",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def webhook_secret() -> str:
    return f"whsec_{secrets.token_hex(16)}"


@pytest.fixture
def stripe_on(
    settings: Settings, localstripe: LocalStripe, webhook_secret: str
) -> LocalStripe:
    """Point the app's Stripe settings at localstripe."""
    settings.STRIPE_SECRET_KEY = localstripe.secret_key
    settings.STRIPE_PUBLISHABLE_KEY = localstripe.publishable_key
    settings.STRIPE_WEBHOOK_SECRET = webhook_secret
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_JS_URL = f"{localstripe.url}/js.stripe.com/v3/"
    return localstripe


@pytest.fixture
def pack(db: None) -> PointPack:
    return PointPack.objects.create(
        name="Test pack",
        points=PACK_POINTS,
        bonus_points=PACK_BONUS,
        price=PACK_PRICE,
        currency="krw",
        position=10,
    )


@pytest.fixture
def buyer(make_user: Callable[..., User]) -> User:
    """A user with no points of their own: no sign-up bonus."""
    with override_settings(SIGNUP_BONUS_POINTS=0):
        return make_user()


@pytest.fixture
def make_order(stripe_on: LocalStripe, pack: PointPack) -> Callable[..., Order]:
    """Make an order with its PaymentIntent at localstripe, as the API does."""

    def make(user: User, chosen: PointPack | None = None) -> Order:
        order, _secret = services.create_order(user=user, pack_id=(chosen or pack).pk)
        return order

    return make


@pytest.fixture
def charge_card(stripe_on: LocalStripe) -> Callable[..., None]:
    """Confirm an order's PaymentIntent at localstripe without telling the app."""

    def charge(order: Order, number: str = TEST_CARD) -> None:
        gateway.confirm_payment(
            order.provider_id, payment_method=stripe_on.card(number)
        )

    return charge


def signed(payload: str, secret: str, *, timestamp: int | None = None) -> str:
    """Return a Stripe-Signature header for the payload, made by the SDK's helper."""
    return stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=timestamp
    )


def event_payload(type: str, data_object: dict[str, Any], event_id: str = "") -> str:
    """Return a webhook body in the shape Stripe (and localstripe) send."""
    return json.dumps(
        {
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": False,
            "type": type,
            "data": {"object": data_object},
        }
    )


@pytest.fixture
def deliver(client: Client, webhook_secret: str) -> Callable[..., Any]:
    """POST a webhook body signed with the secret, as Stripe delivers it."""

    def post(payload: str, *, signature: str | None = None) -> Any:
        return client.post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature or signed(payload, webhook_secret),
        )

    return post


def balance_of(user: User) -> int:
    return Account.objects.get(user=user).balance


def owed_by(user: User) -> int:
    return Account.objects.get(user=user).owed
