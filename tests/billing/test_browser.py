"""Buy a pack in Chromium on the real page, paid at localstripe, credited once.

The production server (uvicorn, its own SQLite database) talks to localstripe as
it would to Stripe; the page loads localstripe's stand-in of Stripe.js, and
localstripe sends its own signed `payment_intent.succeeded` to the webhook.
"""

import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.billing.conftest import TEST_CARD, LocalStripe
from tests.live_server import manage, server_environment, uvicorn_server

# Its server runs on a SQLite file of its own: once per CI run.
pytestmark = [pytest.mark.browser, pytest.mark.own_server]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]
# The first default pack (billing/migrations/0002_default_packs.py).
STARTER_POINTS = 100_000
WEBHOOK_SECONDS = 10


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[tuple[str, Path]]:
    """Serve the app with Stripe at localstripe; yield its URL and database file."""
    data_dir = tmp_path_factory.mktemp("shop")
    secret = f"whsec_{secrets.token_hex(16)}"
    env = server_environment(
        data_dir,
        STRIPE_SECRET_KEY=localstripe.secret_key,
        STRIPE_PUBLISHABLE_KEY=localstripe.publishable_key,
        STRIPE_WEBHOOK_SECRET=secret,
        STRIPE_API_BASE=localstripe.url,
        STRIPE_JS_URL=f"{localstripe.url}/js.stripe.com/v3/",
    )
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    with uvicorn_server(env, data_dir / "uvicorn.log") as url:
        localstripe.send_webhooks_to(f"{url}/webhooks/stripe/", secret)
        try:
            yield url, data_dir / "db.sqlite3"
        finally:
            localstripe.stop_sending_webhooks()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


def available_points(page: Page) -> int:
    return int(re.sub(r"\D", "", page.locator("#available-points").inner_text()))


def rows_of(database: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def test_buying_a_pack_with_a_test_card_raises_the_balance_once(
    shop: tuple[str, Path], browser: Browser
) -> None:
    url, database = shop
    context = browser.new_context(base_url=url, locale="ko-KR")
    page = context.new_page()
    script_errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            script_errors.append(message.text) if message.type == "error" else None
        ),
    )

    # Given a person who just signed up, on the top-up page
    password = secrets.token_urlsafe(12)
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", f"buyer-{secrets.token_hex(4)}@example.com")
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.click("main form button[type=submit]")
    page.goto("/points/top-up/")
    before = available_points(page)
    expect(page.locator(".pack-price").first).to_have_text("₩5,000")

    # When they buy the first pack with the test card
    page.locator("[data-buy-pack]").first.click()
    card = page.locator("#payment-element")
    card.locator("input[placeholder=number]").fill(TEST_CARD)
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("34")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("04524")
    page.click("#pay-button")

    # Then the return page says it is paid and the balance rose by the pack
    expect(page).to_have_url(re.compile(r"/points/top-up/#orders$"))
    expect(page.locator(".message.success")).to_contain_text(f"{STARTER_POINTS:,}")
    assert available_points(page) == before + STARTER_POINTS
    expect(page.locator("tr[data-order] .order-status").first).to_have_text("결제 완료")

    # And localstripe's own signed event arrives and credits nothing more
    deadline = time.monotonic() + WEBHOOK_SECONDS
    while not rows_of(
        database,
        "SELECT 1 FROM billing_providerevent WHERE type = 'payment_intent.succeeded' "
        "AND processed_at IS NOT NULL",
    ):
        assert time.monotonic() < deadline, "localstripe's webhook did not arrive"
        time.sleep(0.2)
    page.reload()
    assert available_points(page) == before + STARTER_POINTS
    assert rows_of(
        database, "SELECT type, amount FROM points_transaction WHERE order_id NOT NULL"
    ) == [("top_up", STARTER_POINTS)]
    assert script_errors == []
    context.close()
