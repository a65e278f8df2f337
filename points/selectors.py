"""Reads of the ledger: balances and history pages."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

from django.db.models import Case, F, QuerySet, Sum, Value, When
from django.utils import timezone

from accounts.models import ApiKey
from points.limits import LimitPeriod, day_start, period_bounds
from points.models import (
    Account,
    Hold,
    HoldStatus,
    Tier,
    Transaction,
    TransactionType,
    UsageDay,
)

# Versions are unique per account: a page boundary never falls between equals.
HISTORY_ORDERING = ("-version",)
# The `api_key` filter's value for rows written without a key (the web pages).
WEB_PAGES: Final = "web"
ApiKeyFilter = int | Literal["web"]


def history(
    account: Account,
    *,
    types: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    api_key: ApiKeyFilter | None = None,
) -> QuerySet[Transaction]:
    """Return the account's ledger rows, newest first, filtered.

    `api_key` is a key's id, or `WEB_PAGES` for the rows written without one.
    """
    rows = Transaction.objects.filter(account=account).order_by(*HISTORY_ORDERING)
    if types:
        rows = rows.filter(type__in=types)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if model is not None:
        rows = rows.filter(model=model)
    if api_key == WEB_PAGES:
        rows = rows.filter(api_key__isnull=True)
    elif api_key is not None:
        rows = rows.filter(api_key_id=api_key)
    return rows


def history_count(
    account: Account,
    *,
    types: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    api_key: ApiKeyFilter | None = None,
) -> int:
    """Return how many rows `history()` with the same filters returns, exactly.

    Whole days come from the `UsageDay` roll-up, which keeps each day's rows by
    type, model and key (a few rows a day, not every ledger row); a bound inside
    a day counts that part of its day from the ledger, by (account, created_at).
    A filtered count of a long history so reads days, not rows. Without a
    filter the count is the account's version, so `account` must be fresh.
    """
    filters = {"types": types, "model": model, "api_key": api_key}
    if not any(filters.values()) and since is None and until is None:
        # Every ledger row bumps its account's version by one, from 0.
        return account.version
    try:
        first_day, end_day = _whole_days(since, until)
    except OverflowError:
        # A bound at the end of the calendar: no whole day inside it to sum.
        first_day = end_day = date.max
    if first_day is not None and end_day is not None and first_day >= end_day:
        # No whole day between the bounds: at most two days of the ledger.
        return history(account, since=since, until=until, **filters).count()
    days = UsageDay.objects.filter(account=account)
    if types:
        days = days.filter(type__in=types)
    if model is not None:
        days = days.filter(model=model)
    if api_key is not None:
        days = days.filter(key_id=0 if api_key == WEB_PAGES else api_key)
    if first_day is not None:
        days = days.filter(day__gte=first_day)
    if end_day is not None:
        days = days.filter(day__lt=end_day)
    total = days.aggregate(rows=Sum("rows"))["rows"] or 0
    if first_day is not None and since < day_start(first_day):
        total += history(
            account, since=since, until=day_start(first_day), **filters
        ).count()
    if end_day is not None and day_start(end_day) < until:
        total += history(
            account, since=day_start(end_day), until=until, **filters
        ).count()
    return total


def _whole_days(
    since: datetime | None, until: datetime | None
) -> tuple[date | None, date | None]:
    """Return the first whole TIME_ZONE day at or after `since` and the day
    holding `until` (the end, not included), None for an open bound."""
    zone = timezone.get_default_timezone()
    first_day = None
    if since is not None:
        first_day = timezone.localdate(since, zone)
        if day_start(first_day) < since:
            first_day += timedelta(days=1)
    end_day = None if until is None else timezone.localdate(until, zone)
    return first_day, end_day


def history_chunk(
    rows: QuerySet, *, before_version: int | None, size: int
) -> list[Any]:
    """Return up to `size` of `rows` (newest first) older than `before_version`.

    A keyset page: each chunk is one short query on (account, version), so a
    long history is read without a server-side cursor or a long transaction.
    `rows` may be `history()` or its `values_list(..., named=True)`: each row
    has a `version`.
    """
    if before_version is not None:
        rows = rows.filter(version__lt=before_version)
    return list(rows[:size])


def history_chunks(rows: QuerySet, *, size: int) -> Iterator[list[Any]]:
    """Yield all of `rows`, newest first, `size` rows at a time."""
    before_version = None
    while True:
        chunk = history_chunk(rows, before_version=before_version, size=size)
        if not chunk:
            return
        before_version, last = chunk[-1].version, len(chunk) < size
        yield chunk
        # Let this chunk go before the next one is read.
        del chunk
        if last:
            return


def history_models(account: Account) -> list[str]:
    """Return the models the account's rows name, from the roll-ups (no ledger scan)."""
    return list(
        UsageDay.objects.filter(account=account)
        .exclude(model="")
        .values_list("model", flat=True)
        .distinct()
        .order_by("model")
    )


def history_api_keys(account: Account) -> list[ApiKey]:
    """Return the account's API keys, revoked ones too: old rows name them."""
    return list(ApiKey.objects.filter(user_id=account.user_id).order_by("name", "pk"))


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
