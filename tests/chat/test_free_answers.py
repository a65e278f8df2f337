"""No answer is had for free: after any turn, either it was charged or no answer
text reached the client, no hold is left open, and `points_audit` is clean."""

import json
import logging
import threading
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.test import AsyncClient, Client

from accounts.api_keys import create_api_key
from accounts.models import User
from chat.exceptions import TurnNotSaved, UnstorableText
from chat.models import Conversation, Message
from points.audit import audit_accounts
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType
from tests.chat.fake_openai import FakeOpenAI, Script

STARTING_POINTS = 100_000


def charged(user: User) -> int:
    rows = Transaction.objects.filter(
        account__user=user, type=TransactionType.CHAT_USAGE
    )
    return -sum(row.amount for row in rows)


def assert_no_open_hold_and_clean_audit(user: User) -> None:
    account = Account.objects.get(user=user)
    assert account.held == 0
    assert not Hold.objects.filter(account=account, status=HoldStatus.OPEN).exists()
    assert audit_accounts() == []


def post_json(client: Client, url: str, raw: str, **headers: str):
    return client.post(url, raw, content_type="application/json", headers=headers)


# Text the database cannot store is refused before anything is reserved ------------

UNSTORABLE = ['"hi \\u0000"', '"hi \\ud800"', '"\\udfff tail"']


@pytest.mark.parametrize("message", UNSTORABLE)
@pytest.mark.parametrize("stream", ["false", "true"])
def test_api_chat_refuses_unstorable_text(
    client: Client, user: User, message: str, stream: str
) -> None:
    client.force_login(user)

    response = post_json(
        client, "/api/chat", f'{{"message": {message}, "stream": {stream}}}'
    )

    assert response.status_code == 400
    assert response.json()["code"] == UnstorableText.code
    assert not Hold.objects.exists()


@pytest.mark.parametrize("message", UNSTORABLE)
def test_v1_refuses_unstorable_text_in_any_message(user: User, message: str) -> None:
    _key, secret = create_api_key(user=user, name="test")
    body = (
        '{"model": "eora-demo", "store": true, "messages": ['
        f'{{"role": "system", "content": {message}}},'
        '{"role": "user", "content": "hello"}]}'
    )

    response = post_json(
        Client(), "/v1/chat/completions", body, Authorization=f"Bearer {secret}"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == UnstorableText.code
    assert not Hold.objects.exists()


def test_page_form_post_refuses_nul_and_charges_nothing(
    client: Client, user: User
) -> None:
    client.force_login(user)

    response = client.post("/chat/send/", {"message": "hi \x00 there"}, follow=True)

    assert response.status_code == 200
    assert str(UnstorableText.default_message) in response.content.decode()
    assert not Hold.objects.exists()
    assert not Message.objects.exists()


# A conversation deleted while its answer streams ---------------------------------


def test_conversation_deleted_mid_stream_is_still_charged(
    fake_openai: FakeOpenAI, user: User
) -> None:
    # Given a conversation with one turn, and a second answer held at its last delta
    client = Client()
    client.force_login(user)
    first = post_json(client, "/api/chat", '{"message": "first"}').json()
    conversation_id = first["session_id"]
    gate = threading.Event()
    fake_openai.script = Script(deltas=["Kept", " until", " now"], gate=gate)
    paid_before = charged(user)

    async def scenario() -> bytes:
        streamer = AsyncClient()
        await streamer.aforce_login(user)
        response = await streamer.post(
            "/api/chat",
            json.dumps(
                {"session_id": conversation_id, "message": "second", "stream": True}
            ),
            content_type="application/json",
        )
        chunks = response.streaming_content
        received = [await anext(chunks)]
        # When the user deletes the conversation while the answer streams
        deleted = await sync_to_async(client.delete)(
            f"/api/conversations/{conversation_id}"
        )
        assert deleted.status_code == 200
        gate.set()
        received += [chunk async for chunk in chunks]
        return b"".join(received)

    raw = async_to_sync(scenario)().decode()

    # Then the turn ends normally and is charged for the answer it delivered
    assert "event: done" in raw
    assert "Kept until now" in raw.replace('"}\n\nevent: delta\ndata: {"text": "', "")
    assert charged(user) > paid_before
    assert not Conversation.objects.filter(pk=conversation_id).exists()
    assert_no_open_hold_and_clean_audit(user)


# A database error while saving ---------------------------------------------------


def _create_trigger(table: str, condition: str) -> None:
    """Make the database itself refuse some rows, as a broken database would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_row() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'injected database failure'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_row BEFORE INSERT ON {table} FOR EACH ROW "
                f"WHEN ({condition}) EXECUTE FUNCTION refuse_row()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_row_{table} BEFORE INSERT ON {table} "
                f"WHEN {condition.replace('NEW.', 'new.')} "
                "BEGIN SELECT RAISE(ABORT, 'injected database failure'); END"
            )


@pytest.fixture
def answers_cannot_be_saved(db: None) -> Iterator[None]:
    _create_trigger("chat_message", "NEW.role = 'assistant'")
    yield


@pytest.fixture
def nothing_can_be_charged(answers_cannot_be_saved: None) -> Iterator[None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TRIGGER refuse_usage BEFORE INSERT ON points_transaction "
                "FOR EACH ROW WHEN (NEW.type = 'chat_usage') "
                "EXECUTE FUNCTION refuse_row()"
            )
    else:
        _create_trigger("points_transaction", "NEW.type = 'chat_usage'")
    yield


def stream_turn(user: User, message: str = "hello") -> str:
    async def scenario() -> bytes:
        streamer = AsyncClient()
        await streamer.aforce_login(user)
        response = await streamer.post(
            "/api/chat",
            json.dumps({"message": message, "stream": True}),
            content_type="application/json",
        )
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(scenario)().decode()


def test_streamed_answer_that_cannot_be_saved_is_charged_by_our_count(
    user: User, answers_cannot_be_saved: None, caplog: pytest.LogCaptureFixture
) -> None:
    raw = stream_turn(user)

    # The text reached the client, so it is charged, and the stream says what
    # happened instead of stopping silently.
    error = json.loads(raw.rsplit("event: error\ndata: ", 1)[1])
    assert (error["code"], error["deducted"]) == (TurnNotSaved.code, charged(user))
    assert charged(user) > 0
    assert not Message.objects.exists()
    assert_no_open_hold_and_clean_audit(user)


def test_json_answer_that_cannot_be_saved_is_not_charged(
    client: Client, user: User, answers_cannot_be_saved: None
) -> None:
    client.force_login(user)

    response = post_json(client, "/api/chat", '{"message": "hello"}')

    # No answer text reached the client, so nothing is charged.
    assert response.status_code == 503
    assert (response.json()["code"], response.json()["deducted"]) == (
        TurnNotSaved.code,
        0,
    )
    assert "response" not in response.json()
    assert charged(user) == 0
    assert_no_open_hold_and_clean_audit(user)


def test_turn_that_cannot_even_be_charged_releases_its_hold_and_logs_it(
    user: User, nothing_can_be_charged: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="chat.services"):
        raw = stream_turn(user)

    hold = Hold.objects.get()
    assert "event: error" in raw
    assert hold.status == HoldStatus.RELEASED
    assert any(
        record.levelno == logging.ERROR and str(hold.pk) in record.getMessage()
        for record in caplog.records
        if "released" in record.getMessage()
    )
    assert charged(user) == 0
    assert_no_open_hold_and_clean_audit(user)
