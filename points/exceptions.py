"""The ledger's errors. Each carries a stable code, an HTTP status and its data."""

from datetime import datetime

from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from common.errors import ServiceError

INSUFFICIENT_POINTS_MESSAGE = _("Not enough points. Please top up your points.")


class PointsError(ServiceError):
    code = "points_error"
    default_message = _("The points request could not be completed.")


class InvalidAmount(PointsError):
    code = "invalid_amount"
    default_message = _("The amount must be a whole number of points.")


class InvalidArgument(PointsError):
    code = "invalid_argument"


class InsufficientPoints(PointsError):
    code = "insufficient_points"
    status_code = 402
    default_message = INSUFFICIENT_POINTS_MESSAGE

    def __init__(
        self, *, available: int, required: int, replayed: bool = False
    ) -> None:
        self.available = available
        self.required = required
        # True when a repeated idempotency key repeats an earlier refusal.
        self.replayed = replayed
        super().__init__()

    def page_link(self) -> tuple[str, str] | None:
        return reverse("billing:top-up"), str(_("Top up points"))

    def details(self) -> dict[str, object]:
        return {
            "current_points": self.available,
            "available": self.available,
            "required": self.required,
        }


SPENDING_LIMIT_MESSAGE = _(
    "This turn would pass your spending limit. It resets at %(resets_at)s."
)


class SpendingLimitReached(PointsError):
    code = "spending_limit_reached"
    status_code = 402

    def __init__(self, *, limit: int, spent: int, resets_at: datetime | None) -> None:
        self.limit = limit
        self.spent = spent
        self.resets_at = resets_at
        super().__init__(
            SPENDING_LIMIT_MESSAGE
            % {
                "resets_at": (
                    date_format(localtime(resets_at), "DATETIME_FORMAT")
                    if resets_at
                    else "-"
                )
            }
        )

    def page_link(self) -> tuple[str, str] | None:
        return reverse("points:limits"), str(_("Change my limits"))

    def details(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "spent": self.spent,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }


class IdempotencyConflict(PointsError):
    code = "idempotency_conflict"
    status_code = 409
    default_message = _(
        "This idempotency key was already used for a different request."
    )


class HoldNotOpen(PointsError):
    code = "hold_not_open"
    status_code = 409
    default_message = _("The hold has already ended.")

    def __init__(self, *, status: str) -> None:
        self.status = status
        super().__init__()

    def details(self) -> dict[str, object]:
        return {"hold_status": self.status}


class HoldExpired(HoldNotOpen):
    code = "hold_expired"
    default_message = _("The hold has expired.")
