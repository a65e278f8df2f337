"""Throttles shared by every API, counted in a cache all workers see.

Kept apart from `eora.api`: DRF reads these classes while it defines `APIView`,
so this module must not import `rest_framework.views`.
"""

import logging
from typing import Any

from django.conf import settings
from rest_framework import throttling

from accounts.models import ApiKey

logger = logging.getLogger(__name__)


class ConfiguredRateThrottle(throttling.SimpleRateThrottle):
    """A throttle whose rate is read from API_THROTTLE_RATES when it is used.

    If the shared cache is down the request is let through (and logged): an
    outage of the rate limiter must not take the API down with it.
    """

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.exception("Throttle cache unavailable; request not throttled.")
            return True


class UserRateThrottle(ConfiguredRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return self.cache_format % {
                "scope": self.scope,
                "ident": self.get_ident(request),
            }
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ApiKeyRateThrottle(ConfiguredRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        key = getattr(request, "auth", None)
        if not isinstance(key, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
