"""Wrong redemption codes, counted per user and per client address.

Each wrong code is counted in both callers' windows (`common.throttles`: one
atomic step per window on Redis). A caller whose window is over its rate
(REDEMPTION_GUESS_RATES) is locked out until that window closes: every code it
sends then is refused before it is looked up, right or wrong. Only wrong codes
count; expired, used-up or disabled codes are real ones. If the store is down,
codes are let through and the error logged, as the API's throttles do.
"""

import logging
import math
import time
from dataclasses import replace

from django.conf import settings
from django.core.cache import cache

from common.throttles import STORE_ERRORS, ConfiguredRateThrottle, count_in_windows

logger = logging.getLogger(__name__)


class WrongCodeThrottle(ConfiguredRateThrottle):
    """The wrong-code rate of one caller: a user (`user`) or an address (`address`)."""

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.scope = f"redeem_{kind}"
        self.ident = ident
        super().__init__()

    def get_rate(self) -> str | None:
        return settings.REDEMPTION_GUESS_RATES.get(self.kind) or None

    def get_cache_key(self, request: object, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    @property
    def lockout_key(self) -> str:
        return f"{self.get_cache_key(None, None)}:locked"


def _throttles(user_id: int, address: str) -> list[WrongCodeThrottle]:
    return [WrongCodeThrottle("user", user_id), WrongCodeThrottle("address", address)]


def lockout_wait(*, user_id: int, address: str) -> float | None:
    """Return the seconds the caller must wait before trying a code, or None."""
    keys = [throttle.lockout_key for throttle in _throttles(user_id, address)]
    try:
        deadlines = cache.get_many(keys).values()
    except STORE_ERRORS:
        logger.exception("Throttle store unavailable; code not throttled.")
        return None
    wait = max((deadline - time.time() for deadline in deadlines), default=0.0)
    return wait if wait > 0 else None


def count_wrong_code(*, user_id: int, address: str) -> None:
    """Count a wrong code against the user and the address; lock out who is over."""
    for throttle in _throttles(user_id, address):
        window = throttle.window(None)
        if window is None:
            continue
        # Locked out once the limit is reached, so no more than `limit` wrong
        # codes a window are ever looked up.
        wait = count_in_windows([replace(window, limit=window.limit - 1)])
        if wait is None:
            continue
        try:
            cache.set(throttle.lockout_key, time.time() + wait, math.ceil(wait))
        except STORE_ERRORS:
            logger.exception("Throttle store unavailable; lockout not recorded.")
