"""The top-up page: packs paid by card, redemption codes, the user's orders."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from billing import codes, gateway, selectors, services
from billing.exceptions import BillingError, OrderNotFound
from billing.forms import RedeemForm
from billing.models import Order, OrderStatus
from billing.money import format_price
from common.errors import ServiceError
from common.rendering import page_message
from points.services import account_of

RECENT_ORDERS = 20


@login_required
@require_http_methods(["GET", "POST"])
def top_up(request: HttpRequest) -> HttpResponse:
    """Show packs, the payment form and the orders; redeem a code (POST)."""
    form = RedeemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            redemption = codes.redeem_code(
                user=request.user,
                code=form.cleaned_data["code"],
                address=request.META.get("REMOTE_ADDR", ""),
            )
        except ServiceError as error:
            form.add_error("code", page_message(error))
        else:
            messages.success(
                request,
                _("The code added %(points)s points.")
                % {"points": f"{redemption.transaction.amount:,}"},
            )
            return redirect("billing:top-up")
    packs = [
        {"pack": pack, "price": format_price(pack.price, pack.currency)}
        for pack in selectors.packs_on_sale()
    ]
    orders = [
        {"order": order, "price": format_price(order.amount, order.currency)}
        for order in selectors.orders_of(request.user, limit=RECENT_ORDERS)
    ]
    context = {
        "account": account_of(user=request.user),
        "packs": packs,
        "orders": orders,
        "form": form,
        "card_payments": gateway.card_payments_enabled(),
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": gateway.publishable_key(),
    }
    return render(
        request,
        "billing/top_up.html",
        context,
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def payment_return(request: HttpRequest) -> HttpResponse:
    """Where Stripe sends the browser back: record the payment, say how it went."""
    order = _order_or_404(request, request.GET.get("order", ""))
    if order.provider_id and not order.credited:
        try:
            order = services.sync_payment(payment_intent_id=order.provider_id) or order
        except BillingError:
            messages.warning(
                request,
                _(
                    "We could not reach the payment service to confirm your payment. "
                    "If it went through, the points will be added shortly."
                ),
            )
            return redirect(reverse("billing:top-up") + "#orders")
    _say_how_it_went(request, order)
    return redirect(reverse("billing:top-up") + "#orders")


def _say_how_it_went(request: HttpRequest, order: Order) -> None:
    if order.credited:
        messages.success(
            request,
            _("Payment received: %(points)s points were added.")
            % {"points": f"{order.points + order.bonus_points:,}"},
        )
    elif order.problem:
        messages.error(
            request,
            _(
                "Your payment could not be matched to the order, so no points were "
                "added yet. We have been notified and will sort it out."
            ),
        )
    elif order.status == OrderStatus.FAILED:
        messages.error(request, _("The payment failed. Please try again."))
    elif order.status == OrderStatus.EXPIRED:
        messages.error(request, _("The payment was cancelled."))
    else:
        messages.info(
            request,
            _(
                "Your payment is being processed. The points will be added as "
                "soon as it completes."
            ),
        )


@login_required
@require_GET
def receipt(request: HttpRequest, order_id: int) -> HttpResponse:
    order = _order_or_404(request, str(order_id))
    return render(
        request,
        "billing/receipt.html",
        {"order": order, "price": format_price(order.amount, order.currency)},
    )


def _order_or_404(request: HttpRequest, order_id: str) -> Order:
    if not order_id.isdigit() or len(order_id) > 18:
        raise Http404
    try:
        return selectors.order_of(request.user, int(order_id))
    except OrderNotFound as error:
        raise Http404 from error
