"""Point packs, orders paid through a payment provider, its events, and codes."""

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from points.models import Account

CURRENCY_VALIDATOR = RegexValidator(
    r"^[a-z]{3}$", _("A currency is a lower-case ISO 4217 code, such as krw.")
)


class PointPack(models.Model):
    """Points for sale at a price in the currency's minor unit (KRW has none)."""

    name = models.CharField(_("name"), max_length=100)
    points = models.BigIntegerField(_("points"), validators=[MinValueValidator(1)])
    bonus_points = models.BigIntegerField(
        _("bonus points"), default=0, validators=[MinValueValidator(0)]
    )
    price = models.BigIntegerField(
        _("price"),
        validators=[MinValueValidator(1)],
        help_text=_("In the currency's minor unit: ₩5,000 is 5000, $5.00 is 500."),
    )
    currency = models.CharField(
        _("currency"), max_length=3, default="krw", validators=[CURRENCY_VALIDATOR]
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    active = models.BooleanField(_("on sale"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("point pack")
        verbose_name_plural = _("point packs")
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0) & Q(bonus_points__gte=0) & Q(price__gt=0),
                name="billing_pack_amounts_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def total_points(self) -> int:
        return self.points + self.bonus_points


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
    REFUNDED = "refunded", _("Refunded")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    DISPUTED = "disputed", _("Disputed")


class DisputeStatus(models.TextChoices):
    NONE = "", _("None")
    OPEN = "open", _("Open")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")


class Provider(models.TextChoices):
    STRIPE = "stripe", "Stripe"


class Order(models.Model):
    """One purchase of a pack, with the figures it was sold at.

    Changed only by `billing.services`, under a row lock taken before the
    account's. `refunded_amount` and `disputed_amount` are the money the provider
    reports taken back; `reversed_points` and `reversed_bonus` the points taken
    back for it so far, of which `points_owed` could not be taken and went onto
    the account's debt.
    """

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="point_orders",
        verbose_name=_("user"),
    )
    pack = models.ForeignKey(
        PointPack,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="orders",
        verbose_name=_("pack"),
    )
    pack_name = models.CharField(_("pack name"), max_length=100)
    points = models.BigIntegerField(_("points"))
    bonus_points = models.BigIntegerField(_("bonus points"), default=0)
    amount = models.BigIntegerField(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    provider = models.CharField(
        _("provider"), max_length=16, choices=Provider.choices, default=Provider.STRIPE
    )
    # NULL until the provider has made its payment: unique only among real ids.
    provider_id = models.CharField(  # noqa: DJ001
        _("provider's id"), max_length=255, null=True, blank=True
    )
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=OrderStatus.choices,
        default=OrderStatus.PENDING,
    )
    refunded_amount = models.BigIntegerField(_("refunded amount"), default=0)
    dispute_id = models.CharField(_("dispute"), max_length=255, blank=True)
    dispute_status = models.CharField(
        _("dispute status"),
        max_length=8,
        choices=DisputeStatus.choices,
        default=DisputeStatus.NONE,
        blank=True,
    )
    disputed_amount = models.BigIntegerField(_("disputed amount"), default=0)
    reversed_points = models.BigIntegerField(_("points taken back"), default=0)
    reversed_bonus = models.BigIntegerField(_("bonus taken back"), default=0)
    points_owed = models.BigIntegerField(
        _("points owed"),
        default=0,
        help_text=_("Points of this order's reversals that had already been spent."),
    )
    receipt_url = models.URLField(_("receipt"), max_length=500, blank=True)
    problem = models.TextField(
        _("problem"),
        blank=True,
        help_text=_("Why the payment was not credited, if it did not match."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0)
                & Q(bonus_points__gte=0)
                & Q(amount__gt=0)
                & Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("amount"))
                & Q(disputed_amount__gte=0)
                & Q(disputed_amount__lte=F("amount")),
                name="billing_order_amounts_in_range",
            ),
            models.CheckConstraint(
                condition=Q(reversed_points__gte=0)
                & Q(reversed_points__lte=F("points"))
                & Q(reversed_bonus__gte=0)
                & Q(reversed_bonus__lte=F("bonus_points"))
                & Q(points_owed__gte=0),
                name="billing_order_reversals_in_range",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_id"],
                condition=Q(provider_id__isnull=False),
                name="billing_order_unique_provider_id",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="billing_order_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.pack_name} ({self.get_status_display()})"

    @property
    def credited(self) -> bool:
        """Return whether the order's points were credited (it was paid once)."""
        return self.paid_at is not None


class MoneyBackKind(models.TextChoices):
    REFUND = "refund", _("Refund")
    DISPUTE = "dispute", _("Dispute")


class MoneyBack(models.Model):
    """A change in the money an order counts as taken back, when it happened.

    An order keeps only its latest refunded and disputed amounts; these rows keep
    each change, so a refund is reported on the day it was made whatever happens
    to the order later. `amount` is the change (a dispute won gives its amount
    back: negative) and `points` the change in points and bonus taken back.
    Written with the order's change, in its transaction.
    """

    order = models.ForeignKey(
        Order,
        on_delete=models.PROTECT,
        related_name="money_back",
        verbose_name=_("order"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=MoneyBackKind.choices)
    amount = models.BigIntegerField(_("amount"))
    points = models.BigIntegerField(_("points taken back"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("money taken back")
        verbose_name_plural = _("money taken back")
        indexes = [
            models.Index(fields=["created_at"], name="billing_moneyback_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+d}"


class ProviderEvent(models.Model):
    """An event the payment provider sent us, stored once by its id."""

    provider = models.CharField(
        _("provider"), max_length=16, choices=Provider.choices, default=Provider.STRIPE
    )
    event_id = models.CharField(_("event id"), max_length=255)
    type = models.CharField(_("type"), max_length=100)
    payload = models.JSONField(_("payload"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("provider event")
        verbose_name_plural = _("provider events")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="billing_event_unique_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class RedemptionCode(models.Model):
    """A code worth points, stored as a hash; shown in full only when made."""

    code_hash = models.CharField(_("code hash"), max_length=64, unique=True)
    last_characters = models.CharField(_("ends with"), max_length=8)
    points = models.BigIntegerField(_("points"))
    max_uses = models.PositiveIntegerField(_("uses per code"), default=1)
    uses = models.PositiveIntegerField(_("times used"), default=0)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("redemption code")
        verbose_name_plural = _("redemption codes")
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0)
                & Q(max_uses__gt=0)
                & Q(uses__gte=0)
                & Q(uses__lte=F("max_uses")),
                name="billing_code_uses_within_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"…{self.last_characters} ({self.points})"


class Redemption(models.Model):
    """One user's use of a code, and the ledger row that credited it."""

    code = models.ForeignKey(
        RedemptionCode,
        on_delete=models.PROTECT,
        related_name="redemptions",
        verbose_name=_("code"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="redemptions",
        verbose_name=_("user"),
    )
    transaction = models.OneToOneField(
        "points.Transaction",
        on_delete=models.PROTECT,
        related_name="redemption",
        verbose_name=_("ledger row"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.UniqueConstraint(
                fields=["code", "user"], name="billing_redemption_once_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.code}"


class OwedAccount(Account):
    """Accounts as the billing admin lists them: those owing points."""

    class Meta:
        proxy = True
        verbose_name = _("account owing points")
        verbose_name_plural = _("accounts owing points")
