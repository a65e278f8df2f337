"""Check that every account agrees with its own ledger."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Lag

from points.models import Account, Hold, HoldStatus, Transaction


@dataclass(frozen=True)
class AuditProblem:
    account_id: int
    email: str
    problem: str

    def __str__(self) -> str:
        return f"account {self.account_id} ({self.email}): {self.problem}"


AuditCheck = Callable[[], list[AuditProblem]]
# Checks of other apps against the ledger (billing: orders, codes, debts).
_extra_checks: list[AuditCheck] = []


def register_check(check: AuditCheck) -> None:
    """Have `audit_accounts` run `check` too (apps call this in `ready()`)."""
    if check not in _extra_checks:
        _extra_checks.append(check)


def _sum(expression: object) -> Coalesce:
    return Coalesce(expression, Value(0), output_field=BigIntegerField())


def audit_accounts() -> list[AuditProblem]:
    """Return every disagreement between an account and its ledger rows.

    Checked: the balance equals the sum of the rows; versions run 1..n without a
    gap and the account's version is n; each row's balance_after is the previous
    one plus its amount, and the last equals the balance; the totals equal the sums
    of the credits and debits; `held` equals the open holds; `free_balance` equals
    the sum of the rows' free parts and `free_held` the open holds' free parts
    (and free points stay within the balance); the usage roll-ups equal the ledger
    summed again. Then the checks
    other apps registered (`register_check`).
    """
    last_balance = (
        Transaction.objects.filter(account=OuterRef("pk"))
        .order_by("-version")
        .values("balance_after")[:1]
    )
    accounts = Account.objects.select_related("user").annotate(
        ledger_sum=_sum(Sum("transactions__amount")),
        ledger_credits=_sum(
            Sum(
                Case(
                    When(transactions__amount__gt=0, then=F("transactions__amount")),
                    default=Value(0),
                )
            )
        ),
        ledger_rows=Count("transactions"),
        ledger_min_version=Min("transactions__version"),
        ledger_max_version=Max("transactions__version"),
        # Summed over the join like the amounts: a subquery would be put in the
        # GROUP BY and run again for every ledger row (quadratic in a history).
        ledger_free_sum=_sum(Sum("transactions__free_amount")),
        last_balance_after=Subquery(last_balance),
    )
    # The open holds in one query of their own, for the same reason.
    open_holds = {
        row["account"]: (row["total"], row["free"])
        for row in Hold.objects.filter(status=HoldStatus.OPEN)
        .values("account")
        .annotate(total=Sum("amount"), free=Sum("free_amount"))
        .order_by()
    }
    problems: list[AuditProblem] = []
    for account in accounts.order_by("pk"):
        account.open_held, account.open_free_held = open_holds.get(account.pk, (0, 0))
        found = _account_problems(account)
        problems.extend(
            AuditProblem(account.pk, account.user.email, text) for text in found
        )
    problems.extend(_chain_breaks())
    problems.extend(_rollup_differences())
    for check in _extra_checks:
        problems.extend(check())
    return problems


def _account_problems(account: Account) -> list[str]:
    found = []
    debits = account.ledger_credits - account.ledger_sum
    if account.balance != account.ledger_sum:
        found.append(
            f"balance {account.balance} != sum of ledger rows {account.ledger_sum}"
        )
    if account.ledger_rows and (
        account.ledger_min_version != 1
        or account.ledger_max_version != account.ledger_rows
    ):
        found.append(
            f"versions {account.ledger_min_version}..{account.ledger_max_version} "
            f"over {account.ledger_rows} rows"
        )
    if account.version != account.ledger_rows:
        found.append(f"version {account.version} != {account.ledger_rows} ledger rows")
    if account.ledger_rows and account.last_balance_after != account.balance:
        found.append(
            f"last balance_after {account.last_balance_after} != balance "
            f"{account.balance}"
        )
    if account.total_earned != account.ledger_credits:
        found.append(
            f"total_earned {account.total_earned} != credits {account.ledger_credits}"
        )
    if account.total_spent != debits:
        found.append(f"total_spent {account.total_spent} != debits {debits}")
    if account.held != account.open_held:
        found.append(f"held {account.held} != open holds {account.open_held}")
    if account.free_balance != account.ledger_free_sum:
        found.append(
            f"free_balance {account.free_balance} != sum of free parts "
            f"{account.ledger_free_sum}"
        )
    if account.free_held != account.open_free_held:
        found.append(
            f"free_held {account.free_held} != open holds' free parts "
            f"{account.open_free_held}"
        )
    if not 0 <= account.free_held <= account.free_balance <= account.balance:
        found.append(
            f"free points out of bounds: held {account.free_held}, "
            f"free {account.free_balance}, balance {account.balance}"
        )
    return found


def _chain_breaks() -> list[AuditProblem]:
    """Return each row whose balance_after is not the previous one plus its amount."""
    chained = Transaction.objects.annotate(
        previous_balance=Window(
            Lag("balance_after", default=0),
            partition_by=[F("account_id")],
            order_by=F("version").asc(),
        )
    ).filter(~Q(balance_after=F("previous_balance") + F("amount")))
    return [
        AuditProblem(
            row.account_id,
            row.account.user.email,
            f"row version {row.version}: balance_after {row.balance_after} != "
            f"{row.previous_balance} + {row.amount}",
        )
        for row in chained.select_related("account__user").order_by(
            "account_id", "version"
        )
    ]


def _rollup_differences() -> list[AuditProblem]:
    """Return each usage roll-up row that disagrees with the ledger rows it sums."""
    from points import rollup

    return [
        AuditProblem(0, "-", f"usage roll-up: {text}") for text in rollup.differences()
    ]
