"""ASGI entry point, served by uvicorn in production."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eora.settings")

application = get_asgi_application()
