"""The error envelope of every DRF view: {"success": false, "error", "code"}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from eora.errors import ServiceError
from eora.http import PayloadTooLarge, error_body

DRF_CODES = {
    exceptions.ParseError: "invalid_request",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_credentials",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        message = _first_message(value)
        return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer every API error as {"success": false, "error", "code", ...}."""
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, ServiceError):
        return Response(error_body(exc), status=exc.status_code, headers=exc.headers())
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next(
        (code for kind, code in DRF_CODES.items() if isinstance(exc, kind)), "error"
    )
    if isinstance(exc, exceptions.PermissionDenied) and str(exc.detail).startswith(
        "CSRF"
    ):
        code = "csrf_failed"
    body: dict[str, Any] = {
        "success": False,
        "error": _first_message(exc.detail),
        "code": code,
    }
    if isinstance(exc, exceptions.ValidationError):
        body["errors"] = exc.detail
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        body["retry_after"] = int(exc.wait + 0.999)
    response.data = body
    return response
