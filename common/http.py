"""The JSON error envelope shared by every API: {"success": false, "error", "code"}."""

import json
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from common.errors import ServiceError


class InvalidRequest(ServiceError):
    code = "invalid_request"
    default_message = _("The request body is not valid.")


class NotAuthenticated(ServiceError):
    code = "not_authenticated"
    status_code = 401
    default_message = _("Authentication credentials were not provided or are invalid.")


class PermissionDenied(ServiceError):
    code = "permission_denied"
    status_code = 403
    default_message = _("You do not have permission to perform this action.")


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status_code = 413
    default_message = _("The request body is too large.")


class Throttled(ServiceError):
    code = "throttled"
    status_code = 429
    default_message = _("Too many requests. Please slow down.")

    def __init__(self, *, wait: float) -> None:
        self.retry_after = max(1, int(wait + 0.999))
        super().__init__()

    def details(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def parse_json(raw: bytes, *, encoding: str | None = None) -> Any:
    """Return the JSON value of a request body, or raise InvalidRequest saying why.

    Besides malformed text this refuses what Python's parser turns into other
    errors: nesting deeper than the recursion limit (RecursionError), integers
    past the int-string conversion limit of 4,300 digits (ValueError), and NaN
    or Infinity, which JSON does not have. Without an encoding, json detects it.
    """
    try:
        text = raw.decode(encoding) if encoding else raw
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise InvalidRequest(_("The request body is nested too deeply.")) from error
    except ValueError as error:  # Also UnicodeDecodeError and JSONDecodeError.
        raise InvalidRequest(_("The request body is not valid JSON.")) from error


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number.")


def json_object(request: HttpRequest) -> dict[str, Any]:
    """Return the request's JSON object body, or raise InvalidRequest saying why."""
    from django.core.exceptions import RequestDataTooBig

    try:
        raw = request.body
    except RequestDataTooBig as error:
        raise PayloadTooLarge() from error
    body = parse_json(raw or b"{}")
    if not isinstance(body, dict):
        raise InvalidRequest(_("The request body must be a JSON object."))
    return body
