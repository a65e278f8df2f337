"""The top-up page, the return page and receipts, in Korean and English."""

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import translation

from accounts.models import User
from billing import codes, services
from billing.exceptions import CARD_PAYMENTS_UNAVAILABLE_MESSAGE, InvalidCode
from billing.models import PointPack
from billing.money import format_price
from eora.settings import with_sources
from tests.billing.conftest import PACK_BONUS, PACK_POINTS, LocalStripe, balance_of

pytestmark = pytest.mark.django_db

TOP_UP = "/points/top-up/"


@pytest.fixture
def signed_in(client: Client, buyer: User) -> Client:
    client.force_login(buyer)
    return client


def english(client: Client) -> Client:
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def test_price_is_formatted_for_each_locale() -> None:
    for language in ("ko", "en"):
        with translation.override(language):
            assert format_price(5_000, "krw") == "₩5,000"
            assert format_price(1_234_567, "usd") == "$12,345.67"
            assert format_price(500, "chf") == "5.00 CHF"


def test_page_without_stripe_offers_codes_only_and_says_why(
    signed_in: Client, pack: PointPack
) -> None:
    page = signed_in.get(TOP_UP)

    text = page.content.decode()
    with translation.override("ko"):
        assert str(CARD_PAYMENTS_UNAVAILABLE_MESSAGE) in text
    assert "₩5,000" in text
    assert "data-buy-pack" not in text
    assert "top_up.js" not in text
    assert 'name="code"' in text


def test_page_with_stripe_loads_stripe_js_and_our_script_only(
    signed_in: Client, stripe_on: LocalStripe, pack: PointPack
) -> None:
    text = signed_in.get(TOP_UP).content.decode()

    assert f'<script src="{stripe_on.url}/js.stripe.com/v3/"></script>' in text
    assert "billing/top_up.js" in text
    assert f'data-buy-pack="{pack.pk}"' in text
    assert f'data-publishable-key="{stripe_on.publishable_key}"' in text
    assert "<script>" not in text


def test_page_speaks_english_when_chosen(signed_in: Client, pack: PointPack) -> None:
    text = english(signed_in).get(TOP_UP).content.decode()

    assert "Top up points" in text
    assert "₩5,000" in text
    assert "Redeem a code" in text


def test_page_is_korean_by_default(signed_in: Client, pack: PointPack) -> None:
    text = signed_in.get(TOP_UP).content.decode()

    with translation.override("ko"):
        korean = translation.gettext("Top up points")
    assert korean != "Top up points"
    assert korean in text


def test_redeeming_on_the_page_adds_the_points(signed_in: Client, buyer: User) -> None:
    [code] = codes.create_codes(points=800, count=1)

    page = signed_in.post(TOP_UP, {"code": code}, follow=True)

    assert page.status_code == 200
    assert balance_of(buyer) == 800
    assert "800" in page.content.decode()


def test_wrong_code_on_the_page_shows_the_error(signed_in: Client) -> None:
    page = english(signed_in).post(TOP_UP, {"code": "NOPE-NOPE"})

    assert page.status_code == 400
    with translation.override("en"):
        assert str(InvalidCode.default_message) in page.content.decode()


def test_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get(TOP_UP)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_return_page_records_the_payment_and_says_so(
    signed_in: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)

    page = english(signed_in).get(
        f"/points/top-up/return/?order={order.pk}&payment_intent={order.provider_id}",
        follow=True,
    )

    text = page.content.decode()
    assert f"{PACK_POINTS + PACK_BONUS:,} points were added" in text
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS
    assert "Paid" in text


def test_return_page_for_someone_elses_order_is_not_found(
    signed_in: Client,
    stripe_on: LocalStripe,
    make_user: Callable[..., User],
    make_order: Callable,
) -> None:
    order = make_order(make_user())

    assert signed_in.get(f"/points/top-up/return/?order={order.pk}").status_code == 404
    assert signed_in.get("/points/top-up/return/?order=x").status_code == 404


def test_receipt_shows_the_paid_order(
    signed_in: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    services.sync_payment(payment_intent_id=order.provider_id)

    text = signed_in.get(f"/points/top-up/orders/{order.pk}/").content.decode()

    assert str(order.reference) in text
    assert "₩5,000" in text
    assert f"{PACK_POINTS:,}" in text


def test_orders_are_listed_with_status_and_receipt_link(
    signed_in: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    paid, pending = make_order(buyer), make_order(buyer)
    charge_card(paid)
    services.sync_payment(payment_intent_id=paid.provider_id)

    text = english(signed_in).get(TOP_UP).content.decode()

    assert f"/points/top-up/orders/{paid.pk}/" in text
    assert f"/points/top-up/orders/{pending.pk}/" not in text
    assert "Pending" in text and "Paid" in text


def policy_with(**environment: str) -> str:
    """Return the Content-Security-Policy that settings make from an environment."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from eora import settings; print(settings.CONTENT_SECURITY_POLICY)",
        ],
        env={**os.environ, "DEBUG": "true", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_policy_allows_stripe_only_when_stripe_is_set_up() -> None:
    stripe_set_up = {
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
    }

    without = policy_with(STRIPE_SECRET_KEY="", STRIPE_PUBLISHABLE_KEY="")
    with_stripe = policy_with(**stripe_set_up)
    local = policy_with(
        **stripe_set_up,
        STRIPE_JS_URL="http://127.0.0.1:8420/js.stripe.com/v3/",
        STRIPE_API_BASE="http://127.0.0.1:8420",
    )

    assert "stripe" not in without
    assert "script-src 'self' 'nonce-{nonce}' https://js.stripe.com;" in with_stripe
    assert "connect-src 'self' https://js.stripe.com https://api.stripe.com" in (
        with_stripe
    )
    assert "frame-src 'self' https://js.stripe.com https://*.js.stripe.com" in (
        with_stripe
    )
    assert "script-src 'self' 'nonce-{nonce}' http://127.0.0.1:8420;" in local


def test_policy_sources_are_added_to_existing_and_new_directives() -> None:
    policy = "default-src 'self'; script-src 'self' 'nonce-{nonce}'"

    added = with_sources(
        policy,
        {
            "script-src": ["https://js.stripe.com"],
            "frame-src": ["https://js.stripe.com"],
        },
    )

    assert added == (
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' https://js.stripe.com; "
        "frame-src 'self' https://js.stripe.com"
    )
