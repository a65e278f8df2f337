from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

MINIMUM_RATE = Decimal("0.0001")
# A discount below 100%: every turn costs at least a point.
MAX_DISCOUNT_BPS = 9_999


class Tier(models.Model):
    """A membership tier: a discount on turns (and a purchase bonus), by staff."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    discount_bps = models.PositiveIntegerField(
        _("discount (basis points)"),
        default=0,
        validators=[MaxValueValidator(MAX_DISCOUNT_BPS)],
        help_text=_("100 basis points are 1%, taken off each turn's list cost."),
    )
    purchase_bonus_bps = models.PositiveIntegerField(
        _("purchase bonus (basis points)"), default=0
    )
    purchase_threshold = models.BigIntegerField(
        _("purchase threshold"),
        null=True,
        blank=True,
        help_text=_(
            "Total of paid orders (minor units) that gives this tier automatically;"
            " empty: set by staff only."
        ),
    )
    order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["order", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(discount_bps__lte=MAX_DISCOUNT_BPS),
                name="points_tier_discount_below_whole",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def discount_percent(self) -> str:
        """Return the discount in percent, as written: "10", "10.5"."""
        text = f"{Decimal(self.discount_bps) / 100:f}"
        return text.rstrip("0").rstrip(".") if "." in text else text


class Account(models.Model):
    """One user's points. Changed only by `points.services`, under a row lock."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="points_account",
        verbose_name=_("user"),
    )
    balance = models.BigIntegerField(_("balance"), default=0)
    held = models.BigIntegerField(_("held"), default=0)
    total_earned = models.BigIntegerField(_("total earned"), default=0)
    total_spent = models.BigIntegerField(_("total spent"), default=0)
    version = models.BigIntegerField(_("version"), default=0)
    owed = models.BigIntegerField(
        _("owed"),
        default=0,
        help_text=_(
            "Points taken back by a refund or dispute that had already been spent; "
            "the next points the account receives repay them first."
        ),
    )
    # The daily free points: a part of `balance` (and of `held`), topped up once a
    # day; `free_day` is the service's local date of the last top-up.
    free_balance = models.BigIntegerField(_("free points"), default=0)
    free_held = models.BigIntegerField(_("free points held"), default=0)
    free_day = models.DateField(_("free points day"), null=True, blank=True)
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("tier"),
    )
    tier_ends_at = models.DateTimeField(_("tier ends at"), null=True, blank=True)
    # The user's own limits on points spent by chat turns (TIME_ZONE's days and
    # months); None for no limit.
    daily_limit = models.BigIntegerField(_("daily limit"), null=True, blank=True)
    monthly_limit = models.BigIntegerField(_("monthly limit"), null=True, blank=True)
    # The user's alert threshold: once per crossing below it (set under the
    # ledger lock by a debit, cleared by a credit back to it) `alert` is set.
    alert_below = models.BigIntegerField(_("alert below"), null=True, blank=True)
    alert = models.BooleanField(_("low points alert"), default=False)
    last_updated = models.DateTimeField(_("last updated"), default=timezone.now)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("points account")
        verbose_name_plural = _("points accounts")
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="points_account_balance_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(held__gte=0) & Q(held__lte=F("balance")),
                name="points_account_held_within_balance",
            ),
            models.CheckConstraint(
                condition=Q(total_earned__gte=0) & Q(total_spent__gte=0),
                name="points_account_totals_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(version__gte=0), name="points_account_version_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(owed__gte=0), name="points_account_owed_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(free_held__gte=0)
                & Q(free_held__lte=F("free_balance"))
                & Q(free_held__lte=F("held"))
                & Q(free_balance__lte=F("balance"))
                & Q(held__lte=F("balance") - F("free_balance") + F("free_held")),
                name="points_account_free_within_balance",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.balance})"

    @property
    def available(self) -> int:
        """Return the points that can be spent now: the balance less open holds."""
        return self.balance - self.held

    @property
    def free_available(self) -> int:
        """Return the free points that can be spent now."""
        return self.free_balance - self.free_held

    @property
    def paid_available(self) -> int:
        """Return the paid points that can be spent now."""
        return self.available - self.free_available

    def tier_active_at(self, now: object) -> bool:
        return self.tier_id is not None and (
            self.tier_ends_at is None or self.tier_ends_at > now
        )


class TierChange(models.Model):
    """An append-only record of each tier set on an account by staff."""

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="tier_changes"
    )
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, blank=True)
    reason = models.TextField(_("reason"))
    # None for an automatic change (purchases reached a tier's threshold).
    by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")

    def __str__(self) -> str:
        return f"{self.account_id} -> {self.tier_id}"


class TransactionType(models.TextChoices):
    SIGNUP_BONUS = "signup_bonus", _("Sign-up bonus")
    TOP_UP = "top_up", _("Top-up")
    REFUND = "refund", _("Refund")
    CHAT_USAGE = "chat_usage", _("Chat usage")
    ADMIN_ADJUSTMENT = "admin_adjustment", _("Adjustment")
    BONUS = "bonus", _("Bonus")
    REDEMPTION = "redemption", _("Redemption code")
    TOP_UP_REVERSAL = "top_up_reversal", _("Top-up taken back")
    BONUS_REVERSAL = "bonus_reversal", _("Bonus taken back")
    PAYMENT_REINSTATED = "payment_reinstated", _("Payment reinstated")
    DEBT_REPAYMENT = "debt_repayment", _("Owed points repaid")
    DAILY_FREE = "daily_free", _("Daily free points")
    FREE_EXPIRY = "free_expiry", _("Free points expired")


class Transaction(models.Model):
    """One append-only ledger row; the database rejects UPDATE and DELETE on it."""

    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="transactions",
        verbose_name=_("account"),
    )
    type = models.CharField(_("type"), max_length=32, choices=TransactionType.choices)
    amount = models.BigIntegerField(_("amount"))
    free_amount = models.BigIntegerField(
        _("free amount"),
        default=0,
        help_text=_("The part of the amount that moved the free points."),
    )
    tier = models.CharField(
        _("tier"),
        max_length=32,
        blank=True,
        default="",
        help_text=_("Code of the tier whose discount the turn was held at."),
    )
    list_cost = models.BigIntegerField(
        _("list cost"),
        null=True,
        blank=True,
        help_text=_("A turn's cost before its tier discount."),
    )
    discount = models.BigIntegerField(
        _("discount"), default=0, help_text=_("Points taken off the list cost.")
    )
    balance_after = models.BigIntegerField(_("balance after"))
    version = models.BigIntegerField(_("version"))
    description = models.CharField(_("description"), max_length=255, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True)
    total_tokens = models.PositiveIntegerField(_("total tokens"), null=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    prompt_rate = models.DecimalField(
        _("prompt rate"), max_digits=12, decimal_places=4, null=True
    )
    completion_rate = models.DecimalField(
        _("completion rate"), max_digits=12, decimal_places=4, null=True
    )
    uncharged_points = models.BigIntegerField(
        _("uncharged points"),
        default=0,
        help_text=_("Cost above the hold that could not be charged."),
    )
    hold = models.OneToOneField(
        "Hold",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="capture_transaction",
        verbose_name=_("hold"),
    )
    # NULL, not "", for "no key": the unique constraint only covers real keys.
    idempotency_key = models.CharField(  # noqa: DJ001
        _("idempotency key"), max_length=255, null=True, blank=True
    )
    request_hash = models.CharField(_("request hash"), max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    reason = models.TextField(_("reason"), blank=True)
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API key"),
        help_text=_("The key that made the request this row paid for."),
    )
    order = models.ForeignKey(
        "billing.Order",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_rows",
        verbose_name=_("order"),
        help_text=_("The order whose payment, refund or dispute this row records."),
    )
    # Not a foreign key: deleting a conversation leaves the ledger as it was.
    conversation_id = models.UUIDField(
        _("conversation"),
        null=True,
        blank=True,
        help_text=_("The conversation whose turn this row paid for."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="points_transaction_amount_non_zero"
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0),
                name="points_transaction_balance_after_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(version__gte=1), name="points_transaction_version_positive"
            ),
            models.UniqueConstraint(
                fields=["account", "version"], name="points_transaction_unique_version"
            ),
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="points_transaction_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "type", "-version"],
                name="points_tx_account_type_idx",
            ),
            models.Index(
                fields=["account", "-created_at"], name="points_tx_account_created_idx"
            ),
            # The history filtered by model or by API key, newest first.
            models.Index(
                fields=["account", "model", "-version"],
                name="points_tx_account_model_idx",
            ),
            models.Index(
                fields=["account", "api_key", "-version"],
                name="points_tx_account_key_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.amount:+d} -> {self.balance_after}"


class HoldStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CAPTURED = "captured", _("Captured")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class Hold(models.Model):
    """Points reserved for a request in flight. It ends exactly once."""

    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="holds",
        verbose_name=_("account"),
    )
    amount = models.BigIntegerField(_("amount"))
    free_amount = models.BigIntegerField(
        _("free amount"),
        default=0,
        help_text=_("The part of the amount reserved from free points."),
    )
    discount_bps = models.PositiveIntegerField(
        _("discount (basis points)"),
        default=0,
        help_text=_("The tier discount in force when the hold was placed."),
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API key"),
        help_text=_("The key whose request placed the hold."),
    )
    captured_amount = models.BigIntegerField(_("captured amount"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=HoldStatus.choices, default=HoldStatus.OPEN
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    # NULL, not "", for "no key": the unique constraint only covers real keys.
    idempotency_key = models.CharField(  # noqa: DJ001
        _("idempotency key"), max_length=255, null=True, blank=True
    )
    request_hash = models.CharField(_("request hash"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="points_hold_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(free_amount__gte=0) & Q(free_amount__lte=F("amount")),
                name="points_hold_free_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(captured_amount__gte=0)
                & Q(captured_amount__lte=F("amount")),
                name="points_hold_captured_within_amount",
            ),
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="points_hold_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="open"),
                name="points_hold_open_expiry_idx",
            ),
            models.Index(
                fields=["account", "status"], name="points_hold_account_status_idx"
            ),
            # An account's open holds, which every turn's lock statement looks
            # through for an overdue one: a busy account has thousands of ended
            # holds, and without it the lock read them all, turn after turn.
            models.Index(
                fields=["account", "expires_at"],
                condition=Q(status="open"),
                name="points_hold_open_account_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} ({self.get_status_display()})"


class IdempotencyRecord(models.Model):
    """What a keyed service call did, so that a retry gets the same answer.

    A success points at the row it made; a refusal for lack of points keeps the
    figures it was refused with, so that the retry is refused the same way.
    """

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, null=True, related_name="+"
    )
    hold = models.ForeignKey(
        Hold, on_delete=models.PROTECT, null=True, related_name="+"
    )
    refused_available = models.BigIntegerField(null=True)
    refused_required = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "key"], name="points_idempotency_unique_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"


class ModelRate(models.Model):
    """Points per token for one model; models without a row use POINTS_PER_TOKEN."""

    model = models.CharField(_("model"), max_length=100, unique=True)
    prompt_rate = models.DecimalField(
        _("points per prompt token"),
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(MINIMUM_RATE)],
    )
    completion_rate = models.DecimalField(
        _("points per completion token"),
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(MINIMUM_RATE)],
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("model rate")
        verbose_name_plural = _("model rates")
        constraints = [
            models.CheckConstraint(
                condition=Q(prompt_rate__gt=0) & Q(completion_rate__gt=0),
                name="points_model_rate_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.prompt_rate} / {self.completion_rate}"


class LedgerSums(models.Model):
    """What a roll-up keeps of the ledger rows it sums (`points.rollup.SUMS`)."""

    rows = models.BigIntegerField(default=0)
    amount = models.BigIntegerField(default=0)
    free_amount = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    list_cost = models.BigIntegerField(default=0)
    discount = models.BigIntegerField(default=0)
    uncharged_points = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageDay(LedgerSums):
    """The ledger rows of one account and day, summed: the usage pages' source.

    Kept by a database trigger on every ledger insert, in the same transaction as
    the row (`points.rollup`), rebuilt by `manage.py usage_rollup --rebuild` and
    checked against the ledger by `points_audit`. `day` is TIME_ZONE's date;
    `key_id` is the API key's id, 0 for the web pages (or no key).
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    type = models.CharField(max_length=32, choices=TransactionType.choices)
    model = models.CharField(max_length=100, blank=True)
    key_id = models.BigIntegerField(default=0)
    tier = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "type", "model", "key_id", "tier"],
                name="points_usageday_unique_group",
            ),
        ]
        indexes = [
            models.Index(fields=["day", "account"], name="points_usageday_day_idx"),
            # The dashboard's per-account sums over a period, from the index alone
            # on PostgreSQL (other databases ignore `include`).
            models.Index(
                fields=["type", "day"],
                include=[
                    "account",
                    "amount",
                    "rows",
                    "prompt_tokens",
                    "completion_tokens",
                    "model",
                ],
                name="points_usageday_type_day_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.type} {self.model}"


# Rows of all accounts for one day are spread over this many UsageTotal rows
# (by account id), so that concurrent turns of different accounts seldom wait
# for the same row.
USAGE_TOTAL_SHARDS = 8


class UsageTotal(LedgerSums):
    """The ledger rows of all accounts for one day, summed: the dashboard's source.

    Kept with `UsageDay` by the same trigger; `shard` is the account id modulo
    `USAGE_TOTAL_SHARDS`: readers sum over it.
    """

    day = models.DateField()
    type = models.CharField(max_length=32, choices=TransactionType.choices)
    model = models.CharField(max_length=100, blank=True)
    tier = models.CharField(max_length=32, blank=True)
    shard = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "type", "model", "tier", "shard"],
                name="points_usagetotal_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.type} {self.model} #{self.shard}"


class RefusalReason(models.TextChoices):
    INSUFFICIENT_POINTS = "insufficient_points", _("Insufficient points")
    SPENDING_LIMIT = "spending_limit", _("Spending limit")
    KEY_LIMIT = "key_limit", _("API key limit")


class RefusalDay(models.Model):
    """Turns refused with 402 for one account, day (TIME_ZONE) and reason."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    reason = models.CharField(max_length=32, choices=RefusalReason.choices)
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "reason"],
                name="points_refusalday_unique_group",
            ),
        ]
        indexes = [
            models.Index(fields=["day", "reason"], name="points_refusalday_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.reason} x{self.count}"


class ConversationDay(models.Model):
    """The ledger rows of one conversation and day (TIME_ZONE), summed.

    Kept by the roll-up trigger from rows that carry a `conversation_id` (chat
    turns saved in a conversation), like `UsageDay`; the usage page's costliest
    conversations read it. The conversation may since have been deleted.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    conversation_id = models.UUIDField()
    rows = models.BigIntegerField(default=0)
    amount = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "conversation_id"],
                name="points_conversationday_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.conversation_id}"


class ChatDay(models.Model):
    """The chat turns (`chat_usage` rows) of one account and day (TIME_ZONE), summed.

    `UsageDay` splits a day by type, model, key and tier (about four rows an
    active account-day); the dashboard's per-account figures (active users, top
    users) read this one row instead. Kept by the same trigger.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    rows = models.BigIntegerField(default=0)
    amount = models.BigIntegerField(default=0)
    free_amount = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day"], name="points_chatday_unique_group"
            ),
        ]
        indexes = [
            # Per-day counts and per-account sums over a period, from the index
            # alone on PostgreSQL (other databases ignore `include`).
            models.Index(
                fields=["day"],
                include=[
                    "account",
                    "amount",
                    "rows",
                    "prompt_tokens",
                    "completion_tokens",
                ],
                name="points_chatday_day_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day}"
