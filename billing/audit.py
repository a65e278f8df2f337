"""Check orders, redemption codes and debts against the ledger (`points_audit`).

Registered with `points.audit` by the app, so `audit_accounts()` runs it.
"""

from django.db.models import (
    BigIntegerField,
    Count,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from billing.models import MoneyBack, MoneyBackKind, Order, Redemption, RedemptionCode
from billing.services import disputed_amount_held, money_taken_back
from points.audit import AuditProblem
from points.models import Account, Transaction, TransactionType
from points.pricing import reversal_for

REVERSAL_TYPES = (TransactionType.TOP_UP_REVERSAL, TransactionType.BONUS_REVERSAL)


def _sum(expression: object) -> Coalesce:
    return Coalesce(expression, Value(0), output_field=BigIntegerField())


def _rows(type_: str | tuple) -> Q:
    types = (type_,) if isinstance(type_, str) else type_
    return Q(ledger_rows__type__in=types)


def order_problems() -> list[AuditProblem]:
    return [*_order_problems(), *_debt_problems(), *_code_problems()]


def _order_problems() -> list[AuditProblem]:
    """Each credited order has exactly its credit rows, each reversal its rows.

    Credited: one `top_up` row of its points and, with a bonus, one `bonus` row
    of it. Its points taken back are what its money taken back calls for, and
    the reversal rows plus what went onto the debt, less what a won dispute
    returned, add up to them. An order never credited has no rows.
    """
    amount = "ledger_rows__amount"
    orders = Order.objects.select_related("user__points_account").annotate(
        top_up=_sum(Sum(amount, filter=_rows(TransactionType.TOP_UP))),
        top_up_rows=Count("ledger_rows", filter=_rows(TransactionType.TOP_UP)),
        bonus=_sum(Sum(amount, filter=_rows(TransactionType.BONUS))),
        bonus_rows=Count("ledger_rows", filter=_rows(TransactionType.BONUS)),
        taken=-_sum(Sum(amount, filter=_rows(REVERSAL_TYPES))),
        reinstated=_sum(Sum(amount, filter=_rows(TransactionType.PAYMENT_REINSTATED))),
        rows=Count("ledger_rows"),
        refunds_kept=_sum(_money_back("amount", kind=MoneyBackKind.REFUND)),
        disputes_kept=_sum(_money_back("amount", kind=MoneyBackKind.DISPUTE)),
        points_kept=_sum(_money_back("points")),
    )
    problems = []
    for order in orders.order_by("pk"):
        account = order.user.points_account
        problems.extend(
            AuditProblem(account.pk, order.user.email, f"order {order.pk}: {text}")
            for text in _problems_of(order)
        )
    return problems


def _money_back(field: str, **filters: object) -> Subquery:
    """The order's `MoneyBack` rows summed (a subquery: no join beside the ledger's)."""
    return Subquery(
        MoneyBack.objects.filter(order=OuterRef("pk"), **filters)
        .values("order")
        .annotate(total=Sum(field))
        .values("total")
    )


def _problems_of(order: Order) -> list[str]:
    found = _money_back_problems(order)
    if not order.credited:
        if order.rows:
            found.append(f"not credited but has {order.rows} ledger rows")
        return found
    if (order.top_up_rows, order.top_up) != (1, order.points):
        found.append(
            f"{order.top_up_rows} top-up rows of {order.top_up}, "
            f"expected 1 of {order.points}"
        )
    expected_bonus_rows = 1 if order.bonus_points else 0
    if (order.bonus_rows, order.bonus) != (expected_bonus_rows, order.bonus_points):
        found.append(
            f"{order.bonus_rows} bonus rows of {order.bonus}, "
            f"expected {expected_bonus_rows} of {order.bonus_points}"
        )
    expected = reversal_for(
        points=order.points,
        bonus=order.bonus_points,
        amount=order.amount,
        taken_back=money_taken_back(order),
    )
    if (order.reversed_points, order.reversed_bonus) != expected:
        found.append(
            f"taken back {order.reversed_points}+{order.reversed_bonus}, "
            f"the money taken back calls for {expected[0]}+{expected[1]}"
        )
    reversed_total = order.reversed_points + order.reversed_bonus
    if order.taken + order.points_owed - order.reinstated != reversed_total:
        found.append(
            f"reversal rows {order.taken} + owed {order.points_owed} - reinstated "
            f"{order.reinstated} != taken back {reversed_total}"
        )
    return found


def _money_back_problems(order: Order) -> list[str]:
    """The changes of money taken back add up to what the order keeps."""
    kept = (order.refunds_kept, order.disputes_kept, order.points_kept)
    held = (
        order.refunded_amount,
        disputed_amount_held(order),
        order.reversed_points + order.reversed_bonus,
    )
    if kept == held:
        return []
    return [
        f"money taken back changes add up to refunded {kept[0]}, disputed "
        f"{kept[1]}, points {kept[2]}; the order has {held[0]}, {held[1]}, {held[2]}"
    ]


def _debt_problems() -> list[AuditProblem]:
    """The debt is what reversals could not take, less the repayments."""
    owed_by_orders = (
        Order.objects.filter(user=OuterRef("user"))
        .values("user")
        .annotate(total=Sum("points_owed"))
        .values("total")
    )
    repaid = (
        Transaction.objects.filter(
            account=OuterRef("pk"), type=TransactionType.DEBT_REPAYMENT
        )
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    accounts = Account.objects.select_related("user").annotate(
        owed_by_orders=_sum(Subquery(owed_by_orders)),
        repaid=-_sum(Subquery(repaid)),
    )
    return [
        AuditProblem(
            account.pk,
            account.user.email,
            f"owed {account.owed} != owed by orders {account.owed_by_orders} "
            f"- repaid {account.repaid}",
        )
        for account in accounts.exclude(owed=0, owed_by_orders=0, repaid=0)
        if account.owed != account.owed_by_orders - account.repaid
    ]


def _code_problems() -> list[AuditProblem]:
    """A code's uses are its redemptions; each redemption is its code's credit."""
    codes = RedemptionCode.objects.annotate(redeemed=Count("redemptions")).exclude(
        uses=F("redeemed")
    )
    problems = [
        AuditProblem(
            0, "", f"code {code.pk}: {code.uses} uses, {code.redeemed} redemptions"
        )
        for code in codes.order_by("pk")
    ]
    wrong = Redemption.objects.select_related("code", "user", "transaction").exclude(
        transaction__type=TransactionType.REDEMPTION,
        transaction__amount=F("code__points"),
        transaction__account__user=F("user"),
    )
    problems.extend(
        AuditProblem(
            redemption.transaction.account_id,
            redemption.user.email,
            f"redemption {redemption.pk}: row {redemption.transaction.pk} is "
            f"{redemption.transaction.type} {redemption.transaction.amount}, "
            f"expected redemption {redemption.code.points}",
        )
        for redemption in wrong.order_by("pk")
    )
    return problems
