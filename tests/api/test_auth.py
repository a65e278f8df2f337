import json

import pytest
from django.test import Client
from rest_framework import exceptions
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key, revoke_api_key
from accounts.models import ApiKey
from common.views import ApiNotFound
from points.models import Transaction, TransactionType


def test_no_credentials_is_401_with_envelope(client: Client) -> None:
    response = client.get("/api/user/points")
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": str(exceptions.NotAuthenticated.default_detail),
        "code": "not_authenticated",
    }


def test_seed_user_email_cookie_authenticates_no_one(client: Client, user) -> None:
    client.cookies["user_email"] = user.email
    assert client.get("/api/user/points").status_code == 401
    response = client.post(
        "/api/chat", json.dumps({"message": "hi"}), content_type="application/json"
    )
    assert response.status_code == 401


def test_valid_key_authenticates_and_records_last_use(api: APIClient, user) -> None:
    assert api.get("/api/user/points").status_code == 200
    assert ApiKey.objects.get(user=user).last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer eora_aaaaaaaaaaaa_" + "x" * 43,
        "Bearer nonsense",
        "Bearer ",
        "Token abc",
        "Basic dXNlcjpwdw==",
    ],
)
def test_unknown_or_malformed_key_is_401(user, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/user/points")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_revoked_key_is_401(api: APIClient, user) -> None:
    revoke_api_key(user=user, key_id=ApiKey.objects.get(user=user).pk)
    response = api.get("/api/user/points")
    assert (response.status_code, response.json()["code"]) == (
        401,
        "invalid_credentials",
    )


def test_key_with_right_prefix_but_wrong_secret_is_401(user) -> None:
    key, secret = create_api_key(user=user, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + secret[:-4] + "AAAA")
    assert client.get("/api/user/points").status_code == 401


def test_key_is_stored_only_as_hash(user) -> None:
    key, secret = create_api_key(user=user, name="k")
    assert secret not in {key.key_hash, key.prefix}
    assert secret.startswith(f"eora_{key.prefix}_")


def test_session_get_works_without_csrf(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/user/points").status_code == 200


def test_session_post_without_csrf_is_403(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        "/api/keys", json.dumps({"name": "x"}), content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert not ApiKey.objects.exists()


def test_session_post_with_csrf_is_accepted(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/chat/new/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/keys",
        json.dumps({"name": "x"}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 201


def test_api_key_chat_needs_no_csrf(api: APIClient, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    response = api.post("/api/chat", {"message": "hi"}, format="json")
    assert response.status_code == 200


def test_chat_with_bad_key_is_401(user) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")
    response = client.post("/api/chat", {"message": "hi"}, format="json")
    assert (response.status_code, response.json()["code"]) == (
        401,
        "invalid_credentials",
    )


def test_throttled_request_is_429_with_retry_after(api: APIClient, settings) -> None:
    settings.API_THROTTLE_RATES = {"user": "2/min", "api_key": "100/min"}
    assert api.get("/api/user/points").status_code == 200
    assert api.get("/api/user/points").status_code == 200

    response = api.get("/api/user/points")

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["code"] == "throttled"


def test_chat_is_throttled_per_key(api: APIClient, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    settings.API_THROTTLE_RATES = {"user": "100/min", "api_key": "1/min"}
    assert api.post("/api/chat", {"message": "hi"}, format="json").status_code == 200
    response = api.post("/api/chat", {"message": "hi"}, format="json")
    assert response.status_code == 429
    assert "Retry-After" in response


def test_requests_pass_when_throttle_cache_is_down(api: APIClient, settings) -> None:
    # Nothing listens on port 1: the cache is unreachable.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert api.get("/api/user/points").status_code == 200


def test_api_chat_ledger_row_records_the_key(api: APIClient, user, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    api.post("/api/chat", {"message": "hi"}, format="json")
    row = Transaction.objects.get(account__user=user, type=TransactionType.CHAT_USAGE)
    assert row.api_key == ApiKey.objects.get(user=user)


UNKNOWN_API_PATHS = ["/api/nope", "/api/keys/not-a-number", "/api/chat/", "/api/"]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("path", UNKNOWN_API_PATHS)
def test_unknown_api_path_is_json_404(
    api: APIClient, settings, debug: bool, path: str
) -> None:
    settings.DEBUG = debug

    response = api.get(path)

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": str(ApiNotFound.default_message),
        "code": ApiNotFound.code,
    }


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_path_is_json_404_for_writes_without_csrf(
    user, settings, method: str
) -> None:
    # A session without its CSRF token: an unknown URL changes nothing to protect.
    settings.DEBUG = True
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = getattr(client, method)("/api/nope")

    assert response.status_code == 404
    assert response.json()["code"] == ApiNotFound.code


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_unknown_v1_path_is_openai_shaped_404(
    api: APIClient, settings, debug: bool
) -> None:
    settings.DEBUG = debug

    response = api.get("/v1/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == ApiNotFound.code
    assert response.json()["error"]["message"] == str(ApiNotFound.default_message)


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_unknown_page_is_html_404(client, settings, debug: bool) -> None:
    settings.DEBUG = debug
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_oversized_body_is_413(api: APIClient, user, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = {"name": "x" * 2000}
    session = APIClient()
    session.force_login(user)
    # Keys are managed with a session; chat takes the API key.
    for client, path in ((session, "/api/keys"), (api, "/api/chat")):
        response = client.post(path, body, format="json")
        assert response.status_code == 413, path
        assert response.json()["code"] == "payload_too_large"
