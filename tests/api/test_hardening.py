"""Bodies that break Python's JSON parser, key management by key, oversized bodies."""

from collections.abc import Iterable

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key, key_for
from accounts.apis import SessionRequired
from accounts.models import ApiKey, User
from common.http import PayloadTooLarge

# RecursionError inside json.loads; ValueError past Python's 4,300-digit limit.
DEEPLY_NESTED = "[" * 100_000
LONG_INTEGER = "1" * 5_000
UNPARSABLE_BODIES = {
    "deeply_nested": DEEPLY_NESTED,
    "long_integer": '{"message": "hi", "max_tokens": ' + LONG_INTEGER + "}",
}
ANONYMOUS_LIMIT = 1024


def post_raw(client: Client, path: str, body: str, **headers: str):
    return client.generic(
        "POST", path, body, content_type="application/json", headers=headers
    )


@pytest.fixture
def key_client(api_key: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_key}"})


@pytest.fixture
def session(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("body", UNPARSABLE_BODIES.values(), ids=UNPARSABLE_BODIES)
def test_chat_api_answers_400_envelope_to_unparsable_json(
    key_client: Client, body: str
) -> None:
    response = post_raw(key_client, "/api/chat", body)

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("body", UNPARSABLE_BODIES.values(), ids=UNPARSABLE_BODIES)
def test_openai_endpoint_answers_400_in_openai_shape_to_unparsable_json(
    key_client: Client, body: str
) -> None:
    response = post_raw(key_client, "/v1/chat/completions", body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [DEEPLY_NESTED, '{"name": ' + LONG_INTEGER + "}", '{"name": NaN}'],
    ids=["deeply_nested", "long_integer", "nan"],
)
def test_drf_views_answer_400_envelope_to_unparsable_json(
    session: APIClient, body: str
) -> None:
    # /api/keys is the DRF view that reads a body; keys are made with a session.
    response = post_raw(session, "/api/keys", body)

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_request"


def test_drf_views_still_parse_valid_json(session: APIClient) -> None:
    response = post_raw(session, "/api/keys", '{"name": "laptop"}')
    assert response.status_code == 201


def test_api_key_cannot_create_keys(api: APIClient, user: User) -> None:
    response = api.post("/api/keys", {"name": "spare"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == SessionRequired.code
    assert response.json()["error"] == str(SessionRequired.default_message)
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["test"]


def test_api_key_cannot_revoke_keys(api: APIClient, api_key: str, user: User) -> None:
    # given a second key of the same user
    other, _secret = create_api_key(user=user, name="other")

    # when the first key tries to revoke it
    response = api.delete(f"/api/keys/{other.pk}")

    # then both keys stay active and the first one still works
    assert response.status_code == 403
    assert response.json()["code"] == SessionRequired.code
    other.refresh_from_db()
    assert other.is_active
    assert key_for(api_key) is not None
    assert api.get("/api/user/points").status_code == 200


def test_api_key_cannot_revoke_itself(api: APIClient, api_key: str) -> None:
    own = key_for(api_key)
    response = api.delete(f"/api/keys/{own.pk}")
    assert response.status_code == 403
    assert key_for(api_key) is not None


def test_api_key_can_still_list_keys(api: APIClient) -> None:
    response = api.get("/api/keys")
    assert response.status_code == 200
    assert [key["name"] for key in response.json()["keys"]] == ["test"]


def test_session_creates_and_revokes_keys(session: APIClient, user: User) -> None:
    created = session.post("/api/keys", {"name": "laptop"}, format="json")
    key_id = created.json()["key"]["id"]
    revoked = session.delete(f"/api/keys/{key_id}")

    assert created.status_code == 201
    assert revoked.status_code == 200
    assert revoked.json()["key"]["active"] is False


def test_session_with_api_key_header_cannot_manage_keys(
    session: APIClient, api_key: str
) -> None:
    # The key authenticates first: a leaked key plus any cookie is still a key.
    session.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = session.post("/api/keys", {"name": "spare"}, format="json")
    assert response.status_code == 403


def test_schema_says_key_management_needs_a_session(client: Client) -> None:
    schema = client.get("/api/schema/?format=json").json()
    create = schema["paths"]["/api/keys"]["post"]
    revoke = schema["paths"]["/api/keys/{key_id}"]["delete"]
    assert "session_required" in create["description"]
    assert "session_required" in revoke["description"]
    assert "session_required" in create["responses"]["403"]["description"]


def big_body(size: int) -> str:
    return '{"message": "' + "x" * size + '"}'


@pytest.fixture
def anonymous_limit(settings) -> int:
    settings.ANONYMOUS_MAX_BODY_BYTES = ANONYMOUS_LIMIT
    return ANONYMOUS_LIMIT


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/api/keys"])
def test_anonymous_large_body_is_refused_with_413_envelope(
    client: Client, anonymous_limit: int, path: str
) -> None:
    response = post_raw(client, path, big_body(anonymous_limit))

    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "error": str(PayloadTooLarge.default_message),
        "code": PayloadTooLarge.code,
    }


def test_anonymous_large_body_is_refused_under_asgi(
    anonymous_limit: int, db: None
) -> None:
    async def post() -> int:
        response = await AsyncClient().post(
            "/api/chat", big_body(anonymous_limit), content_type="application/json"
        )
        return response.status_code

    assert async_to_sync(post)() == 413


def test_anonymous_large_form_is_refused_with_plain_413(
    client: Client, anonymous_limit: int
) -> None:
    response = client.post("/accounts/login/", {"username": "x" * anonymous_limit})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == str(PayloadTooLarge.default_message)


def test_anonymous_small_body_passes(client: Client, anonymous_limit: int) -> None:
    response = post_raw(client, "/api/chat", big_body(10))
    assert response.status_code == 401


def test_large_body_with_api_key_is_not_refused_as_anonymous(
    key_client: Client, anonymous_limit: int, settings
) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    response = post_raw(key_client, "/api/chat", big_body(anonymous_limit))
    assert response.status_code == 200


def test_large_body_with_session_is_not_refused_as_anonymous(
    session: APIClient, anonymous_limit: int
) -> None:
    response = post_raw(session, "/api/keys", '{"name": "' + "x" * 2000 + '"}')
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


class UnreadableBody:
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    readline = read


# The WSGI handler closes the test transaction's connection as the request
# ends; the test moves no points.
@pytest.mark.skip_ledger_audit
def test_anonymous_large_body_is_refused_before_it_is_read(
    anonymous_limit: int, db: None
) -> None:
    # given a WSGI server whose request body fails when read
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/accounts/signup/",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(anonymous_limit + 1),
        "wsgi.url_scheme": "http",
        "wsgi.input": UnreadableBody(),
    }
    statuses: list[str] = []

    # when Django answers the request
    def start_response(status: str, headers: Iterable[tuple[str, str]]) -> None:
        statuses.append(status)

    WSGIHandler()(environ, start_response)

    # then it refuses it without reading a byte
    assert statuses == ["413 Request Entity Too Large"]
