"""Reads of the ledger: balances and history pages."""

from datetime import datetime

from django.db.models import Case, F, QuerySet, Sum, Value, When
from django.utils import timezone

from points.limits import LimitPeriod, period_bounds
from points.models import (
    Account,
    Hold,
    HoldStatus,
    Tier,
    Transaction,
    TransactionType,
)

# Versions are unique per account: a page boundary never falls between equals.
HISTORY_ORDERING = ("-version",)


def history(
    account: Account,
    *,
    types: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Transaction]:
    """Return the account's ledger rows, newest first, filtered."""
    rows = Transaction.objects.filter(account=account).order_by(*HISTORY_ORDERING)
    if types:
        rows = rows.filter(type__in=types)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return rows


def open_holds(account: Account) -> QuerySet[Hold]:
    return Hold.objects.filter(account=account, status=HoldStatus.OPEN).order_by(
        "expires_at"
    )


def key_spending(key_ids: list[int]) -> dict[int, int]:
    """Return each key's points spent in its current limit period, plus held.

    The same count as the limit's check in `reserve`: chat_usage rows since the
    period began (TIME_ZONE's day, week or month; all time for `none`) and the
    key's open holds. Two queries, however many keys.
    """
    now = timezone.now()
    sums = {
        period.value: Sum(
            Case(
                When(created_at__gte=period_bounds(period, now)[0], then=-F("amount")),
                default=Value(0),
            )
        )
        for period in (LimitPeriod.DAILY, LimitPeriod.WEEKLY, LimitPeriod.MONTHLY)
    }
    rows = (
        Transaction.objects.filter(
            api_key_id__in=key_ids, type=TransactionType.CHAT_USAGE
        )
        .values("api_key_id", "api_key__limit_period")
        .annotate(none=Sum(-F("amount")), **sums)
        .order_by()
    )
    spent = {row["api_key_id"]: row[row["api_key__limit_period"]] or 0 for row in rows}
    held = (
        Hold.objects.filter(api_key_id__in=key_ids, status=HoldStatus.OPEN)
        .values("api_key_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    for row in held:
        spent[row["api_key_id"]] = spent.get(row["api_key_id"], 0) + row["total"]
    return {key_id: spent.get(key_id, 0) for key_id in key_ids}


def active_tier(account: Account) -> Tier | None:
    """Return the account's tier if it is in force now."""
    if not account.tier_active_at(timezone.now()):
        return None
    return Tier.objects.filter(pk=account.tier_id).first()
