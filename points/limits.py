"""Spending-limit periods in the service's time zone (TIME_ZONE, Asia/Seoul)."""

from datetime import date, datetime, time, timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LimitPeriod(models.TextChoices):
    NONE = "none", _("No reset")
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")
    MONTHLY = "monthly", _("Monthly")


def day_start(day: date) -> datetime:
    """Return 00:00 of `day` in TIME_ZONE: where the service's days begin."""
    return timezone.make_aware(
        datetime.combine(day, time.min), timezone.get_default_timezone()
    )


def period_bounds(
    period: str, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Return the start and the end (the reset) of the period holding `now`.

    Days start at 00:00, weeks on Monday, months on the 1st, all in TIME_ZONE;
    a period of `none` never starts or resets: (None, None).
    """
    today = timezone.localdate(now)
    if period == LimitPeriod.DAILY:
        return day_start(today), day_start(today + timedelta(days=1))
    if period == LimitPeriod.WEEKLY:
        monday = today - timedelta(days=today.weekday())
        return day_start(monday), day_start(monday + timedelta(days=7))
    if period == LimitPeriod.MONTHLY:
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return day_start(first), day_start(following)
    return None, None
