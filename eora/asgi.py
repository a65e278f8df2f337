"""ASGI entry point, served by uvicorn in production."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eora.settings")

# What `django.core.asgi.get_asgi_application` does, with our handler.
django.setup(set_prefix=False)

from common.asgi import PooledThreadASGIHandler  # noqa: E402
from common.body_limit import BodyLimit  # noqa: E402

django_application = PooledThreadASGIHandler()

application = BodyLimit(django_application)

# Load the token encodings before the first request, not during it.
from points.tokens import warm_up  # noqa: E402

warm_up()
