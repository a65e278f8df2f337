from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from points.limits import LimitPeriod
from points.services import open_account


def normalize_email(email: str) -> str:
    """Return the form in which an email address is stored: trimmed, lower case."""
    return email.strip().lower()


def save_with_account(user: "User") -> "User":
    """Save a new user with its points account and sign-up bonus, all or nothing."""
    with transaction.atomic():
        user.email = normalize_email(user.email)
        user.save()
        open_account(user=user)
    return user


class UserManager(BaseUserManager["User"]):
    """Create users through `accounts.services`, so each gets its points account."""

    use_in_migrations = True

    def create_user(
        self, email: str, password: str | None = None, **extra_fields: object
    ) -> "User":
        """Create a user and, in the same transaction, its points account."""
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        user = self.model(email=email, **extra_fields)
        user.set_password(password)
        return save_with_account(user)

    def create_superuser(
        self, email: str, password: str | None = None, **extra_fields: object
    ) -> "User":
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self.create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("email address"), unique=True)
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(
                Lower("email"), name="accounts_user_email_case_insensitive_unique"
            )
        ]

    def __str__(self) -> str:
        return self.email


class ApiKey(models.Model):
    """A personal API key. Only a hash is stored; the key is shown once."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(_("key hash"), max_length=64)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    points_limit = models.BigIntegerField(
        _("points limit"),
        null=True,
        blank=True,
        help_text=_("The most points chat turns through this key may spend a period."),
    )
    limit_period = models.CharField(
        _("limit period"),
        max_length=16,
        choices=LimitPeriod.choices,
        default=LimitPeriod.NONE,
    )

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        indexes = [
            models.Index(
                fields=["user", "-created_at"], name="accounts_apikey_user_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
