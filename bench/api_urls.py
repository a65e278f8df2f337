"""The app's URLs plus /bench/bare, the baseline bench/api.py measures us against."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from eora.urls import urlpatterns as app_urlpatterns


def bare_view(request: HttpRequest) -> JsonResponse:
    """Answer like GET /api/user/points would, without authentication or a query."""
    return JsonResponse({"success": True, "points": 1})


urlpatterns = [path("bench/bare", bare_view, name="bench-bare"), *app_urlpatterns]
