"""Reads of the ledger: balances and history pages."""

from datetime import datetime

from django.db.models import QuerySet

from points.models import Account, Hold, HoldStatus, Transaction

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
