from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from chat.selectors import costliest_conversations
from common.pagination import CountedPaginator
from points.forms import HistoryFilterForm, LimitsForm
from points.models import TransactionType
from points.selectors import (
    active_tier,
    history,
    history_api_keys,
    history_count,
    history_models,
    open_holds,
)
from points.services import account_of, set_spending_limits
from points.usage import (
    GroupBy,
    chart_series,
    summarise,
    usage_days,
)

HISTORY_PAGE_SIZE = 20
USAGE_PERIODS = (7, 30, 90)
USAGE_DEFAULT_PERIOD = 30
COSTLIEST_CONVERSATIONS = 10


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """Show the balance and the history, filtered by the GET form."""
    account = account_of(user=request.user)
    filters = HistoryFilterForm(
        request.GET,
        models=history_models(account),
        api_keys=history_api_keys(account),
    )
    page, csv_url = None, None
    if filters.is_valid():
        chosen = filters.history_filters()
        pages = CountedPaginator(
            history(account, **chosen),
            HISTORY_PAGE_SIZE,
            count=history_count(account, **chosen),
        )
        page = pages.get_page(request.GET.get("page"))
        csv_url = f"{reverse('api-history-csv')}?{filters.api_query()}"
    return render(
        request,
        "points/overview.html",
        {
            "account": account,
            "filters": filters,
            "filtered": filters.is_valid() and any(filters.cleaned_data.values()),
            "page": page,
            "csv_url": csv_url,
            "open_holds": open_holds(account),
            "tier": active_tier(account),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def limits(request: HttpRequest) -> HttpResponse:
    """Show and change the user's spending limits and low-balance alert."""
    account = account_of(user=request.user)
    form = LimitsForm(
        request.POST or None,
        initial={
            "daily": account.daily_limit,
            "monthly": account.monthly_limit,
            "alert_below": account.alert_below,
        },
    )
    if request.method == "POST" and form.is_valid():
        set_spending_limits(
            account=account,
            daily=form.cleaned_data["daily"],
            monthly=form.cleaned_data["monthly"],
            alert_below=form.cleaned_data["alert_below"],
        )
        messages.success(request, _("Your limits are saved."))
        return redirect("points:limits")
    return render(request, "points/limits.html", {"form": form, "account": account})


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """Show the last 7, 30 or 90 days of chat usage: charts, totals, credits."""
    try:
        days = int(request.GET.get("days", USAGE_DEFAULT_PERIOD))
    except ValueError:
        days = USAGE_DEFAULT_PERIOD
    if days not in USAGE_PERIODS:
        days = USAGE_DEFAULT_PERIOD
    account = account_of(user=request.user)
    until = timezone.localdate()
    since = until - timedelta(days=days - 1)
    rows = usage_days(account=account, since=since, until=until)
    totals = summarise(rows)
    by_model = summarise(rows, group_by=GroupBy.MODEL)
    by_key = summarise(rows, group_by=GroupBy.API_KEY)
    charts = {
        "labels": [period.isoformat() for period in totals.periods],
        "pointsByModel": chart_series(by_model),
        "pointsByKey": chart_series(by_key),
        "tokens": [
            {
                "label": _("Prompt tokens"),
                "data": [row.figures.prompt_tokens for row in totals.series],
            },
            {
                "label": _("Completion tokens"),
                "data": [row.figures.completion_tokens for row in totals.series],
            },
        ],
        "axes": {"points": _("Points"), "tokens": _("Tokens")},
    }
    credits = [
        (TransactionType(type).label, amount)
        for type, amount in totals.credits.items()
        if amount
    ]
    return render(
        request,
        "points/usage.html",
        {
            "days": days,
            "periods": USAGE_PERIODS,
            "usage": totals,
            "credits": credits,
            "charts": charts,
            "conversations": costliest_conversations(
                account=account,
                since=since,
                until=until,
                limit=COSTLIEST_CONVERSATIONS,
            ),
        },
    )
