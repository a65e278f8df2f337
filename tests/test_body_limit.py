"""Oversized bodies are refused under ASGI before a byte of them is read."""

import json

import pytest
from asgiref.sync import async_to_sync

from common.http import PayloadTooLarge
from eora.asgi import application


def call(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the body was read")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8300),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    async_to_sync(application)(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


def test_anonymous_large_api_body_is_refused_unread(settings) -> None:
    length = str(settings.ANONYMOUS_MAX_BODY_BYTES + 1).encode()

    status, body = call("/api/chat", [(b"content-length", length)])

    assert status == 413
    assert json.loads(body)["code"] == PayloadTooLarge.code


def test_anonymous_large_form_body_is_refused_unread(settings) -> None:
    length = str(settings.ANONYMOUS_MAX_BODY_BYTES + 1).encode()

    status, body = call("/accounts/login/", [(b"content-length", length)])

    assert status == 413
    assert body.decode() == str(PayloadTooLarge.default_message)


@pytest.mark.parametrize(
    "credential",
    [(b"authorization", b"Bearer x"), (b"cookie", b"sessionid=abc")],
)
def test_body_over_the_api_limit_is_refused_even_with_credentials(
    settings, credential: tuple[bytes, bytes]
) -> None:
    length = str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1).encode()

    status, _body = call(
        "/v1/chat/completions", [(b"content-length", length), credential]
    )

    assert status == 413


def test_signed_webhook_may_send_more_than_an_anonymous_body(settings) -> None:
    # Stripe's events prove their sender by signature; the app checks it.
    length = str(settings.ANONYMOUS_MAX_BODY_BYTES + 1).encode()
    received: list[dict] = []

    async def app(scope: dict, receive, send) -> None:
        received.append(scope)

    from common.body_limit import BodyLimit

    scope = {
        "type": "http",
        "path": "/webhooks/stripe/",
        "headers": [(b"content-length", length)],
    }
    async_to_sync(BodyLimit(app))(scope, None, None)

    assert received == [scope]
