from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from points.forms import HistoryFilterForm, LimitsForm
from points.selectors import (
    active_tier,
    history,
    history_api_keys,
    history_models,
    open_holds,
)
from points.services import account_of, set_spending_limits

HISTORY_PAGE_SIZE = 20


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
        rows = history(account, **filters.history_filters())
        page = Paginator(rows, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
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
