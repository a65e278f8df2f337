"""Settings for bench/api.py: the app's own, with a bare view next to the API.

The cache's keys get the prefix in BENCH_CACHE_KEY_PREFIX, so that the bench's
throttle history stays apart from anything else on the same Redis.
"""

import os

from eora.settings import *  # noqa: F403
from eora.settings import CACHES

ROOT_URLCONF = "bench.api_urls"
CACHES["default"]["KEY_PREFIX"] = os.environ.get("BENCH_CACHE_KEY_PREFIX", "")
