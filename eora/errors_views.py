"""404 and 500 pages that answer API paths in the API's own error shape."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.views import defaults

from eora.errors import ServiceError
from eora.http import error_body


class ApiNotFound(ServiceError):
    code = "not_found"
    status_code = 404


class ServerError(ServiceError):
    code = "server_error"
    status_code = 500


def _openai_body(error: ServiceError, kind: str) -> dict:
    return {
        "error": {
            "message": str(error.message),
            "type": kind,
            "code": error.code,
            "param": None,
        }
    }


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    error = ApiNotFound(_not_found_message())
    if request.path.startswith("/v1/"):
        return JsonResponse(_openai_body(error, "invalid_request_error"), status=404)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(error), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    error = ServerError(_server_error_message())
    if request.path.startswith("/v1/"):
        return JsonResponse(_openai_body(error, "api_error"), status=500)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(error), status=500)
    return defaults.server_error(request)


def _not_found_message() -> str:
    return gettext("Not found.")


def _server_error_message() -> str:
    return gettext("Something went wrong on our side. Please try again.")
