"""The operators' dashboard in the admin: tables and charts of `points.dashboard`,
their CSV exports and the drill-downs behind their figures."""

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from billing.money import format_price
from points import dashboard
from points.forms import (
    DEFAULT_DASHBOARD_PERIOD,
    DEFAULT_LOW_BALANCE,
    DEFAULT_TOP_USERS,
    DashboardForm,
)
from points.history_csv import guard_text
from points.models import RefusalReason, TransactionType

DASHBOARD_PERMISSION = "points.view_transaction"


@dataclass(frozen=True)
class Cell:
    """A table cell: `value` goes to the CSV, `text` to the page."""

    value: object
    url: str = ""
    display: str | None = None

    @property
    def text(self) -> str:
        if self.display is not None:
            return self.display
        return _text(self.value)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,.4f}"
    return str(value)


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        # Emails and names are the users' own text: never a formula.
        return guard_text(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Decimal):
        return f"{value:.4f}"
    return str(value)


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([c if isinstance(c, Cell) else Cell(c) for c in cells])

    def csv_rows(self) -> list[list[str]]:
        return [[str(c) for c in self.columns]] + [
            [_csv_value(cell.value) for cell in row] for row in self.rows
        ]


def _changelist(admin_name: str, /, **lookups: object) -> str:
    url = reverse(f"admin:{admin_name}_changelist")
    return f"{url}?{urlencode({k: _param(v) for k, v in lookups.items()})}"


def _param(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _account_url(account_id: int) -> str:
    return reverse("admin:points_account_change", args=[account_id])


def _day_range(day: date) -> dashboard.Period:
    return dashboard.Period(since=day, until=day)


class Dashboard:
    """The figures of one period, each read once, and the tables made of them."""

    def __init__(
        self, *, period: dashboard.Period, threshold: int, top: int, query: str
    ) -> None:
        self.period = period
        self.threshold = threshold
        self.top = top
        self.query = query

    def link(self, **params: object) -> str:
        return f"?{self.query}&{urlencode({k: _param(v) for k, v in params.items()})}"

    def ledger(self, period: dashboard.Period | None = None, **lookups: object) -> str:
        period = period or self.period
        return _changelist(
            "points_transaction",
            created_at__gte=period.start,
            created_at__lt=period.end,
            **lookups,
        )

    @cached_property
    def usage(self) -> list[dict]:
        return dashboard.usage_by_day_and_model(period=self.period)

    @cached_property
    def active(self) -> list[dict]:
        return dashboard.active_users_by_day(period=self.period)

    @cached_property
    def refusals(self) -> list[dict]:
        return dashboard.refusals_by_day(period=self.period)

    @cached_property
    def rates(self) -> list[dashboard.RateGroup]:
        return dashboard.rates_by_model_and_tier(period=self.period)

    @cached_property
    def sales(self) -> list[dict]:
        return dashboard.sales_by_day(period=self.period)

    def table_usage(self) -> Table:
        table = Table(
            "usage",
            _("Tokens and points per day and model"),
            [
                _("day"),
                _("model"),
                _("turns"),
                _("prompt tokens"),
                _("completion tokens"),
                _("points charged"),
                _("of which free points"),
            ],
        )
        for row in self.usage:
            day = row["day"]
            table.add(
                Cell(day, self.link(drill="usage", day=day)),
                row["model"],
                Cell(
                    row["turns"], self.link(drill="usage", day=day, model=row["model"])
                ),
                row["prompt_tokens"],
                row["completion_tokens"],
                Cell(
                    row["charged"],
                    self.ledger(
                        _day_range(day),
                        type__exact=TransactionType.CHAT_USAGE,
                        model=row["model"],
                    ),
                ),
                row["free"],
            )
        return table

    def table_active(self) -> Table:
        table = Table("active", _("Active users per day"), [_("day"), _("users")])
        for row in self.active:
            table.add(
                row["day"], Cell(row["users"], self.link(drill="usage", day=row["day"]))
            )
        return table

    def table_top(self) -> Table:
        table = Table(
            "top",
            _("Top users by points"),
            [
                _("account"),
                _("email"),
                _("points charged"),
                _("turns"),
                _("active days"),
                _("turns per active day"),
                _("tokens per turn"),
                _("favourite model"),
                _("last active day"),
            ],
        )
        for row in dashboard.top_users(period=self.period, limit=self.top):
            account = row["account"]
            table.add(
                Cell(account, _account_url(account)),
                row["email"],
                Cell(
                    row["charged"],
                    self.ledger(
                        account__exact=account, type__exact=TransactionType.CHAT_USAGE
                    ),
                ),
                row["turns"],
                row["active_days"],
                row["turns_per_day"],
                row["tokens_per_turn"],
                row["favourite_model"],
                row["last_day"],
            )
        return table

    def table_low(self) -> Table:
        table = Table(
            "low",
            _("Active in the last 7 days with a low balance"),
            [
                _("account"),
                _("email"),
                _("balance"),
                _("held"),
                _("available"),
                _("last active day"),
            ],
            note=_("Available points zero or below %(threshold)s.")
            % {"threshold": f"{self.threshold:,}"},
        )
        for row in dashboard.low_balance_users(threshold=self.threshold):
            table.add(
                Cell(row["pk"], _account_url(row["pk"])),
                row["user__email"],
                row["balance"],
                row["held"],
                Cell(row["available_points"], self.ledger_of_account(row["pk"])),
                row["last_day"],
            )
        return table

    def ledger_of_account(self, account_id: int) -> str:
        return _changelist("points_transaction", account__exact=account_id)

    def table_refusals(self) -> Table:
        table = Table(
            "refusals",
            _("Turns refused (402) per day and reason"),
            [_("day"), _("reason"), _("refusals"), _("accounts")],
        )
        for row in self.refusals:
            link = self.link(drill="refusals", day=row["day"], reason=row["reason"])
            table.add(
                row["day"],
                Cell(row["reason"], display=str(RefusalReason(row["reason"]).label)),
                Cell(row["refusals"], link),
                Cell(row["accounts"], link),
            )
        return table

    def table_rates(self) -> Table:
        table = Table(
            "rates",
            _("Points per token by model and tier"),
            [
                _("model"),
                _("tier"),
                _("turns"),
                _("prompt tokens"),
                _("completion tokens"),
                _("list cost"),
                _("discount"),
                _("uncharged points"),
                _("points charged"),
                _("of which free points"),
                _("points per token"),
                _("prompt rate after discount"),
                _("completion rate after discount"),
                _("at today's rates and discount"),
                _("difference"),
                _("rounding and rate changes"),
                _("discount rounding and changes"),
                _("rates changed at"),
            ],
            note=_(
                "Points charged = list cost - discount - uncharged points. The"
                " difference from today's rates is the rounding of each turn (down,"
                " at least 1 point: under one point per turn) and rate changes, plus"
                " the discount's rounding and changes, less the uncharged points."
            ),
        )
        for group in self.rates:
            table.add(
                group.model,
                group.tier,
                group.turns,
                group.prompt_tokens,
                group.completion_tokens,
                group.list_cost,
                group.discount,
                group.uncharged,
                Cell(
                    group.charged,
                    self.ledger(
                        type__exact=TransactionType.CHAT_USAGE,
                        model=group.model,
                        tier=group.tier,
                    ),
                ),
                group.free,
                group.points_per_token,
                group.prompt_rate,
                group.completion_rate,
                group.expected,
                group.difference,
                group.rounding_and_rate_changes,
                group.discount_difference,
                group.rates_changed_at,
            )
        return table

    def table_refunds(self) -> Table:
        table = Table(
            "refunds",
            _("Refunds and reversals per day"),
            [_("day"), _("type"), _("rows"), _("points")],
        )
        for row in dashboard.refunds_by_day(period=self.period):
            table.add(
                row["day"],
                Cell(row["type"], display=str(TransactionType(row["type"]).label)),
                row["rows_count"],
                Cell(
                    row["points"],
                    self.ledger(_day_range(row["day"]), type__exact=row["type"]),
                ),
            )
        return table

    def table_sales(self) -> Table:
        table = Table(
            "sales",
            _("Points sold per day and pack"),
            [
                _("day"),
                _("pack"),
                _("currency"),
                _("orders"),
                _("points"),
                _("bonus points"),
                _("revenue (minor units)"),
            ],
        )
        for row in self.sales:
            period = _day_range(row["day"])
            table.add(
                row["day"],
                row["pack_name"],
                row["currency"],
                Cell(
                    row["orders"],
                    _changelist(
                        "billing_order",
                        paid_at__gte=period.start,
                        paid_at__lt=period.end,
                        pack_name=row["pack_name"],
                    ),
                ),
                row["points"],
                row["bonus"],
                Cell(
                    row["revenue"],
                    display=format_price(row["revenue"], row["currency"]),
                ),
            )
        return table

    def table_order_refunds(self) -> Table:
        table = Table(
            "order_refunds",
            _("Money taken back from orders, per day it was taken back"),
            [
                _("day"),
                _("currency"),
                _("orders"),
                _("refunded (minor units)"),
                _("disputed (minor units)"),
                _("points taken back"),
            ],
        )
        for row in dashboard.order_refunds(period=self.period):
            period = _day_range(row["day"])
            table.add(
                row["day"],
                row["currency"],
                Cell(
                    row["orders"],
                    _changelist(
                        "billing_moneyback",
                        created_at__gte=period.start,
                        created_at__lt=period.end,
                        order__currency=row["currency"],
                    ),
                ),
                Cell(
                    row["refunded"],
                    display=format_price(row["refunded"], row["currency"]),
                ),
                Cell(
                    row["disputed"],
                    display=format_price(row["disputed"], row["currency"]),
                ),
                row["points_taken_back"],
            )
        return table

    def table_redemptions(self) -> Table:
        table = Table(
            "redemptions",
            _("Code redemptions per day"),
            [_("day"), _("uses"), _("points")],
        )
        for row in dashboard.redemptions_by_day(period=self.period):
            table.add(
                row["day"],
                Cell(
                    row["uses"],
                    self.ledger(
                        _day_range(row["day"]), type__exact=TransactionType.REDEMPTION
                    ),
                ),
                row["points"],
            )
        return table

    TABLES: dict[str, Callable[["Dashboard"], Table]] = {
        "usage": table_usage,
        "active": table_active,
        "top": table_top,
        "low": table_low,
        "refusals": table_refusals,
        "rates": table_rates,
        "refunds": table_refunds,
        "sales": table_sales,
        "order_refunds": table_order_refunds,
        "redemptions": table_redemptions,
    }

    def tables(self) -> list[Table]:
        return [build(self) for build in self.TABLES.values()]

    def charts(self) -> dict[str, dict]:
        labels = [day.isoformat() for day in self.period.days]
        return {
            "usage": self._usage_chart(labels),
            "active": _chart(
                "line",
                labels,
                {str(_("active users")): _per_day(self.active, "users")},
            ),
            "refusals": _chart(
                "bar",
                labels,
                {
                    str(reason.label): _per_day(
                        [r for r in self.refusals if r["reason"] == reason],
                        "refusals",
                    )
                    for reason in RefusalReason
                },
                stacked=True,
            ),
            "rates": {
                "type": "bar",
                "data": {
                    "labels": [f"{g.model} {g.tier}".strip() for g in self.rates],
                    "datasets": [
                        {
                            "label": str(_("points per token")),
                            "data": [round(g.points_per_token, 4) for g in self.rates],
                        },
                        {
                            "label": str(_("at today's rates and discount")),
                            "data": [
                                round(float(g.expected / g.tokens), 4)
                                if g.tokens
                                else 0
                                for g in self.rates
                            ],
                        },
                    ],
                },
                "options": {"animation": False, "maintainAspectRatio": False},
            },
            "sales": _chart(
                "bar",
                labels,
                {
                    pack: _per_day(
                        [r for r in self.sales if r["pack_name"] == pack], "points"
                    )
                    for pack in sorted({r["pack_name"] for r in self.sales})
                },
                stacked=True,
            ),
        }

    def _usage_chart(self, labels: list[str]) -> dict:
        chart = _chart(
            "bar",
            labels,
            {
                str(_("prompt tokens")): _per_day(self.usage, "prompt_tokens"),
                str(_("completion tokens")): _per_day(self.usage, "completion_tokens"),
            },
            stacked=True,
        )
        chart["data"]["datasets"].append(
            {
                "type": "line",
                "label": str(_("points charged")),
                "data": _per_day(self.usage, "charged"),
                "yAxisID": "points",
            }
        )
        chart["options"]["scales"]["points"] = {
            "position": "right",
            "beginAtZero": True,
            "grid": {"drawOnChartArea": False},
        }
        return chart


def _per_day(rows: list[dict], key: str) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for row in rows:
        sums[row["day"].isoformat()] += row[key]
    return sums


def _chart(
    kind: str, labels: list[str], series: dict[str, dict], *, stacked: bool = False
) -> dict:
    return {
        "type": kind,
        "data": {
            "labels": labels,
            "datasets": [
                {"label": name, "data": [values.get(day, 0) for day in labels]}
                for name, values in series.items()
            ],
        },
        "options": {
            "animation": False,
            "maintainAspectRatio": False,
            "scales": {
                "x": {"stacked": stacked},
                "y": {"stacked": stacked, "beginAtZero": True},
            },
        },
    }


def _drill_table(request: HttpRequest, board: Dashboard) -> Table | None:
    kind = request.GET.get("drill")
    if not kind:
        return None
    try:
        day = date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        messages.error(request, _("Choose a day to see the accounts behind it."))
        return None
    if kind == "usage":
        model = request.GET.get("model")
        title = _("Accounts with chat turns on %(day)s") % {"day": day}
        if model is not None:
            title = _("Accounts with chat turns of %(model)s on %(day)s") % {
                "model": model,
                "day": day,
            }
        table = Table(
            "drill",
            title,
            [
                _("account"),
                _("email"),
                _("turns"),
                _("prompt tokens"),
                _("completion tokens"),
                _("points charged"),
            ],
        )
        for row in dashboard.accounts_behind(day=day, model=model):
            lookups = {"account__exact": row["account"]}
            if model is not None:
                lookups["model"] = model
            table.add(
                Cell(row["account"], _account_url(row["account"])),
                row["account__user__email"],
                row["turns"],
                row["prompt_tokens"],
                row["completion_tokens"],
                Cell(
                    -row["points"],
                    board.ledger(
                        _day_range(day),
                        type__exact=TransactionType.CHAT_USAGE,
                        **lookups,
                    ),
                ),
            )
        return table
    if kind == "refusals":
        table = Table(
            "drill",
            _("Accounts refused on %(day)s") % {"day": day},
            [_("account"), _("email"), _("reason"), _("refusals")],
        )
        for row in dashboard.accounts_refused(
            day=day, reason=request.GET.get("reason")
        ):
            table.add(
                Cell(row["account"], _account_url(row["account"])),
                row["account__user__email"],
                Cell(row["reason"], display=str(RefusalReason(row["reason"]).label)),
                row["count"],
            )
        return table
    messages.error(request, _("There is no such drill-down."))
    return None


def _csv_response(table: Table, period: dashboard.Period) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"dashboard-{table.key}-{period.since}-{period.until}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerows(table.csv_rows())
    return response


def _settings(request: HttpRequest) -> tuple[DashboardForm, dashboard.Period, int, int]:
    form = DashboardForm(request.GET or None)
    cleaned: dict = {}
    if form.is_bound:
        if form.is_valid():
            cleaned = form.cleaned_data
        else:
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            form = DashboardForm()
    if cleaned.get("since"):
        period = dashboard.Period(since=cleaned["since"], until=cleaned["until"])
    else:
        period = dashboard.last_days(cleaned.get("days") or DEFAULT_DASHBOARD_PERIOD)
    threshold = cleaned.get("threshold")
    top = cleaned.get("top") or DEFAULT_TOP_USERS
    return (
        form,
        period,
        DEFAULT_LOW_BALANCE if threshold is None else threshold,
        top,
    )


def dashboard_view(request: HttpRequest, admin_site: object) -> HttpResponse:
    """Show the period's figures; `?export=<table>` sends one table as CSV."""
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    form, period, threshold, top = _settings(request)
    query = urlencode(
        {
            "since": period.since,
            "until": period.until,
            "threshold": threshold,
            "top": top,
        }
    )
    board = Dashboard(period=period, threshold=threshold, top=top, query=query)
    export = request.GET.get("export")
    if export:
        build = Dashboard.TABLES.get(export)
        if build is None:
            raise Http404(_("There is no such table."))
        return _csv_response(build(board), period)
    context = {
        **admin_site.each_context(request),
        "title": _("Points dashboard"),
        "form": form,
        "period": period,
        "query": query,
        "drill": _drill_table(request, board),
        "tables": board.tables(),
        "charts": board.charts(),
        "time_zone": settings.TIME_ZONE,
        "chart_keys": ["usage", "active", "refusals", "rates", "sales"],
    }
    return TemplateResponse(request, "admin/points/dashboard.html", context)
