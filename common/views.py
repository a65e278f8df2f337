"""404 and 500 pages that answer API paths in the API's own error shape."""

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from common.errors import ServiceError
from common.rendering import error_response, openai_error_response


class ApiNotFound(ServiceError):
    code = "not_found"
    status_code = 404
    default_message = _("Not found.")


class ServerError(ServiceError):
    code = "server_error"
    status_code = 500
    default_message = _("Something went wrong on our side. Please try again.")


# Also routed to for unknown /api/ and /v1/ URLs, so that DEBUG answers alike; like
# an unresolved URL it changes nothing and needs no CSRF check.
@csrf_exempt
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Answer an unknown URL: JSON under /api/ and /v1/, the 404 page elsewhere."""
    error = ApiNotFound()
    if request.path.startswith("/v1/"):
        return openai_error_response(error)
    if request.path.startswith("/api/"):
        return error_response(error)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    error = ServerError()
    if request.path.startswith("/v1/"):
        return openai_error_response(error)
    if request.path.startswith("/api/"):
        return error_response(error)
    return defaults.server_error(request)
