import json

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.apis import KEY_NAME_REQUIRED_MESSAGE
from accounts.models import ApiKey
from chat.models import Conversation, Message
from common.pagination import INVALID_CURSOR_MESSAGE
from points.models import Transaction, TransactionType

# More pages than any test here makes: a cursor that never ends fails the test.
MAX_PAGES = 10


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


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": None},
        {"name": 123},
        {"name": 1.5},
        {"name": True},
        {"name": ["laptop"]},
        # The schema's maxLength counts the spaces that are removed afterwards.
        {"name": "x" * 100 + " "},
    ],
)
def test_create_key_rejects_bad_name(session: APIClient, payload: dict) -> None:
    response = session.post("/api/keys", payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert not ApiKey.objects.exists()


def test_create_key_rejects_name_of_spaces(session: APIClient) -> None:
    response = session.post("/api/keys", {"name": "   "}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["name"] == [str(KEY_NAME_REQUIRED_MESSAGE)]


def test_create_key_strips_spaces_around_the_name(session: APIClient) -> None:
    response = session.post("/api/keys", {"name": "  laptop "}, format="json")

    assert response.status_code == 201
    assert response.json()["key"]["name"] == "laptop"


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


def conversation_pages(api: APIClient, limit: int) -> list[dict]:
    """Return every page of GET /api/conversations, following `next_cursor`."""
    pages = [api.get("/api/conversations", {"limit": limit}).json()]
    while pages[-1]["next_cursor"] is not None and len(pages) < MAX_PAGES:
        query = {"limit": limit, "before": pages[-1]["next_cursor"]}
        pages.append(api.get("/api/conversations", query).json())
    return pages


def test_conversations_page_with_cursor(api: APIClient, user) -> None:
    for index in range(3):
        Conversation.objects.create(owner=user, title=f"c{index}")

    first, second = conversation_pages(api, limit=2)

    assert [c["title"] for c in first["conversations"]] == ["c2", "c1"]
    assert [c["title"] for c in second["conversations"]] == ["c0"]
    assert second["next_cursor"] is None


def test_conversations_updated_at_the_same_instant_each_come_once(
    api: APIClient, user
) -> None:
    # given three conversations whose updated_at are equal
    instant = timezone.now()
    created = {
        str(Conversation.objects.create(owner=user, updated_at=instant).pk)
        for _ in range(3)
    }

    # when they are read two at a time
    pages = conversation_pages(api, limit=2)

    # then each comes exactly once
    listed = [c["id"] for page in pages for c in page["conversations"]]
    assert sorted(listed) == sorted(created)
    assert [len(page["conversations"]) for page in pages] == [2, 1]


def test_conversations_with_ties_across_pages_each_come_once(
    api: APIClient, user
) -> None:
    # given a newest conversation, then five that share an older instant
    older = timezone.now()
    created = [
        str(Conversation.objects.create(owner=user, updated_at=older).pk)
        for _ in range(5)
    ]
    created.append(str(Conversation.objects.create(owner=user).pk))

    pages = conversation_pages(api, limit=2)

    listed = [c["id"] for page in pages for c in page["conversations"]]
    assert sorted(listed) == sorted(created)
    assert listed[0] == created[-1]


@pytest.mark.parametrize(
    "before",
    ["", "0", "not a cursor", "cD1ub3QtYS1kYXRl"],  # the last: "p=not-a-date"
)
def test_conversations_refuse_a_cursor_not_handed_out(
    api: APIClient, before: str
) -> None:
    response = api.get("/api/conversations", {"before": before})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_conversations_refuse_a_forged_cursor_with_its_message(
    api: APIClient,
) -> None:
    response = api.get("/api/conversations", {"before": "cD1ub3QtYS1kYXRl"})

    assert response.json()["errors"]["before"] == [str(INVALID_CURSOR_MESSAGE)]


@pytest.mark.parametrize("limit", ["", "0", "101", "x"])
def test_conversations_refuse_a_bad_limit(api: APIClient, limit: str) -> None:
    response = api.get("/api/conversations", {"limit": limit})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


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


@pytest.mark.parametrize("conversations", [5, 50])
def test_conversation_list_query_count(
    api: APIClient, user, conversations: int, django_assert_num_queries
) -> None:
    for index in range(conversations):
        Conversation.objects.create(owner=user, title=f"c{index}")
    api.get("/api/conversations")  # The key's first use records its time.
    cursor = api.get("/api/conversations", {"limit": 2}).json()["next_cursor"]

    # The page only: the key (with its user) is kept from the requests before.
    with django_assert_num_queries(1):
        api.get("/api/conversations", {"limit": 2, "before": cursor})
    with django_assert_num_queries(1):
        api.get("/api/conversations", {"limit": 100})


def test_keys_page_creates_and_revokes(client: Client, user) -> None:
    client.force_login(user)
    created = client.post("/settings/api-keys/", {"name": "cli"}, follow=True)
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
