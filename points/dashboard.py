"""Reads of the operators' dashboard: every figure from the roll-ups, none from the
ledger itself (`UsageDay`, `UsageTotal`, `ChatDay`, `RefusalDay`), and the few orders.

A period is a range of TIME_ZONE days, both ends included.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import MoneyBack, MoneyBackKind, Order
from points.limits import day_start
from points.models import (
    Account,
    ChatDay,
    ModelRate,
    RefusalDay,
    Tier,
    TransactionType,
    UsageDay,
    UsageTotal,
)
from points.pricing import BASIS_POINTS, Rates, default_rates

MAX_PERIOD_DAYS = 366
RECENT_DAYS = 7
LOW_BALANCE_LIMIT = 200
CHAT = TransactionType.CHAT_USAGE
# Rows that give points back or take paid points back, shown beside the charges.
REFUND_TYPES = (
    TransactionType.REFUND,
    TransactionType.TOP_UP_REVERSAL,
    TransactionType.BONUS_REVERSAL,
    TransactionType.PAYMENT_REINSTATED,
)
ORDER_REVERSAL_TYPES = (
    TransactionType.TOP_UP_REVERSAL,
    TransactionType.BONUS_REVERSAL,
    TransactionType.PAYMENT_REINSTATED,
)


@dataclass(frozen=True)
class Period:
    since: date
    until: date

    @property
    def days(self) -> list[date]:
        return [
            self.since + timedelta(days=n)
            for n in range((self.until - self.since).days + 1)
        ]

    @property
    def start(self) -> datetime:
        return day_start(self.since)

    @property
    def end(self) -> datetime:
        """Return the first moment after the period."""
        return day_start(self.until + timedelta(days=1))


def last_days(count: int, today: date | None = None) -> Period:
    """Return the `count` days ending today (TIME_ZONE)."""
    today = today or timezone.localdate()
    return Period(since=today - timedelta(days=count - 1), until=today)


def _totals(period: Period, **filters: object) -> QuerySet:
    return UsageTotal.objects.filter(
        day__gte=period.since, day__lte=period.until, **filters
    )


def _account_days(period: Period, **filters: object) -> QuerySet:
    return UsageDay.objects.filter(
        day__gte=period.since, day__lte=period.until, **filters
    )


def usage_by_day_and_model(*, period: Period) -> list[dict]:
    """Return turns, prompt and completion tokens and points charged per day and
    model (UsageTotal summed over its shards)."""
    return list(
        _totals(period, type=CHAT)
        .values("day", "model")
        .annotate(
            turns=Sum("rows"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            charged=-Sum("amount"),
            free=-Sum("free_amount"),
        )
        .order_by("day", "model")
    )


def _chat_days(period: Period, **filters: object) -> QuerySet:
    return ChatDay.objects.filter(
        day__gte=period.since, day__lte=period.until, **filters
    )


def active_users_by_day(*, period: Period) -> list[dict]:
    """Return the accounts with at least one chat turn, per day (a `ChatDay` row
    is one account's day)."""
    return list(
        _chat_days(period).values("day").annotate(users=Count("*")).order_by("day")
    )


def top_users(*, period: Period, limit: int = 20) -> list[dict]:
    """Return the accounts that were charged most in the period, with their pattern:
    turns per active day, tokens per turn, favourite model (most points) and
    last active day. Three queries, whatever the number of accounts."""
    rows = list(
        _chat_days(period)
        .values("account")
        .annotate(
            charged=-Sum("amount"),
            turns=Sum("rows"),
            tokens=Sum("prompt_tokens") + Sum("completion_tokens"),
            active_days=Count("*"),
            last_day=Max("day"),
        )
        .order_by("-charged", "account")[:limit]
    )
    ids = [row["account"] for row in rows]
    by_model: dict[int, dict[str, int]] = {}
    for group in (
        _account_days(period, type=CHAT, account__in=ids)
        .values("account", "model")
        .annotate(charged=-Sum("amount"))
    ):
        models = by_model.setdefault(group["account"], {})
        models[group["model"]] = group["charged"]
    emails = dict(Account.objects.filter(pk__in=ids).values_list("pk", "user__email"))
    for row in rows:
        models = by_model.get(row["account"], {})
        # Most points, then the name: the same answer every time.
        row["favourite_model"] = min(
            models, key=lambda name: (-models[name], name), default=""
        )
        row["email"] = emails.get(row["account"], "")
        row["turns_per_day"] = row["turns"] / row["active_days"]
        row["tokens_per_turn"] = row["tokens"] / row["turns"] if row["turns"] else 0
    return rows


def low_balance_users(
    *, threshold: int, today: date | None = None, limit: int = LOW_BALANCE_LIMIT
) -> list[dict]:
    """Return the accounts active in the last 7 days whose available points are
    zero or below `threshold`, fewest first, with their last active day."""
    recent = last_days(RECENT_DAYS, today)
    active = _chat_days(recent).values("account")
    rows = list(
        Account.objects.filter(pk__in=active)
        .annotate(available_points=F("balance") - F("held"))
        .filter(Q(available_points__lte=0) | Q(available_points__lt=threshold))
        .values("pk", "user__email", "balance", "held", "available_points")
        .order_by("available_points", "pk")[:limit]
    )
    last = dict(
        _chat_days(recent, account__in=[row["pk"] for row in rows])
        .values("account")
        .annotate(last_day=Max("day"))
        .values_list("account", "last_day")
    )
    for row in rows:
        row["last_day"] = last.get(row["pk"])
    return rows


def refusals_by_day(*, period: Period) -> list[dict]:
    """Return the turns refused with 402 per day and reason, and the accounts."""
    return list(
        RefusalDay.objects.filter(day__gte=period.since, day__lte=period.until)
        .values("day", "reason")
        .annotate(refusals=Sum("count"), accounts=Count("account"))
        .order_by("day", "reason")
    )


@dataclass(frozen=True)
class RateGroup:
    """One model and tier's turns in the period, against today's configured rates.

    charged = list_cost - discount - uncharged, row by row, so also here. The
    difference from tokens x today's rates x (1 - today's discount) is the sum of
    `rounding_and_rate_changes` (recorded list costs, floored per turn and at
    least 1 point, at the rates of their day, against the exact cost at today's
    rates), `discount_difference` (the exact discount at today's tier against
    the floored discounts recorded) and the uncharged points.
    """

    model: str
    tier: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    list_cost: int
    discount: int
    uncharged: int
    charged: int
    free: int
    rates: Rates
    configured: bool
    discount_bps: int
    # When the model's configured rates last changed, if within the period: its
    # rows may then be recorded at other rates than today's.
    rates_changed_at: datetime | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def points_per_token(self) -> float:
        return self.charged / self.tokens if self.tokens else 0.0

    @property
    def factor(self) -> Decimal:
        return Decimal(BASIS_POINTS - self.discount_bps) / BASIS_POINTS

    @property
    def prompt_rate(self) -> Decimal:
        return self.rates.prompt * self.factor

    @property
    def completion_rate(self) -> Decimal:
        return self.rates.completion * self.factor

    @property
    def list_at_current_rates(self) -> Decimal:
        return (
            self.prompt_tokens * self.rates.prompt
            + self.completion_tokens * self.rates.completion
        )

    @property
    def expected(self) -> Decimal:
        return self.list_at_current_rates * self.factor

    @property
    def difference(self) -> Decimal:
        return self.charged - self.expected

    @property
    def rounding_and_rate_changes(self) -> Decimal:
        return self.list_cost - self.list_at_current_rates

    @property
    def discount_difference(self) -> Decimal:
        return self.list_at_current_rates * (1 - self.factor) - self.discount


def rates_by_model_and_tier(*, period: Period) -> list[RateGroup]:
    """Return the chat turns per model and tier with today's rates and discount."""
    rate_rows = list(ModelRate.objects.all())
    configured = {
        rate.model: Rates(prompt=rate.prompt_rate, completion=rate.completion_rate)
        for rate in rate_rows
    }
    changed = {
        rate.model: rate.updated_at
        for rate in rate_rows
        if rate.updated_at >= period.start
    }
    discounts = dict(Tier.objects.values_list("code", "discount_bps"))
    fallback = default_rates()
    groups = (
        _totals(period, type=CHAT)
        .values("model", "tier")
        .annotate(
            turns=Sum("rows"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            list_cost=Sum("list_cost"),
            discount=Sum("discount"),
            uncharged=Sum("uncharged_points"),
            charged=-Sum("amount"),
            free=-Sum("free_amount"),
        )
        .order_by("model", "tier")
    )
    return [
        RateGroup(
            model=group["model"],
            tier=group["tier"],
            turns=group["turns"],
            prompt_tokens=group["prompt"],
            completion_tokens=group["completion"],
            list_cost=group["list_cost"],
            discount=group["discount"],
            uncharged=group["uncharged"],
            charged=group["charged"],
            free=group["free"],
            rates=configured.get(group["model"], fallback),
            configured=group["model"] in configured,
            discount_bps=discounts.get(group["tier"], 0) if group["tier"] else 0,
            rates_changed_at=changed.get(group["model"]),
        )
        for group in groups
    ]


def refunds_by_day(*, period: Period) -> list[dict]:
    """Return refund credits and reversals of paid points per day and type."""
    return list(
        _totals(period, type__in=REFUND_TYPES)
        .values("day", "type")
        .annotate(rows_count=Sum("rows"), points=Sum("amount"))
        .order_by("day", "type")
    )


def sales_by_day(*, period: Period) -> list[dict]:
    """Return the orders paid per day and pack: orders, points, bonus, revenue."""
    return list(
        Order.objects.filter(paid_at__gte=period.start, paid_at__lt=period.end)
        .annotate(day=TruncDate("paid_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "pack_name", "currency")
        .annotate(
            orders=Count("pk"),
            points=Sum("points"),
            bonus=Sum("bonus_points"),
            revenue=Sum("amount"),
        )
        .order_by("day", "pack_name", "currency")
    )


def order_refunds(*, period: Period) -> list[dict]:
    """Return the money taken back from orders (refunds, disputes) in the period,
    per day it was taken back and currency, with the points taken back with it.

    From `MoneyBack`, one row per change: a refund stays on its day whatever
    happens to its order later, and a dispute won gives its amount back on the
    day it was won (a negative amount)."""
    return list(
        MoneyBack.objects.filter(
            created_at__gte=period.start, created_at__lt=period.end
        )
        .annotate(
            day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()),
            currency=F("order__currency"),
        )
        .values("day", "currency")
        .annotate(
            orders=Count("order", distinct=True),
            refunded=Coalesce(Sum("amount", filter=Q(kind=MoneyBackKind.REFUND)), 0),
            disputed=Coalesce(Sum("amount", filter=Q(kind=MoneyBackKind.DISPUTE)), 0),
            points_taken_back=Sum("points"),
        )
        .order_by("day", "currency")
    )


def redemptions_by_day(*, period: Period) -> list[dict]:
    """Return the code uses per day and the points they credited (one ledger row
    of type redemption per use)."""
    return list(
        _totals(period, type=TransactionType.REDEMPTION)
        .values("day")
        .annotate(uses=Sum("rows"), points=Sum("amount"))
        .order_by("day")
    )


def accounts_behind(
    *, day: date, model: str | None = None, type: str = CHAT
) -> list[dict]:
    """Return the accounts whose rows make up a day's figure (of one model)."""
    filters: dict[str, object] = {"day": day, "type": type}
    if model is not None:
        filters["model"] = model
    return list(
        UsageDay.objects.filter(**filters)
        .values("account", "account__user__email")
        .annotate(
            turns=Sum("rows"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            points=Sum("amount"),
        )
        .order_by("points", "account")
    )


def accounts_refused(*, day: date, reason: str | None = None) -> list[dict]:
    """Return the accounts refused on a day (for one reason), with their counts."""
    refusals = RefusalDay.objects.filter(day=day)
    if reason:
        refusals = refusals.filter(reason=reason)
    return list(
        refusals.values("account", "account__user__email", "reason", "count").order_by(
            "-count", "account", "reason"
        )
    )
