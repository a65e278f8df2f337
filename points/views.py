from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from points.selectors import active_tier, history, open_holds
from points.services import account_of

HISTORY_PAGE_SIZE = 20


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    account = account_of(user=request.user)
    page = Paginator(history(account), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "points/overview.html",
        {
            "account": account,
            "page": page,
            "open_holds": open_holds(account),
            "tier": active_tier(account),
        },
    )
