"""The work a /v1 turn does before the model is asked: statements, session, CSRF."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from accounts.api_auth import MISSING_KEY_MESSAGE
from accounts.models import User
from tests.v1.conftest import DEMO_MODEL, KeyHolder

# One streamed turn whose API key and model rate an earlier turn read in the same
# second: reserve (3), settle (4) and the test transaction's savepoints (5); the
# key carries its user's account id, so the account is not read before the lock.
# The key and the rate read again made it 16, the account read 14.
STREAMED_TURN_STATEMENTS = 13


def streamed_turn(secret: str, **headers: str) -> tuple[bytes, object]:
    """Return the body of one streamed /v1 turn and the request Django saw."""

    async def scenario() -> tuple[bytes, object]:
        response = await AsyncClient().post(
            "/v1/chat/completions",
            json.dumps(
                {
                    "model": DEMO_MODEL,
                    "messages": [{"role": "user", "content": "hello"}],
                    "stream": True,
                }
            ),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}", **headers},
        )
        body = b"".join([chunk async for chunk in response.streaming_content])
        return body, response

    return async_to_sync(scenario)()


def test_streamed_turn_runs_a_fixed_number_of_statements(
    key_holder: KeyHolder,
) -> None:
    streamed_turn(key_holder.secret)

    with CaptureQueriesContext(connection) as queries:
        body, _response = streamed_turn(key_holder.secret)

    assert body.endswith(b"data: [DONE]\n\n")
    assert len(queries) == STREAMED_TURN_STATEMENTS


def test_v1_neither_reads_nor_sets_a_session(key_holder: KeyHolder, user: User) -> None:
    # given a browser signed in, whose cookies reach /v1 along with the key
    client = Client()
    client.force_login(user)
    cookies = "; ".join(
        f"{name}={morsel.value}" for name, morsel in client.cookies.items()
    )
    streamed_turn(key_holder.secret)

    # when it asks /v1
    with CaptureQueriesContext(connection) as queries:
        body, response = streamed_turn(key_holder.secret, Cookie=cookies)

    # then the session is neither loaded nor saved, no cookie is set, and the
    # request had no session, CSRF token or messages
    assert body.endswith(b"data: [DONE]\n\n")
    assert not [query for query in queries if "django_session" in query["sql"]]
    assert not response.cookies
    request = response.asgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert "CSRF_COOKIE" not in request.META


def test_pages_keep_session_csrf_and_messages(user: User) -> None:
    client = Client()
    client.force_login(user)

    response = client.get(reverse("chat:index"))

    assert response.status_code == 200
    request = response.wsgi_request
    assert request.session.get("_auth_user_id") == str(user.pk)
    assert request.user == user
    assert hasattr(request, "_messages")
    assert "CSRF_COOKIE" in request.META


def test_page_form_without_csrf_token_is_refused(user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(reverse("chat:send"), {"message": "hello"})

    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize("language", ["en", "ko"])
def test_v1_answers_in_the_language_the_client_asks_for(language: str) -> None:
    async def scenario() -> HttpResponseBase:
        return await AsyncClient().get(
            "/v1/models", headers={"Accept-Language": language}
        )

    response = async_to_sync(scenario)()

    assert response.status_code == 401
    assert response["Content-Language"] == language
    with translation.override(language):
        assert response.json()["error"]["message"] == str(MISSING_KEY_MESSAGE)
