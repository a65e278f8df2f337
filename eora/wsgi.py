"""WSGI entry point, for servers that do not speak ASGI (no streaming there)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eora.settings")

application = get_wsgi_application()
