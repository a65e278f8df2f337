"""ASGI entry point, served by uvicorn in production."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eora.settings")

django_application = get_asgi_application()

from common.body_limit import BodyLimit  # noqa: E402

application = BodyLimit(django_application)

# Load the token encodings before the first request, not during it.
from points.tokens import warm_up  # noqa: E402

warm_up()
