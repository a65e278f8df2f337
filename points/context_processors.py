from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from points.services import account_of, free_points_reset_at


def points_summary(request: HttpRequest) -> dict[str, object]:
    """Give templates the signed-in user's account, read only if a page uses it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "points_account": SimpleLazyObject(lambda: account_of(user=user)),
        "low_balance_points": settings.LOW_BALANCE_POINTS,
        "daily_free_points": settings.DAILY_FREE_POINTS,
        "free_points_reset_at": SimpleLazyObject(free_points_reset_at),
    }
