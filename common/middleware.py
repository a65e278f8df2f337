"""The project's middleware: static files, the language, security headers, limits."""

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware import clickjacking, csrf
from django.middleware import common as common_middleware
from django.middleware import security as security_middleware
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from whitenoise.middleware import WhiteNoiseMiddleware

from common.body_limit import SIGNED_PREFIXES
from common.http import PayloadTooLarge
from common.rendering import error_response

API_PREFIXES = ("/api/", "/v1/")
# The OpenAI-compatible gateway: API keys only, never a session.
GATEWAY_PREFIX = "/v1/"
API_DOCS_VIEW_NAME = "api-docs"


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files without forcing every request through a thread.

    Django runs a sync-only middleware under ASGI by hopping to a thread and
    back, for every request. Looking a path up in WhiteNoise's table is a
    dictionary read, so this subclass also runs on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


class LanguageMiddleware(LocaleMiddleware):
    """Korean unless the user chose English.

    Pages follow the language chosen in the header menu (Django's language
    cookie), else the default, Korean: a browser's Accept-Language is not a
    choice. API clients choose with Accept-Language, as HTTP intends; but a call
    that our pages make (session-authenticated, or carrying the language cookie,
    and no Authorization header) answers in the pages' language, so that the
    page and its error messages agree.
    """

    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(API_PREFIXES) and not from_our_pages(request):
            language = translation.get_language_from_request(request)
        else:
            chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
            supported = {code for code, _name in settings.LANGUAGES}
            language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path_info.startswith(GATEWAY_PREFIX):
            # The choice may read the session from the database: in a thread.
            return await super().__acall__(request)
        # The gateway has no session: its language is read where the request is.
        self.process_request(request)
        response = await self.get_response(request)
        return self.process_response(request, response)


def from_our_pages(request: HttpRequest) -> bool:
    """Return whether an API call comes from our pages rather than an API client."""
    if "Authorization" in request.headers:
        return False
    if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return True
    session = getattr(request, "session", None)
    # The session is the server's record (SessionMiddleware runs first), not a
    # value the client writes.
    return session is not None and session.get(SESSION_KEY) is not None


GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


class NonBlockingMiddleware:
    """A middleware whose own work never blocks, so it also runs on the event loop.

    Django's MiddlewareMixin runs `process_request` and `process_response` in a
    thread under ASGI; these only read headers and write headers, so they run
    where the request is: answering early from `process_request` skips the rest.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.is_async:
            return self.__acall__(request)
        response = self.process_request(request) or self.get_response(request)
        return self.process_response(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) or await self.get_response(request)
        return self.process_response(request, response)

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        return response


class SecurityHeadersMiddleware(NonBlockingMiddleware):
    """Content-Security-Policy and Permissions-Policy everywhere; no-store on APIs.

    An inline script runs only with this request's nonce, `request.csp_nonce`
    (`{nonce}` in the policy). The Swagger UI page of drf-spectacular runs an
    inline script that carries the CSRF token, so it gets its own policy.
    """

    def process_request(self, request: HttpRequest) -> None:
        request.csp_nonce = secrets.token_urlsafe(16)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        policy = content_security_policy(request)
        if policy:
            response.headers.setdefault("Content-Security-Policy", policy)
        permissions = settings.PERMISSIONS_POLICY
        if permissions:
            response.headers.setdefault("Permissions-Policy", permissions)
        if request.path.startswith(API_PREFIXES):
            # Every API answer holds balances, keys or conversations; no-store
            # is stricter than the no-cache of event streams and suits them too.
            response.headers["Cache-Control"] = "no-store"
        return response


def content_security_policy(request: HttpRequest) -> str:
    """Return the request's Content-Security-Policy, its nonce filled in."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name == API_DOCS_VIEW_NAME:
        return settings.API_DOCS_CONTENT_SECURITY_POLICY
    nonce = getattr(request, "csp_nonce", "")
    return settings.CONTENT_SECURITY_POLICY.replace("{nonce}", nonce)


class AnonymousBodyLimitMiddleware(NonBlockingMiddleware):
    """Answer 413 to a large body sent with no session cookie and no credentials.

    It goes before every middleware that reads the body (CSRF reads forms), so
    under WSGI the body is refused unread. Under ASGI Django has spooled the body
    to a temporary file before any middleware runs: the reverse proxy's limit
    is what stops it there (see the README). Anyone can send a cookie, so this
    only turns away the cheapest abuse; DATA_UPLOAD_MAX_MEMORY_SIZE still applies.
    """

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        if "Authorization" in request.headers:
            return None
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            return None
        if request.path.startswith(SIGNED_PREFIXES):
            return None
        if content_length(request) <= settings.ANONYMOUS_MAX_BODY_BYTES:
            return None
        error = PayloadTooLarge()
        if request.path.startswith(API_PREFIXES):
            return error_response(error)
        return HttpResponse(
            str(error.message),
            status=error.status_code,
            content_type="text/plain; charset=utf-8",
        )


def content_length(request: HttpRequest) -> int:
    """Return the request's declared Content-Length; 0 if missing or malformed."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


# Session, CSRF, session user and messages, except on the gateway ----------------


class SkippedOnGateway:
    """Run a Django middleware on every request except the gateway's (/v1/).

    /v1 takes an API key and nothing else: a session, its user, a CSRF check
    and messages would only cost it a thread hop each way and a session lookup.
    A subclass of the Django class it wraps, so that Django's checks find it.
    """

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        view_hook = getattr(super(), "process_view", None)
        if view_hook is not None and iscoroutinefunction(self):
            # Django would run a plain hook in a thread, /v1 included.
            self.process_view = self._process_view_on_the_loop(view_hook)

    def __call__(self, request: HttpRequest) -> Any:
        if request.path_info.startswith(GATEWAY_PREFIX):
            return self.get_response(request)  # type: ignore[attr-defined]
        return super().__call__(request)  # type: ignore[misc]

    def _process_view_on_the_loop(
        self, view_hook: Callable[..., HttpResponseBase | None]
    ) -> Callable[..., Awaitable[HttpResponseBase | None]]:
        in_thread = sync_to_async(view_hook, thread_sensitive=True)

        async def process_view(
            request: HttpRequest, *args: object
        ) -> HttpResponseBase | None:
            if request.path_info.startswith(GATEWAY_PREFIX):
                return None
            return await in_thread(request, *args)

        return process_view


class SessionMiddleware(SkippedOnGateway, sessions.SessionMiddleware):
    pass


class CsrfViewMiddleware(SkippedOnGateway, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(SkippedOnGateway, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(SkippedOnGateway, messages.MessageMiddleware):
    pass


# Django's header-only middleware, on the event loop ------------------------------


class HooksOnTheLoop:
    """Run a Django middleware's hooks where the request is, not in a thread.

    Under ASGI, Django's MiddlewareMixin runs `process_request` and
    `process_response` through the one thread a worker keeps for sync code: two
    hops each, shared with every request's database work. The middleware this
    wraps only read the request and write response headers (no I/O), so they run
    on the event loop. A subclass of the Django class it wraps.
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)  # type: ignore[attr-defined]
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(HooksOnTheLoop, security_middleware.SecurityMiddleware):
    pass


class CommonMiddleware(HooksOnTheLoop, common_middleware.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(HooksOnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass
