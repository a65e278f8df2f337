from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from points.exceptions import InsufficientPoints, PointsError
from points.forms import AdjustmentForm
from points.models import (
    Account,
    Hold,
    HoldStatus,
    ModelRate,
    Tier,
    TierChange,
    Transaction,
)
from points.services import adjust, set_tier

RECENT_TRANSACTIONS = 20
DEDUCTION_ABOVE_AVAILABLE_MESSAGE = _(
    "This deduction is larger than the account's available points (%(available)s)."
)


class ZeroBalanceFilter(admin.SimpleListFilter):
    title = _("balance")
    parameter_name = "balance"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("zero", _("Zero balance")), ("positive", _("Above zero"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "zero":
            return queryset.filter(balance=0)
        if self.value() == "positive":
            return queryset.filter(balance__gt=0)
        return queryset


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class OpenHoldInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Hold
    verbose_name_plural = _("open holds")
    fields = ("amount", "description", "created_at", "expires_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(status=HoldStatus.OPEN)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "email",
        "balance",
        "held",
        "available_points",
        "owed",
        "total_earned",
        "total_spent",
        "last_updated",
    )
    list_select_related = ("user",)
    search_fields = ("user__email",)
    list_filter = (ZeroBalanceFilter,)
    ordering = ("-last_updated",)
    fields = (
        "user",
        "balance",
        "held",
        "available_points",
        "owed",
        "total_earned",
        "total_spent",
        "version",
        "last_updated",
        "adjust_link",
        "recent_transactions",
    )
    readonly_fields = fields
    inlines = [OpenHoldInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(available_sort=F("balance") - F("held"))
        )

    @admin.display(description=_("email"), ordering="user__email")
    def email(self, account: Account) -> str:
        return account.user.email

    @admin.display(description=_("available"), ordering="available_sort")
    def available_points(self, account: Account) -> int:
        return account.available

    @admin.display(description=_("adjust"))
    def adjust_link(self, account: Account) -> str:
        url = reverse("admin:points_account_adjust", args=[account.pk])
        return format_html(
            '<a class="button" href="{}">{}</a>', url, _("Adjust balance")
        )

    @admin.display(description=_("recent transactions"))
    def recent_transactions(self, account: Account) -> str:
        rows = account.transactions.order_by("-version")[:RECENT_TRANSACTIONS]
        # Numbers are formatted before format_html_join, which escapes every
        # argument into a string (a format spec such as {:+d} would then fail).
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    date_format(localtime(row.created_at), "SHORT_DATETIME_FORMAT"),
                    row.get_type_display(),
                    f"{row.amount:+,d}",
                    f"{row.balance_after:,d}",
                    row.description,
                )
                for row in rows
            ),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("time"),
            _("type"),
            _("amount"),
            _("balance after"),
            _("description"),
        )
        return format_html(
            "<table><thead>{}</thead><tbody>{}</tbody></table>", head, body
        )

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="points_account_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm("points.change_account"):
            raise PermissionDenied
        # Like the admin's own views: a malformed or unknown id is a 404.
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404(_("No such points account."))
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = adjust(
                    account=account,
                    delta=form.cleaned_data["delta"],
                    reason=form.cleaned_data["reason"],
                    by_user=request.user,
                )
            except InsufficientPoints as error:
                form.add_error(
                    "delta",
                    DEDUCTION_ABOVE_AVAILABLE_MESSAGE
                    % {"available": f"{error.available:,}"},
                )
            except PointsError as error:
                form.add_error("delta", str(error.message))
            else:
                self.message_user(
                    request,
                    _("Adjusted by %(delta)+d points; the balance is now %(balance)d.")
                    % {"delta": entry.amount, "balance": entry.balance_after},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:points_account_change", args=[account.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "account": account,
            "form": form,
            "title": _("Adjust the balance of %(email)s")
            % {"email": account.user.email},
        }
        return TemplateResponse(request, "admin/points/account/adjust.html", context)


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "account_email",
        "type",
        "amount",
        "balance_after",
        "total_tokens",
        "model",
        "description",
    )
    list_filter = ("type",)
    list_select_related = ("account__user",)
    search_fields = ("account__user__email", "description")
    ordering = ("-created_at", "-pk")

    # The account's __str__ carries its current balance, which beside each row's
    # own balance_after reads as that row's balance.
    @admin.display(description=_("account"), ordering="account__user__email")
    def account_email(self, entry: Transaction) -> str:
        return entry.account.user.email


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "account_email",
        "amount",
        "captured_amount",
        "status",
        "expires_at",
    )
    list_filter = ("status",)
    list_select_related = ("account__user",)
    search_fields = ("account__user__email",)

    @admin.display(description=_("account"), ordering="account__user__email")
    def account_email(self, hold: Hold) -> str:
        return hold.account.user.email


@admin.register(ModelRate)
class ModelRateAdmin(admin.ModelAdmin):
    list_display = ("model", "prompt_rate", "completion_rate", "updated_at")
    search_fields = ("model",)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "discount_bps", "purchase_bonus_bps", "order")
    ordering = ("order", "code")


@admin.register(TierChange)
class TierChangeAdmin(admin.ModelAdmin):
    """Set an account's tier: each change is a new record, made by `set_tier`."""

    list_display = ("account", "tier", "ends_at", "by_user", "created_at")
    fields = ("account", "tier", "reason", "ends_at")
    raw_id_fields = ("account",)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: TierChange, form: object, change: bool
    ) -> None:
        made = set_tier(
            account=obj.account,
            tier=obj.tier,
            reason=obj.reason,
            by_user=request.user,
            ends_at=obj.ends_at,
        )
        obj.pk, obj.by_user, obj.created_at = made.pk, made.by_user, made.created_at
