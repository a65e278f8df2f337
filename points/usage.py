"""Reads of a user's usage: chat turns and credits by period, from `UsageDay`.

Every figure comes from the roll-up the ledger's trigger keeps (one row per
account, TIME_ZONE day, type, model, API key and tier), never from a scan of the
ledger, so that a user with years of turns gets the page as fast as a new one.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from enum import StrEnum

from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKey
from points.models import Account, TransactionType, UsageDay

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
WEB_PAGES_KEY_ID = 0
WEB_PAGES_LABEL = _("Web pages")
NO_MODEL_LABEL = _("No model")
REVOKED_KEY_LABEL = _("%(name)s (revoked)")
# Every ledger type but chat turns, in the order the page lists them.
CREDIT_TYPES = tuple(
    choice.value
    for choice in TransactionType
    if choice is not TransactionType.CHAT_USAGE
)


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class GroupBy(StrEnum):
    MODEL = "model"
    API_KEY = "api_key"


@dataclass(frozen=True)
class Figures:
    """What chat turns cost: points spent (of which free) and tokens."""

    points: int = 0
    free_points: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    uncharged_points: int = 0

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )


FIGURE_NAMES = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True)
class UsageGroup:
    """A model, or an API key (`id` "0" for the web pages)."""

    id: str
    label: str
    revoked: bool = False


@dataclass(frozen=True)
class SeriesRow:
    period: date
    group: str | None
    figures: Figures


@dataclass(frozen=True)
class Usage:
    since: date
    until: date
    granularity: Granularity
    group_by: GroupBy | None
    periods: list[date]
    groups: list[UsageGroup]
    series: list[SeriesRow]
    totals: Figures
    # The signed sum of every other ledger type in the range, by type.
    credits: dict[str, int]


@dataclass(frozen=True)
class DayRow:
    """The roll-up of one day, type, model and key, tiers summed."""

    day: date
    type: str
    model: str
    key_id: int
    amount: int
    figures: Figures


@dataclass(frozen=True)
class UsageDays:
    """The account's roll-up rows of a range, read once and summarised many ways."""

    account: Account
    since: date
    until: date
    rows: list[DayRow]
    key_names: dict[int, tuple[str, bool]]


def default_range(today: date | None = None) -> tuple[date, date]:
    """Return the last `DEFAULT_RANGE_DAYS` TIME_ZONE days up to today."""
    until = today or timezone.localdate()
    return until - timedelta(days=DEFAULT_RANGE_DAYS - 1), until


def period_start(day: date, granularity: Granularity) -> date:
    """Return the label of the period a day falls in: itself, its Monday, the 1st."""
    if granularity == Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity == Granularity.MONTH:
        return day.replace(day=1)
    return day


def periods_between(since: date, until: date, granularity: Granularity) -> list[date]:
    """Return every period that has a day in `since..until`, in order."""
    periods = []
    current = period_start(since, granularity)
    while current <= until:
        periods.append(current)
        if granularity == Granularity.MONTH:
            current = (current + timedelta(days=32)).replace(day=1)
        else:
            current += timedelta(days=7 if granularity == Granularity.WEEK else 1)
    return periods


def usage_days(*, account: Account, since: date, until: date) -> UsageDays:
    """Read the account's roll-up for `since..until` (TIME_ZONE dates, inclusive).

    One query for the figures, and one for the names of the API keys if any
    key was used.
    """
    summed = (
        UsageDay.objects.filter(account=account, day__gte=since, day__lte=until)
        .values("day", "type", "model", "key_id")
        .annotate(
            sum_rows=Sum("rows"),
            sum_amount=Sum("amount"),
            sum_free_amount=Sum("free_amount"),
            sum_prompt_tokens=Sum("prompt_tokens"),
            sum_completion_tokens=Sum("completion_tokens"),
            sum_uncharged_points=Sum("uncharged_points"),
        )
        .order_by()
    )
    rows = [
        DayRow(
            day=row["day"],
            type=row["type"],
            model=row["model"],
            key_id=row["key_id"],
            amount=row["sum_amount"],
            figures=Figures(
                points=-row["sum_amount"],
                free_points=-row["sum_free_amount"],
                prompt_tokens=row["sum_prompt_tokens"],
                completion_tokens=row["sum_completion_tokens"],
                turns=row["sum_rows"],
                uncharged_points=row["sum_uncharged_points"],
            ),
        )
        for row in summed
    ]
    key_ids = {row.key_id for row in rows} - {WEB_PAGES_KEY_ID}
    key_names = (
        {
            key.pk: (key.name, key.revoked_at is not None)
            for key in ApiKey.objects.filter(
                user_id=account.user_id, pk__in=key_ids
            ).only("name", "revoked_at")
        }
        if key_ids
        else {}
    )
    return UsageDays(
        account=account, since=since, until=until, rows=rows, key_names=key_names
    )


def _group_of(row: DayRow, group_by: GroupBy | None, days: UsageDays) -> UsageGroup:
    if group_by == GroupBy.MODEL:
        return UsageGroup(id=row.model, label=row.model or str(NO_MODEL_LABEL))
    if row.key_id == WEB_PAGES_KEY_ID:
        return UsageGroup(id=str(WEB_PAGES_KEY_ID), label=str(WEB_PAGES_LABEL))
    name, revoked = days.key_names.get(row.key_id, (f"#{row.key_id}", False))
    return UsageGroup(id=str(row.key_id), label=name, revoked=revoked)


def summarise(
    days: UsageDays,
    *,
    granularity: Granularity = Granularity.DAY,
    group_by: GroupBy | None = None,
) -> Usage:
    """Return the turns' figures by period (and group), totals and credits.

    Every period of the range is in the series, with zeros when nothing was
    used; grouped, each period has a row for every group used in the range.
    Groups come most points first.
    """
    periods = periods_between(days.since, days.until, granularity)
    cells: dict[tuple[date, str | None], Figures] = defaultdict(Figures)
    group_totals: dict[str, Figures] = defaultdict(Figures)
    groups: dict[str, UsageGroup] = {}
    credits = dict.fromkeys(CREDIT_TYPES, 0)
    totals = Figures()
    for row in days.rows:
        if row.type != TransactionType.CHAT_USAGE:
            credits[row.type] = credits.get(row.type, 0) + row.amount
            continue
        totals += row.figures
        group_id = None
        if group_by is not None:
            group = _group_of(row, group_by, days)
            groups[group.id] = group
            group_id = group.id
            group_totals[group.id] += row.figures
        cells[period_start(row.day, granularity), group_id] += row.figures
    ordered = sorted(
        groups.values(), key=lambda g: (-group_totals[g.id].points, g.label, g.id)
    )
    group_ids: Iterable[str | None] = (
        [g.id for g in ordered] if group_by is not None else [None]
    )
    series = [
        SeriesRow(period=period, group=group_id, figures=cells[period, group_id])
        for period in periods
        for group_id in group_ids
    ]
    return Usage(
        since=days.since,
        until=days.until,
        granularity=granularity,
        group_by=group_by,
        periods=periods,
        groups=ordered,
        series=series,
        totals=totals,
        credits=credits,
    )


def account_usage(
    *,
    account: Account,
    since: date,
    until: date,
    granularity: Granularity = Granularity.DAY,
    group_by: GroupBy | None = None,
) -> Usage:
    """Return the account's usage of `since..until` (TIME_ZONE dates, inclusive)."""
    days = usage_days(account=account, since=since, until=until)
    return summarise(days, granularity=granularity, group_by=group_by)


def chart_series(usage: Usage) -> list[dict[str, object]]:
    """Return the points of each group per period, as chart datasets."""
    points = {(row.period, row.group): row.figures.points for row in usage.series}
    return [
        {
            "label": (
                REVOKED_KEY_LABEL % {"name": group.label}
                if group.revoked
                else group.label
            ),
            "data": [points[period, group.id] for period in usage.periods],
        }
        for group in usage.groups
    ]
