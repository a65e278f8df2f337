"""Who is calling a plain (non-DRF) API view, with the same rules as DRF's:
a Bearer API key, or the session with CSRF enforced; then the throttles."""

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions

from accounts.authentication import INVALID_KEY_MESSAGE, user_for_bearer
from common.http import NotAuthenticated, PermissionDenied, Throttled
from common.throttles import throttle_wait

MISSING_KEY_MESSAGE = _("Send your EORA API key as `Authorization: Bearer <key>`.")


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"
    default_message = _("CSRF verification failed. Send the X-CSRFToken header.")


class InvalidApiKey(NotAuthenticated):
    code = "invalid_credentials"
    default_message = INVALID_KEY_MESSAGE


def _enforce_csrf(request: HttpRequest) -> None:
    def no_view(request: HttpRequest) -> None:
        return None

    check = CsrfViewMiddleware(no_view)
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:
        raise CsrfFailed()


def check_throttles(request: HttpRequest) -> None:
    wait = throttle_wait(request)
    if wait is not None:
        raise Throttled(wait=wait)


def authenticate(request: HttpRequest, *, session: bool = True) -> AbstractBaseUser:
    """Return the calling user, or raise 401/403/429 as a `ServiceError`.

    With `session=False` only an API key is accepted. It reads the database and
    the throttle store: an async view calls it in the same `sync_to_async` as
    the rest of its blocking work, so that a request crosses to a thread once.
    """
    authorization = request.headers.get("Authorization", "")
    if not authorization and not session:
        raise NotAuthenticated(MISSING_KEY_MESSAGE)
    if authorization:
        try:
            user, key = user_for_bearer(authorization)
        except exceptions.AuthenticationFailed as error:
            raise InvalidApiKey() from error
        request.user, request.auth = user, key
    else:
        user = request.user
        if not user.is_authenticated:
            raise NotAuthenticated()
        _enforce_csrf(request)
        request.auth = None
    check_throttles(request)
    return user
