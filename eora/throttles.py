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
    """A fixed-window request counter, rate from API_THROTTLE_RATES when used.

    DRF's own throttle reads a history from the cache and writes it back, so
    processes that race overshoot the rate. Here each request is one atomic
    `incr` of the window's counter (atomic on Redis; the database cache, the
    fallback without REDIS_URL, is only approximately exact under races).

    If the cache is down the request is let through (and logged): an outage of
    the rate limiter must not take the API down with it.
    """

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        self.rate = self.get_rate()
        self.wait_seconds = 0.0
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        now = self.timer()
        # The window opens with the caller's first request and lasts `duration`.
        try:
            if self.cache.add(f"{ident}:start", now, timeout=self.duration):
                started = now
            else:
                started = self.cache.get(f"{ident}:start", now)
            self.cache.add(f"{ident}:count", 0, timeout=self.duration)
            try:
                count = self.cache.incr(f"{ident}:count")
            except ValueError:
                # The window closed between add and incr: this request opens one.
                self.cache.add(f"{ident}:count", 1, timeout=self.duration)
                count = 1
        except Exception:
            logger.exception("Throttle cache unavailable; request not throttled.")
            return True
        self.wait_seconds = max(1.0, started + self.duration - now)
        return count <= self.num_requests

    def wait(self) -> float:
        return self.wait_seconds


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
