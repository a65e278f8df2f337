"""Real threads behind a barrier, each on its own PostgreSQL connection."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from billing import codes
from billing.exceptions import CodeAlreadyRedeemed, CodeUsedUp, RedemptionError
from billing.models import OrderStatus, ProviderEvent, Redemption, RedemptionCode
from points.audit import audit_accounts
from points.models import Account, Transaction, TransactionType
from tests.billing.conftest import (
    PACK_BONUS,
    PACK_POINTS,
    LocalStripe,
    event_payload,
    signed,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Result = TypeVar("Result")
DELIVERIES = 8
USERS = 12
USES = 5
CODE_POINTS = 700


def run_together(task: Callable[[int], Result], count: int) -> list[object]:
    """Run `task(0..count-1)` on threads released at once; errors are results."""
    barrier = threading.Barrier(count)

    def work(index: int) -> object:
        try:
            barrier.wait(timeout=10)
            return task(index)
        except RedemptionError as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def test_same_event_delivered_eight_times_at_once_credits_exactly_once(
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
    webhook_secret: str,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    intent = stripe_on.get(f"payment_intents/{order.provider_id}")
    payload = event_payload("payment_intent.succeeded", intent)

    def deliver(_: int) -> int:
        return (
            Client()
            .post(
                "/webhooks/stripe/",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signed(payload, webhook_secret),
            )
            .status_code
        )

    statuses = run_together(deliver, DELIVERIES)

    order.refresh_from_db()
    credits = Transaction.objects.filter(order=order)
    assert statuses == [200] * DELIVERIES
    assert ProviderEvent.objects.count() == 1
    assert order.status == OrderStatus.PAID
    assert sorted(credits.values_list("type", "amount")) == sorted(
        [(TransactionType.TOP_UP, PACK_POINTS), (TransactionType.BONUS, PACK_BONUS)]
    )
    assert Account.objects.get(user=buyer).balance == PACK_POINTS + PACK_BONUS
    assert audit_accounts() == []


def test_one_code_raced_by_many_users_credits_exactly_its_uses(
    make_user: Callable[..., User],
) -> None:
    users = [make_user() for _ in range(USERS)]
    [code] = codes.create_codes(points=CODE_POINTS, count=1, uses=USES)

    results = run_together(
        lambda index: codes.redeem_code(
            user=users[index], code=code, address=f"10.0.0.{index}"
        ),
        USERS,
    )

    redeemed = [r for r in results if isinstance(r, Redemption)]
    refused = [r for r in results if isinstance(r, CodeUsedUp)]
    assert (len(redeemed), len(refused)) == (USES, USERS - USES)
    assert RedemptionCode.objects.get().uses == USES
    assert Transaction.objects.filter(type=TransactionType.REDEMPTION).count() == USES
    assert len({r.user_id for r in redeemed}) == USES
    assert audit_accounts() == []


def test_one_code_raced_by_one_user_credits_them_once(
    make_user: Callable[..., User],
) -> None:
    user = make_user()
    [code] = codes.create_codes(points=CODE_POINTS, count=1, uses=USES)
    before = Account.objects.get(user=user).balance

    results = run_together(
        lambda _: codes.redeem_code(user=user, code=code, address="10.0.0.1"), USERS
    )

    redeemed = [r for r in results if isinstance(r, Redemption)]
    refused = [r for r in results if isinstance(r, CodeAlreadyRedeemed)]
    assert (len(redeemed), len(refused)) == (1, USERS - 1)
    assert RedemptionCode.objects.get().uses == 1
    assert Account.objects.get(user=user).balance == before + CODE_POINTS
    assert audit_accounts() == []
