"""What every DRF view shares: strict input and the error envelope.

Errors answer {"success": false, "error", "code"}; input is validated by
serializers that accept exactly what the OpenAPI schema documents.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, QueryDict
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import ServiceError
from common.http import PayloadTooLarge, error_body

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


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A BooleanField that takes JSON's true and false only, not "yes" or 1."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes JSON integers only, not "5", 5.0 or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A FloatField that takes JSON numbers only, not "0.5" or true."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


def first_error(errors: Any) -> tuple[str, str]:
    """Return the first field and message of a serializer's errors."""
    if isinstance(errors, dict):
        field, value = next(iter(errors.items()))
        inner, message = first_error(value)
        if field == "non_field_errors":
            return inner, message
        name = f"[{field}]" if isinstance(field, int) else str(field)
        if not inner:
            return name, message
        return name + (inner if inner.startswith("[") else f".{inner}"), message
    if isinstance(errors, list) and errors:
        if all(isinstance(item, dict) for item in errors):
            for index, item in enumerate(errors):
                if item:
                    inner, message = first_error(item)
                    return f"[{index}]" + (
                        inner if inner.startswith("[") else f".{inner}"
                    ).rstrip("."), message
        return first_error(errors[0])
    return "", str(errors)


class QuerySerializer(serializers.Serializer):
    """Validate query parameters; an empty value is refused, not taken as absent.

    DRF reads a QueryDict as an HTML form, where `since=` means "not sent"; the
    schema says a parameter is either left out or a valid value.
    """

    MULTIPLE_VALUE_FIELDS = (serializers.ListField, serializers.MultipleChoiceField)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, QueryDict):
            data = self._plain(data)
        return super().to_internal_value(data)

    def _plain(self, query: QueryDict) -> Mapping[str, Any]:
        return {
            name: query.getlist(name)
            if isinstance(self.fields.get(name), self.MULTIPLE_VALUE_FIELDS)
            else query[name]
            for name in query
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
