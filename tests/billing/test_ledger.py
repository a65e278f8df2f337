"""The ledger's side of buying points: one credit per order, reversals, debts."""

import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing import codes
from billing.models import Order, PointPack, RedemptionCode
from points import services as ledger
from points.audit import audit_accounts
from points.models import Account, TransactionType

# These drive the ledger's purchase functions directly, without the order
# bookkeeping `billing.services` does around them, or break an order's rows on
# purpose to show that the audit finds it.
pytestmark = [pytest.mark.django_db, pytest.mark.skip_ledger_audit]


@pytest.fixture
def order(buyer: User, pack: PointPack) -> Order:
    """An order row as `create_order` writes it (without asking Stripe)."""
    return Order.objects.create(
        user=buyer,
        pack=pack,
        pack_name=pack.name,
        points=pack.points,
        bonus_points=pack.bonus_points,
        amount=pack.price,
        currency=pack.currency,
    )


def account_of(user: User) -> Account:
    return Account.objects.get(user=user)


def test_credit_purchase_with_the_same_key_credits_once(order: Order) -> None:
    account = account_of(order.user)
    first = ledger.credit_purchase(
        account=account, points=100, bonus=10, order=order, idempotency_key="o:1"
    )

    again = ledger.credit_purchase(
        account=account, points=100, bonus=10, order=order, idempotency_key="o:1"
    )

    assert again.pk == first.pk
    assert list(order.ledger_rows.order_by("pk").values_list("type", "amount")) == [
        (TransactionType.TOP_UP, 100),
        (TransactionType.BONUS, 10),
    ]
    assert account_of(order.user).balance == 110


def test_credit_purchase_without_a_bonus_writes_one_row(order: Order) -> None:
    ledger.credit_purchase(
        account=account_of(order.user),
        points=100,
        bonus=0,
        order=order,
        idempotency_key="o:1",
    )

    assert order.ledger_rows.count() == 1


def test_take_back_leaves_held_points_alone_and_owes_the_rest(order: Order) -> None:
    # given 1,000 points of which 600 are held by an answer in progress
    account = account_of(order.user)
    ledger.grant(account=account, amount=1_000)
    ledger.place_hold(account=account, amount=600)

    outcome = ledger.take_back(account=account, points=700, bonus=50, order=order)

    account = account_of(order.user)
    assert (outcome.taken, outcome.owed) == (400, 350)
    assert (account.balance, account.held, account.owed) == (600, 600, 350)


def test_grant_without_a_debt_writes_only_its_row(buyer: User) -> None:
    ledger.grant(account=account_of(buyer), amount=500)

    assert account_of(buyer).transactions.count() == 1


def test_database_refuses_a_negative_debt(buyer: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(user=buyer).update(owed=-1)


def test_audit_finds_a_paid_order_without_its_credit(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now(), status="paid")

    problems = [problem.problem for problem in audit_accounts()]

    assert problems == [
        f"order {order.pk}: 0 top-up rows of 0, expected 1 of {order.points}",
        f"order {order.pk}: 0 bonus rows of 0, expected 1 of {order.bonus_points}",
    ]


def test_audit_finds_a_debt_no_reversal_explains(buyer: User) -> None:
    Account.objects.filter(user=buyer).update(owed=70)

    [problem] = audit_accounts()

    assert problem.problem == "owed 70 != owed by orders 0 - repaid 0"


def test_audit_finds_code_uses_without_redemptions(user: User) -> None:
    codes.create_codes(points=5, count=1)
    RedemptionCode.objects.update(uses=1)

    [problem] = audit_accounts()

    assert problem.problem.endswith("1 uses, 0 redemptions")


def test_fresh_install_gets_a_few_packs(db: None) -> None:
    migration = importlib.import_module("billing.migrations.0002_default_packs")
    PointPack.objects.all().delete()

    migration.add_default_packs(apps, None)

    packs = list(PointPack.objects.order_by("position"))
    assert [p.price for p in packs] == [5_000, 10_000, 30_000]
    assert {p.currency for p in packs} == {"krw"}
    assert all(p.active and p.points > 0 for p in packs)


def test_debt_is_repaid_by_a_purchase_too(order: Order) -> None:
    account = account_of(order.user)
    ledger.take_back(account=account, points=300, bonus=0, order=order)

    ledger.credit_purchase(
        account=account, points=100, bonus=10, order=order, idempotency_key="o:1"
    )

    account = account_of(order.user)
    assert (account.balance, account.owed) == (0, 190)
