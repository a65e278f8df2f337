"""Settings for the test suite: the real settings with a throwaway key."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-key")
os.environ.setdefault("EORA_DATA_DIR", "/tmp/eora-test-data")

from eora.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

STATIC_ROOT = DATA_DIR / "static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# One process: a local cache keeps the throttles' state out of the query counts.
# (The throttle test across processes points REDIS_URL at Redis explicitly.)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
WHITENOISE_USE_FINDERS = True

# The concurrency tests run more threads, each with its own connection, than a
# production worker's pool allows.
_pool = DATABASES["default"].get("OPTIONS", {}).get("pool")  # noqa: F405
if isinstance(_pool, dict):
    _pool["max_size"] = 40
