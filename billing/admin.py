import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from billing import codes, events, services
from billing.exceptions import BillingError
from billing.forms import CodeBatchForm, RefundForm
from billing.models import (
    MoneyBack,
    Order,
    OwedAccount,
    PointPack,
    ProviderEvent,
    Redemption,
    RedemptionCode,
)
from billing.money import format_price
from common.errors import ServiceError


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PointPack)
class PointPackAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "points",
        "bonus_points",
        "price_display",
        "position",
        "active",
    )
    list_editable = ("position", "active")
    list_filter = ("active",)
    ordering = ("position", "pk")

    @admin.display(description=_("price"), ordering="price")
    def price_display(self, pack: PointPack) -> str:
        return format_price(pack.price, pack.currency)


class ProblemFilter(admin.SimpleListFilter):
    title = _("problem")
    parameter_name = "problem"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", _("Not matching its payment"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.exclude(problem="")
        return queryset


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "email",
        "pack_name",
        "price_display",
        "status",
        "points",
        "bonus_points",
        "has_problem",
        "paid_at",
    )
    list_filter = ("status", ProblemFilter, "dispute_status")
    list_select_related = ("user",)
    search_fields = ("user__email", "provider_id", "reference")
    ordering = ("-created_at", "-pk")
    actions = ("check_with_stripe",)
    fields = (
        "reference",
        "user",
        "pack_name",
        "points",
        "bonus_points",
        "price_display",
        "status",
        "provider",
        "provider_id",
        "problem",
        "refunded_amount",
        "dispute_id",
        "dispute_status",
        "disputed_amount",
        "reversed_points",
        "reversed_bonus",
        "points_owed",
        "receipt_url",
        "created_at",
        "updated_at",
        "paid_at",
        "refund_link",
        "ledger",
    )
    readonly_fields = fields

    @admin.display(description=_("email"), ordering="user__email")
    def email(self, order: Order) -> str:
        return order.user.email

    @admin.display(description=_("amount"), ordering="amount")
    def price_display(self, order: Order) -> str:
        return format_price(order.amount, order.currency)

    @admin.display(description=_("problem"), boolean=True)
    def has_problem(self, order: Order) -> bool:
        return bool(order.problem)

    @admin.display(description=_("refund"))
    def refund_link(self, order: Order) -> str:
        if not order.credited or order.refunded_amount >= order.amount:
            return "-"
        url = reverse("admin:billing_order_refund", args=[order.pk])
        return format_html(
            '<a class="button" href="{}">{}</a>', url, _("Refund through Stripe")
        )

    @admin.display(description=_("ledger rows"))
    def ledger(self, order: Order) -> str:
        rows = order.ledger_rows.order_by("pk")
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.created_at,
                    row.get_type_display(),
                    f"{row.amount:+,d}",
                    row.description,
                )
                for row in rows
            ),
        )
        return format_html("<table>{}</table>", body)

    @admin.action(description=_("Check the payment with Stripe again"))
    def check_with_stripe(self, request: HttpRequest, queryset: QuerySet) -> None:
        for order in queryset.exclude(provider_id=None).order_by("pk"):
            try:
                services.sync_payment(payment_intent_id=order.provider_id)
            except BillingError as error:
                self.message_user(
                    request, f"{order.reference}: {error.message}", messages.ERROR
                )
        self.message_user(request, _("Checked with Stripe."), messages.SUCCESS)

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="billing_order_refund",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm("billing.change_order"):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("user"), pk=object_id)
        remaining = order.amount - order.refunded_amount
        form = RefundForm(request.POST or None, initial={"amount": remaining})
        if request.method == "POST" and form.is_valid():
            try:
                order = services.refund_order(
                    order_id=order.pk, amount=form.cleaned_data["amount"]
                )
            except ServiceError as error:
                form.add_error("amount", str(error.message))
            else:
                self.message_user(
                    request,
                    _("Refunded; the order is now %(status)s.")
                    % {"status": order.get_status_display()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:billing_order_change", args=[order.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "order": order,
            "remaining": format_price(remaining, order.currency),
            "form": form,
            "title": _("Refund an order"),
        }
        return TemplateResponse(request, "admin/billing/order/refund.html", context)


@admin.register(MoneyBack)
class MoneyBackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "order", "kind", "amount", "points")
    list_filter = ("kind", "order__currency")
    list_select_related = ("order",)
    search_fields = ("order__reference", "order__user__email")
    ordering = ("-created_at", "-pk")
    date_hierarchy = "created_at"


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "type", "event_id", "processed_at", "error")
    list_filter = ("type", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "type")
    ordering = ("-received_at", "-pk")
    actions = ("process_again",)

    @admin.action(description=_("Process again"))
    def process_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        for event in queryset.filter(processed_at=None).order_by("pk"):
            try:
                events.process_event(event)
            except BillingError as error:
                self.message_user(
                    request, f"{event.event_id}: {error.message}", messages.ERROR
                )


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "points",
        "uses",
        "max_uses",
        "expires_at",
        "disabled_at",
        "note",
        "created_at",
    )
    list_filter = (("disabled_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("note", "last_characters")
    ordering = ("-created_at", "-pk")
    actions = ("disable",)
    change_list_template = "admin/billing/redemptioncode/change_list.html"

    @admin.action(description=_("Disable the selected codes"))
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        disabled = codes.disable_codes(
            code_ids=list(queryset.values_list("pk", flat=True))
        )
        self.message_user(
            request,
            ngettext("Disabled %d code.", "Disabled %d codes.", disabled) % disabled,
            messages.SUCCESS,
        )

    def get_urls(self) -> list:
        return [
            path(
                "generate/",
                self.admin_site.admin_view(self.generate_view),
                name="billing_redemptioncode_generate",
            ),
            *super().get_urls(),
        ]

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        """Make codes and answer with them as a CSV file: the one time they show."""
        if not request.user.has_perm("billing.add_redemptioncode"):
            raise PermissionDenied
        form = CodeBatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            expires_at = codes.end_of_day(data["expires"]) if data["expires"] else None
            made = codes.create_codes(
                points=data["points"],
                count=data["count"],
                uses=data["uses"],
                expires_at=expires_at,
                note=data["note"],
                created_by=request.user,
            )
            return codes_csv(
                made,
                points=data["points"],
                uses=data["uses"],
                valid_through=data["expires"].isoformat() if data["expires"] else "",
                note=data["note"],
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": _("Generate redemption codes"),
        }
        return TemplateResponse(
            request, "admin/billing/redemptioncode/generate.html", context
        )


def codes_csv(
    made: list[str], *, points: int, uses: int, valid_through: str, note: str
) -> HttpResponse:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="codes-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
    writer = csv.writer(response)
    writer.writerow(["code", "points", "uses", "valid_through", "note"])
    writer.writerows([code, points, uses, valid_through, note] for code in made)
    return response


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "code", "transaction")
    list_select_related = ("user", "code", "transaction")
    search_fields = ("user__email", "code__note")
    ordering = ("-created_at", "-pk")


@admin.register(OwedAccount)
class OwedAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("email", "owed", "balance", "held", "last_updated")
    list_select_related = ("user",)
    search_fields = ("user__email",)
    ordering = ("-owed",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(owed__gt=0)

    @admin.display(description=_("email"), ordering="user__email")
    def email(self, account: OwedAccount) -> str:
        return account.user.email
