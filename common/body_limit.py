"""Refuse an oversized request body from its headers, before any of it is read.

Under ASGI, Django reads the whole body into a temporary file before the first
middleware runs, so `AnonymousBodyLimitMiddleware` can only refuse what was
already received. This wrapper sits in front of Django: a declared
Content-Length above what any request of ours may send (`API_MAX_BODY_BYTES`),
or above `ANONYMOUS_MAX_BODY_BYTES` without a session cookie or credentials, is
answered 413 at once and the body is never read. A chunked body without a
Content-Length is left to Django's own limit and to the reverse proxy's.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.utils import translation

from common.http import PayloadTooLarge
from common.rendering import error_body

API_PREFIXES = ("/api/", "/v1/")
# Webhooks prove who sent them by a signature in the body, not by a session.
SIGNED_PREFIXES = ("/webhooks/",)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def body_too_large(scope: Scope) -> bool:
    """Return whether the request's declared body is over its limit."""
    headers = dict(scope.get("headers") or [])
    try:
        length = int(headers.get(b"content-length", b"0"))
    except ValueError:
        return False
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return True
    if length <= settings.ANONYMOUS_MAX_BODY_BYTES or b"authorization" in headers:
        return False
    if scope.get("path", "").startswith(SIGNED_PREFIXES):
        return False
    session = settings.SESSION_COOKIE_NAME.encode() + b"="
    return session not in headers.get(b"cookie", b"")


class BodyLimit:
    """ASGI middleware that answers 413 to an oversized body, unread."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and body_too_large(scope):
            await self._refuse(scope, send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        with translation.override(settings.LANGUAGE_CODE):
            error = PayloadTooLarge()
            if scope.get("path", "").startswith(API_PREFIXES):
                body = json.dumps(error_body(error), ensure_ascii=False).encode()
                content_type = b"application/json"
            else:
                body = str(error.message).encode()
                content_type = b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
