"""Who is calling an API view: the session (with CSRF enforced) for now."""

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext_lazy as _

from eora.http import NotAuthenticated, PermissionDenied


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"
    default_message = _("CSRF verification failed. Send the X-CSRFToken header.")


def _enforce_csrf(request: HttpRequest) -> None:
    def no_view(request: HttpRequest) -> None:
        return None

    check = CsrfViewMiddleware(no_view)
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:
        raise CsrfFailed()


async def authenticate(request: HttpRequest) -> AbstractBaseUser:
    """Return the signed-in user of a session, enforcing CSRF, or raise 401."""
    user = await request.auser()
    if not user.is_authenticated:
        raise NotAuthenticated()
    _enforce_csrf(request)
    return user
