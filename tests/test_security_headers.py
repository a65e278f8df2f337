"""Content-Security-Policy, Permissions-Policy, no-store, and pages that obey them."""

import json
from html.parser import HTMLParser

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client

from accounts.api_keys import create_api_key
from accounts.models import User
from common.middleware import AnonymousBodyLimitMiddleware, SecurityHeadersMiddleware

EXECUTED_SCRIPT_TYPES = {"", "text/javascript", "module"}


def directives(policy: str) -> dict[str, list[str]]:
    """Return a Content-Security-Policy's directives and their sources."""
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


class PageAudit(HTMLParser):
    """Collect what a CSP restricts: inline scripts, handlers, styles, assets."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_script_nonces: list[str | None] = []
        self.inline_styles: list[str] = []
        self.handlers: list[str] = []
        self.style_attributes: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [name for name, _value in attrs if name.startswith("on")]
        self.style_attributes += [name for name, _value in attrs if name == "style"]
        if tag == "script" and attributes.get("src"):
            self.assets.append(attributes["src"] or "")
        elif tag == "script":
            if (attributes.get("type") or "").lower() in EXECUTED_SCRIPT_TYPES:
                self.inline_script_nonces.append(attributes.get("nonce"))
        elif tag == "style":
            self.inline_styles.append(tag)
        elif tag == "link" and attributes.get("rel") in {"stylesheet", "icon"}:
            self.assets.append(attributes.get("href") or "")


def audit(html: str) -> PageAudit:
    page = PageAudit()
    page.feed(html)
    return page


def policy_nonce(policy: str) -> str:
    (source,) = [
        source
        for source in directives(policy)["script-src"]
        if source.startswith("'nonce-")
    ]
    return source.removeprefix("'nonce-").removesuffix("'")


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def key_client(user: User) -> Client:
    _key, secret = create_api_key(user=user, name="headers")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_page_has_strict_content_security_policy(client: Client, db: None) -> None:
    response = client.get("/accounts/login/")

    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_page_has_permissions_policy(client: Client, db: None) -> None:
    policy = client.get("/accounts/login/")["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=(self)"):
        assert feature in policy


def test_each_response_gets_its_own_nonce(client: Client, db: None) -> None:
    first = client.get("/accounts/login/")["Content-Security-Policy"]
    second = client.get("/accounts/login/")["Content-Security-Policy"]
    assert policy_nonce(first) != policy_nonce(second)


@pytest.mark.parametrize(
    "path",
    ["/chat/", "/chat/new/", "/points/", "/settings/api-keys/", "/accounts/login/"],
)
def test_pages_run_no_inline_script_without_the_nonce(
    signed_in: Client, path: str
) -> None:
    if path == "/accounts/login/":
        signed_in.logout()
    response = signed_in.get(path)

    page = audit(response.content.decode())
    nonce = policy_nonce(response["Content-Security-Policy"])
    assert response.status_code == 200
    assert page.inline_script_nonces
    assert page.inline_script_nonces == [nonce] * len(page.inline_script_nonces)
    assert page.handlers == []
    assert page.style_attributes == []
    assert page.inline_styles == []
    assert all(asset.startswith("/static/") for asset in page.assets)


def test_chat_page_loads_its_script_and_data_from_its_own_origin(
    signed_in: Client,
) -> None:
    response = signed_in.get("/chat/new/")
    html = response.content.decode()

    assert '<script id="chat-i18n" type="application/json">' in html
    assert any(asset.endswith(".js") for asset in audit(html).assets)


def test_api_docs_page_gets_a_policy_that_lets_swagger_ui_run(
    client: Client, db: None
) -> None:
    response = client.get("/api/docs/")
    page = audit(response.content.decode())
    policy = directives(response["Content-Security-Policy"])

    # Its start-up script is inline and holds the CSRF token: no hash can match.
    assert page.inline_script_nonces == [None]
    assert "'unsafe-inline'" in policy["script-src"]
    assert "'unsafe-inline'" in policy["style-src"]
    # swagger-ui.css draws its icons from data: URLs.
    assert "data:" in policy["img-src"]
    assert policy["object-src"] == ["'none'"]
    # Every file it loads is ours, and there.
    assert len(page.assets) == 4
    for asset in page.assets:
        assert asset.startswith("/static/")
        assert client.get(asset).status_code == 200


def test_api_docs_policy_stays_on_the_docs(client: Client, db: None) -> None:
    policy = directives(client.get("/api/schema/")["Content-Security-Policy"])
    assert "'unsafe-inline'" not in policy["script-src"]


@pytest.mark.parametrize("path", ["/api/user/points", "/v1/models"])
def test_api_answers_are_not_stored(key_client: Client, path: str) -> None:
    response = key_client.get(path)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "camera=()" in response["Permissions-Policy"]
    assert "default-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/api/user/points", "/v1/models", "/api/nope"])
def test_api_errors_are_not_stored_either(client: Client, db: None, path: str) -> None:
    assert client.get(path)["Cache-Control"] == "no-store"


def test_pages_keep_their_own_caching(signed_in: Client) -> None:
    assert signed_in.get("/points/").get("Cache-Control") != "no-store"


def test_streamed_chat_answer_is_not_stored(user: User, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    _key, secret = create_api_key(user=user, name="stream")

    async def stream() -> tuple[str, str]:
        response = await AsyncClient().post(
            "/api/chat",
            json.dumps({"message": "hi", "stream": True}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}"},
        )
        # Read to the end, so that the turn settles before the loop closes.
        _events = [event async for event in response.streaming_content]
        return response["Content-Type"], response["Cache-Control"]

    assert async_to_sync(stream)() == ("text/event-stream", "no-store")


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@pytest.mark.parametrize(
    "middleware", [SecurityHeadersMiddleware, AnonymousBodyLimitMiddleware]
)
def test_new_middleware_stays_on_the_event_loop_under_asgi(
    middleware: type,
) -> None:
    assert iscoroutinefunction(middleware(async_view))


def test_deploy_checks_see_our_security_middleware(settings) -> None:
    # Django's checks look for its own middleware by name; ours subclass it.
    from django.core.checks import run_checks

    from common.checks import subclassed_middleware_checks

    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_COOKIE_SECURE = False

    shown = {
        message.id
        for message in run_checks(include_deployment_checks=True)
        if message.id not in settings.SILENCED_SYSTEM_CHECKS
    }
    ours = {message.id for message in subclassed_middleware_checks(None)}

    assert {"security.W004", "security.W008", "security.W016"} <= shown
    # The middleware is found: no "not installed" warning from our checks.
    assert not {"security.W001", "security.W002", "security.W003"} & ours
