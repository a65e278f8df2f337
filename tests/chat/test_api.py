import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message
from points.audit import audit_accounts
from points.exceptions import INSUFFICIENT_POINTS_MESSAGE
from points.models import Account, Hold, Transaction, TransactionType
from points.services import adjust

URL = "/api/chat"


def post(client: Client, body: object, **headers: str):
    return client.post(
        URL, json.dumps(body), content_type="application/json", headers=headers
    )


@pytest.fixture
def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def test_chat_answers_in_seed_shape_and_charges_points(signed_in: Client, user) -> None:
    response = post(signed_in, {"message": "안녕하세요!"})

    body = response.json()
    info = body["points_info"]
    usage = info["token_usage"]
    assert response.status_code == 200
    assert body["success"] is True
    assert body["response"].startswith("안녕하세요!")
    assert Conversation.objects.filter(pk=body["session_id"], owner=user).exists()
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert info["deducted"] == 2 * usage["total_tokens"]
    assert info["remaining"] == 100_000 - info["deducted"]
    assert Account.objects.get(user=user).balance == info["remaining"]
    assert audit_accounts() == []


def test_chat_continues_given_session(signed_in: Client) -> None:
    session_id = post(signed_in, {"message": "hello"}).json()["session_id"]

    second = post(signed_in, {"message": "and again?", "session_id": session_id})

    assert second.json()["session_id"] == session_id
    assert Message.objects.filter(conversation_id=session_id).count() == 4


def test_chat_reports_metering_time_in_server_timing(signed_in: Client) -> None:
    timing = post(signed_in, {"message": "hello"})["Server-Timing"]
    assert [part.split(";")[0] for part in timing.split(", ")] == [
        "count",
        "hold",
        "settle",
        "model",
    ]


def test_chat_needs_authentication(client: Client) -> None:
    response = post(client, {"message": "hello"})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_chat_ignores_user_email_cookie(client: Client, user) -> None:
    client.cookies["user_email"] = user.email
    assert post(client, {"message": "hello"}).status_code == 401


def test_chat_with_session_requires_csrf_token(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = post(client, {"message": "hello"})

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert not Hold.objects.exists()


def test_chat_with_session_and_csrf_token_is_accepted(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("chat:new"))
    token = client.cookies["csrftoken"].value

    assert post(client, {"message": "hello"}, X_CSRFToken=token).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"message": ""}, "invalid_message"),
        ({}, "invalid_request"),
        ({"message": 5}, "invalid_request"),
        ({"message": "hi", "model": 3}, "invalid_request"),
        ({"message": "hi", "stream": "yes"}, "invalid_request"),
        ({"message": "hi", "session_id": ["x"]}, "invalid_request"),
        ([1, 2], "invalid_request"),
    ],
)
def test_chat_rejects_bad_body_and_writes_nothing(
    signed_in: Client, body, code
) -> None:
    response = post(signed_in, body)

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": response.json()["error"],
        "code": code,
    }
    assert not Hold.objects.exists()
    assert not Conversation.objects.exists()


def test_chat_rejects_malformed_json(signed_in: Client) -> None:
    response = signed_in.post(URL, "{nope", content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


def test_chat_rejects_message_over_limit(signed_in: Client, settings) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 5
    response = post(signed_in, {"message": "too long"})
    assert (response.status_code, response.json()["code"]) == (400, "message_too_long")


def test_chat_unknown_model_is_404(signed_in: Client) -> None:
    response = post(signed_in, {"message": "hi", "model": "gpt-9"})
    assert (response.status_code, response.json()["code"]) == (404, "model_not_found")


def test_chat_in_someone_elses_conversation_is_404(
    signed_in: Client, make_user
) -> None:
    theirs = Conversation.objects.create(owner=make_user())

    response = post(signed_in, {"message": "hi", "session_id": str(theirs.pk)})

    assert (response.status_code, response.json()["code"]) == (
        404,
        "conversation_not_found",
    )
    assert not theirs.messages.exists()


def test_chat_get_is_405(signed_in: Client) -> None:
    response = signed_in.get(URL)
    assert (response.status_code, response.json()["code"]) == (
        405,
        "method_not_allowed",
    )


def test_chat_without_enough_points_is_402_in_seed_shape(
    signed_in: Client, user, staff_user
) -> None:
    adjust(
        account=user.points_account, delta=-99_995, reason="test", by_user=staff_user
    )

    response = post(signed_in, {"message": "hello"})

    body = response.json()
    assert response.status_code == 402
    assert body["success"] is False
    assert body["error"] == str(INSUFFICIENT_POINTS_MESSAGE)
    assert (body["code"], body["current_points"]) == ("insufficient_points", 5)
    assert body["required"] > 5
    assert not Conversation.objects.exists()


def test_chat_idempotency_key_returns_first_answer_charged_once(
    signed_in: Client, user
) -> None:
    first = post(signed_in, {"message": "hello"}, Idempotency_Key="turn-1")
    again = post(signed_in, {"message": "hello"}, Idempotency_Key="turn-1")

    assert again.status_code == 200
    assert again.json() == first.json()
    rows = Transaction.objects.filter(
        account__user=user, type=TransactionType.CHAT_USAGE
    )
    assert rows.count() == 1


def test_chat_idempotency_key_with_different_body_is_409(signed_in: Client) -> None:
    post(signed_in, {"message": "hello"}, Idempotency_Key="turn-1")

    response = post(signed_in, {"message": "other"}, Idempotency_Key="turn-1")

    assert (response.status_code, response.json()["code"]) == (
        409,
        "idempotency_conflict",
    )


def read_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.django_db(transaction=True)
def test_chat_streams_deltas_then_points_info(user) -> None:
    async def scenario() -> tuple:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(
            URL,
            json.dumps({"message": "hello", "stream": True}),
            content_type="application/json",
        )
        chunks = [chunk async for chunk in response.streaming_content]
        return response, b"".join(chunks)

    response, raw = async_to_sync(scenario)()

    events = read_events(raw)
    names = [name for name, _ in events]
    text = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert response["Content-Type"] == "text/event-stream"
    assert "hold;dur=" in response["Server-Timing"]
    assert names.count("delta") > 1
    assert names[-1] == "done"
    assert done["response"] == text
    assert done["points_info"]["remaining"] == Account.objects.get(user=user).balance


@pytest.mark.django_db(transaction=True)
def test_chat_streams_when_client_accepts_event_stream(user) -> None:
    async def scenario() -> bytes:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(
            URL,
            json.dumps({"message": "hi"}),
            content_type="application/json",
            headers={"Accept": "text/event-stream"},
        )
        return b"".join([chunk async for chunk in response.streaming_content])

    assert read_events(async_to_sync(scenario)())[-1][0] == "done"


def test_streamed_retry_with_same_key_replays_as_events(signed_in: Client) -> None:
    first = post(signed_in, {"message": "hello"}, Idempotency_Key="turn-1").json()

    again = post(
        signed_in, {"message": "hello", "stream": True}, Idempotency_Key="turn-1"
    )

    assert again["Content-Type"] == "text/event-stream"
    events = read_events(again.content)
    assert [name for name, _ in events] == ["delta", "done"]
    assert events[-1][1] == first


def test_stream_under_wsgi_is_sent_whole_as_events(signed_in: Client) -> None:
    # Django's test client is a WSGI-style handler: no real streaming there.
    response = post(signed_in, {"message": "hello", "stream": True})

    events = read_events(response.content)
    assert [name for name, _ in events] == ["delta", "done"]
    assert events[0][1]["text"] == events[1][1]["response"]


def test_chat_points_info_carries_list_cost_and_tier(
    signed_in: Client, user, staff_user
) -> None:
    from points.models import Tier
    from points.services import set_tier

    gold = Tier.objects.create(code="gold", name="Gold", discount_bps=2_500)
    set_tier(account=user.points_account, tier=gold, reason="test", by_user=staff_user)

    info = post(signed_in, {"message": "안녕하세요!"}).json()["points_info"]

    row = Transaction.objects.get(account__user=user, type=TransactionType.CHAT_USAGE)
    list_cost = 2 * info["token_usage"]["total_tokens"]
    assert (info["list_cost"], info["tier"]) == (list_cost, "gold")
    assert info["deducted"] == list_cost - list_cost * 2_500 // 10_000
    assert (row.list_cost, -row.amount) == (list_cost, info["deducted"])
