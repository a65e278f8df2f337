import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from chat.models import Conversation, Message
from points.models import Transaction, TransactionType


def chat(api: APIClient, message: str, session_id: str | None = None) -> dict:
    return api.post(
        "/api/chat", {"message": message, "session_id": session_id}, format="json"
    ).json()


@pytest.fixture
def session(user) -> APIClient:
    """Creating and revoking keys needs a signed-in session, not an API key."""
    client = APIClient()
    client.force_login(user)
    return client


def test_create_key_shows_secret_once(session: APIClient, api: APIClient, user) -> None:
    created = session.post("/api/keys", {"name": "laptop"}, format="json")
    listed = api.get("/api/keys").json()

    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("eora_")
    assert [key["name"] for key in listed["keys"]] == ["laptop", "test"]
    assert "secret" not in json.dumps(listed)


def test_create_key_rejects_bad_name(session: APIClient) -> None:
    for payload in ({}, {"name": ""}, {"name": "x" * 101}, {"name": None}):
        response = session.post("/api/keys", payload, format="json")
        assert response.status_code == 400, payload


def test_revoke_key(session: APIClient, user) -> None:
    key, _secret = create_api_key(user=user, name="old")
    response = session.delete(f"/api/keys/{key.pk}")
    assert response.status_code == 200
    assert response.json()["key"]["active"] is False


def test_cannot_revoke_anothers_key(session: APIClient, make_user) -> None:
    theirs, _secret = create_api_key(user=make_user(), name="theirs")
    response = session.delete(f"/api/keys/{theirs.pk}")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_conversations_list_and_read(api: APIClient, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    session_id = chat(api, "hello")["session_id"]
    chat(api, "again", session_id)

    listed = api.get("/api/conversations").json()
    read = api.get(f"/api/conversations/{session_id}").json()

    assert [c["id"] for c in listed["conversations"]] == [session_id]
    assert [m["role"] for m in read["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    answer = read["messages"][1]
    assert (
        answer["points_charged"]
        == Message.objects.filter(role="assistant").first().points_charged
    )
    assert answer["prompt_tokens"] > 0


def test_conversations_page_with_cursor(api: APIClient, user) -> None:
    for index in range(3):
        Conversation.objects.create(owner=user, title=f"c{index}")
    first = api.get("/api/conversations", {"limit": 2}).json()
    second = api.get(
        "/api/conversations", {"limit": 2, "before": first["next_cursor"]}
    ).json()
    assert len(first["conversations"]) == 2
    assert [c["title"] for c in second["conversations"]] == ["c0"]
    assert second["next_cursor"] is None


def test_delete_conversation_keeps_ledger_rows(api: APIClient, user, settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    session_id = chat(api, "hello")["session_id"]

    response = api.delete(f"/api/conversations/{session_id}")

    assert response.status_code == 200
    assert not Conversation.objects.filter(pk=session_id).exists()
    assert (
        Transaction.objects.filter(
            account__user=user, type=TransactionType.CHAT_USAGE
        ).count()
        == 1
    )


def test_another_users_conversation_is_404_for_read_and_delete(
    api: APIClient, make_user
) -> None:
    theirs = Conversation.objects.create(owner=make_user(), title="private")
    assert api.get(f"/api/conversations/{theirs.pk}").status_code == 404
    assert api.delete(f"/api/conversations/{theirs.pk}").status_code == 404
    assert api.get("/api/conversations/not-a-uuid").status_code == 404
    assert Conversation.objects.filter(pk=theirs.pk).exists()


def test_conversation_list_query_count(
    api: APIClient, user, django_assert_num_queries
) -> None:
    for index in range(5):
        Conversation.objects.create(owner=user, title=f"c{index}")
    with django_assert_num_queries(3):
        api.get("/api/conversations")


def test_keys_page_creates_and_revokes(client: Client, user) -> None:
    client.force_login(user)
    created = client.post("/settings/api-keys/", {"name": "cli"})
    secret = created.context["new_secret"]
    key = ApiKey.objects.get(user=user)
    assert secret in created.content.decode()
    assert client.get("/settings/api-keys/").content.decode().count(secret) == 0

    client.post("/settings/api-keys/", {"revoke": str(key.pk)})

    key.refresh_from_db()
    assert key.revoked_at is not None


def test_schema_and_docs_are_served(client: Client, db: None) -> None:
    schema = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    assert "/api/chat" in schema.content.decode()
    assert client.get("/api/docs/").status_code == 200
