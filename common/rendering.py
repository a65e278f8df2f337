"""Every shape an error takes on the way out, in one place.

Views raise `ServiceError`s (and DRF raises its own); these functions render
them: the `/api` JSON envelope, OpenAI's error object for `/v1`, the SSE `error`
event of a stream, and the message shown on a page.
"""

import json
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.utils.html import format_html
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import ServiceError
from common.http import PayloadTooLarge

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
# OpenAI's SDKs tell a bad key by this code.
OPENAI_CODES = {
    "not_authenticated": "invalid_api_key",
    "invalid_credentials": "invalid_api_key",
}
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


# The /api envelope ---------------------------------------------------------------


def error_body(error: ServiceError) -> dict[str, Any]:
    """Return `{"success": false, "error", "code", ...details}`."""
    return {
        "success": False,
        "error": str(error.message),
        "code": error.code,
        **error.details(),
    }


def error_response(error: ServiceError) -> JsonResponse:
    return JsonResponse(
        error_body(error), status=error.status_code, headers=error.headers()
    )


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        message = _first_message(value)
        return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer every error of a DRF view in the /api envelope (DRF's hook)."""
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


# OpenAI's error object, for /v1 ----------------------------------------------------


def openai_error_body(error: ServiceError) -> dict[str, Any]:
    """Return `{"error": {"message", "type", "code", "param", ...details}}`."""
    return {
        "error": {
            "message": str(error.message),
            "type": OPENAI_ERROR_TYPES.get(error.status_code, "api_error"),
            "code": OPENAI_CODES.get(error.code, error.code),
            "param": getattr(error, "param", None),
            **error.details(),
        }
    }


def openai_error_response(error: ServiceError) -> JsonResponse:
    """Answer in OpenAI's shape, so that OpenAI SDKs raise their usual errors."""
    return JsonResponse(
        openai_error_body(error), status=error.status_code, headers=error.headers()
    )


def openai_error_chunk(error: ServiceError) -> bytes:
    """Return the `data:` line that ends an OpenAI-style stream with an error."""
    return (
        f"data: {json.dumps(openai_error_body(error), ensure_ascii=False)}\n\n".encode()
    )


# Server-sent events and pages ------------------------------------------------------


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def sse_error(error: ServiceError) -> bytes:
    """Return the `error` event of a stream: the same fields as the JSON error."""
    return sse_event("error", error_body(error))


def page_message(error: ServiceError) -> str:
    """Return the error as a page shows it: its message, and where to go next."""
    link = error.page_link()
    if link is None:
        return str(error.message)
    url, label = link
    return format_html('{} <a href="{}">{}</a>', error.message, url, label)
