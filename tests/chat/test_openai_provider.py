"""Full chat turns through POST /api/chat against a fake OpenAI-compatible server."""

import asyncio
import json
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from accounts.models import User
from chat.models import Message, MessageRole, MessageStatus
from points.audit import audit_accounts
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType
from points.tokens import count_chat_tokens, count_tokens
from tests.chat.fake_openai import FakeOpenAI, Script

URL = "/api/chat"
MODEL = "gpt-4o-mini"
STARTING_POINTS = 100_000
SSEEvent = tuple[str, dict[str, Any]]


def post(client: Client, body: dict[str, Any]) -> Any:
    return client.post(URL, json.dumps(body), content_type="application/json")


def parse_events(raw: bytes) -> list[SSEEvent]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def open_stream(user: User, message: str) -> StreamingHttpResponse:
    client = AsyncClient()
    await client.aforce_login(user)
    return await client.post(
        URL,
        json.dumps({"message": message, "stream": True}),
        content_type="application/json",
    )


def stream_chat(user: User, message: str = "hello") -> tuple[Any, list[SSEEvent]]:
    """Send a streaming turn; return the response and its events (or JSON error)."""

    async def scenario() -> tuple[Any, bytes]:
        response = await open_stream(user, message)
        if not response.streaming:
            return response, b""
        return response, b"".join([c async for c in response.streaming_content])

    response, raw = async_to_sync(scenario)()
    return response, parse_events(raw) if raw else []


def chat_usage_rows(user: User) -> list[Transaction]:
    return list(
        Transaction.objects.filter(account__user=user, type=TransactionType.CHAT_USAGE)
    )


def assert_nothing_charged(user: User) -> None:
    account = Account.objects.get(user=user)
    assert (account.balance, account.held) == (STARTING_POINTS, 0)
    assert chat_usage_rows(user) == []
    assert not Hold.objects.filter(account=account, status=HoldStatus.OPEN).exists()
    assert audit_accounts() == []


def assert_question_failed(user: User, code: str) -> None:
    question = Message.objects.get(conversation__owner=user, role=MessageRole.USER)
    assert (question.status, question.error_code) == (MessageStatus.FAILED, code)
    assert not Message.objects.filter(role=MessageRole.ASSISTANT).exists()


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def test_openai_turn_is_billed_by_provider_usage(
    signed_in: Client, user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["Hello", " there", "!"], usage=(123, 45))

    response = post(signed_in, {"message": "hello"})

    body = response.json()
    (row,) = chat_usage_rows(user)
    account = Account.objects.get(user=user)
    assert response.status_code == 200
    assert (body["response"], body["model"]) == ("Hello there!", MODEL)
    assert body["points_info"] == {
        "deducted": 336,
        "remaining": STARTING_POINTS - 336,
        "token_usage": {
            "prompt_tokens": 123,
            "completion_tokens": 45,
            "total_tokens": 168,
        },
        "list_cost": 336,
        "tier": None,
    }
    assert (row.prompt_tokens, row.completion_tokens, row.amount) == (123, 45, -336)
    assert (account.balance, account.held) == (STARTING_POINTS - 336, 0)
    assert audit_accounts() == []


def test_openai_turn_without_usage_is_billed_by_own_count(
    signed_in: Client, user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["Counted", " by", " us."], usage=None)

    response = post(signed_in, {"message": "hello"})

    (sent,) = fake_openai.chat_requests
    prompt_tokens = count_chat_tokens(sent.body["messages"], MODEL)
    completion_tokens = count_tokens("Counted by us.", MODEL)
    cost = (prompt_tokens + completion_tokens) * 2
    (row,) = chat_usage_rows(user)
    assert response.json()["points_info"]["token_usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    assert (row.prompt_tokens, row.completion_tokens, row.amount) == (
        prompt_tokens,
        completion_tokens,
        -cost,
    )
    assert Account.objects.get(user=user).balance == STARTING_POINTS - cost
    assert audit_accounts() == []


@pytest.mark.django_db(transaction=True)
def test_openai_request_streams_with_usage_limit_and_system_prompt(
    user: User, fake_openai: FakeOpenAI, settings: Settings
) -> None:
    fake_openai.script = Script(usage=(10, 3))

    stream_chat(user, "What is EORA?")

    (sent,) = fake_openai.chat_requests
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["model"] == MODEL
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.include_usage
    assert sent.body["max_tokens"] == settings.CHAT_MAX_COMPLETION_TOKENS
    assert sent.body["messages"] == [
        {"role": "system", "content": settings.CHAT_SYSTEM_PROMPT},
        {"role": "user", "content": "What is EORA?"},
    ]
    assert chat_usage_rows(user)[0].prompt_tokens == 10
    assert audit_accounts() == []


def test_openai_json_turn_asks_for_the_whole_answer_at_once(
    signed_in: Client, user: User, fake_openai: FakeOpenAI, settings: Settings
) -> None:
    fake_openai.script = Script(deltas=["All", " at", " once"], usage=(10, 3))

    response = post(signed_in, {"message": "What is EORA?"})

    (sent,) = fake_openai.chat_requests
    assert response.json()["response"] == "All at once"
    assert sent.headers["authorization"] == "Bearer test-key"
    assert "stream" not in sent.body
    assert not sent.include_usage
    assert sent.body["max_tokens"] == settings.CHAT_MAX_COMPLETION_TOKENS
    assert sent.body["messages"][-1] == {"role": "user", "content": "What is EORA?"}
    assert chat_usage_rows(user)[0].prompt_tokens == 10
    assert audit_accounts() == []


@pytest.mark.django_db(transaction=True)
def test_openai_stream_sends_deltas_then_done_with_points_info(
    user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["Hel", "lo", " you"], usage=(20, 3))

    response, events = stream_chat(user)

    (row,) = chat_usage_rows(user)
    account = Account.objects.get(user=user)
    assert response["Content-Type"] == "text/event-stream"
    assert events[:-1] == [
        ("delta", {"text": "Hel"}),
        ("delta", {"text": "lo"}),
        ("delta", {"text": " you"}),
    ]
    name, done = events[-1]
    assert (name, done["response"]) == ("done", "Hello you")
    assert done["points_info"] == {
        "deducted": 46,
        "remaining": STARTING_POINTS - 46,
        "token_usage": {
            "prompt_tokens": 20,
            "completion_tokens": 3,
            "total_tokens": 23,
        },
        "list_cost": 46,
        "tier": None,
    }
    assert (row.prompt_tokens, row.completion_tokens, row.amount) == (20, 3, -46)
    assert (account.balance, account.held) == (STARTING_POINTS - 46, 0)
    assert audit_accounts() == []


@pytest.mark.parametrize("status", [500, 429])
def test_openai_error_status_is_502_and_charges_nothing(
    signed_in: Client, user: User, fake_openai: FakeOpenAI, status: int
) -> None:
    fake_openai.script = Script(status=status)

    response = post(signed_in, {"message": "hello"})

    body = response.json()
    assert response.status_code == 502
    assert (body["success"], body["code"]) == (False, "provider_error")
    assert body["upstream_status"] == status
    assert len(fake_openai.chat_requests) == 1
    assert_nothing_charged(user)
    assert_question_failed(user, "provider_error")


def test_openai_timeout_is_502_and_charges_nothing(
    signed_in: Client, user: User, fake_openai: FakeOpenAI, settings: Settings
) -> None:
    settings.LLM_TIMEOUT = 1
    fake_openai.script = Script(stall_seconds=1.5, usage=(5, 5))

    response = post(signed_in, {"message": "hello"})

    body = response.json()
    assert response.status_code == 502
    assert (body["success"], body["code"]) == (False, "provider_timeout")
    assert_nothing_charged(user)
    assert_question_failed(user, "provider_timeout")


def test_openai_json_turn_broken_mid_stream_is_502_and_charges_nothing(
    signed_in: Client, user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["One", " two", " three"], error_after=2)

    response = post(signed_in, {"message": "hello"})

    assert (response.status_code, response.json()["code"]) == (502, "provider_error")
    assert_nothing_charged(user)
    assert_question_failed(user, "provider_error")


@pytest.mark.django_db(transaction=True)
def test_openai_stream_broken_mid_answer_ends_with_error_event(
    user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["One", " two", " three"], error_after=2)

    response, events = stream_chat(user)

    assert response.status_code == 200
    assert [name for name, _ in events] == ["delta", "delta", "error"]
    assert events[-1][1]["code"] == "provider_error"
    assert_nothing_charged(user)
    assert_question_failed(user, "provider_error")


@pytest.mark.django_db(transaction=True)
def test_openai_stream_broken_before_first_delta_is_502(
    user: User, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(deltas=["One", " two"], error_after=0)

    response, events = stream_chat(user)

    assert events == []
    assert (response.status_code, response.json()["code"]) == (502, "provider_error")
    assert_nothing_charged(user)
    assert_question_failed(user, "provider_error")


@pytest.mark.django_db(transaction=True)
def test_openai_stream_delivers_first_delta_while_provider_still_generating(
    user: User, fake_openai: FakeOpenAI, settings: Settings
) -> None:
    # Given a provider that holds its last delta back until the gate opens (and a
    # client timeout longer than the test waits, so only buffering can stall it).
    settings.LLM_TIMEOUT = 20
    gate = threading.Event()
    fake_openai.script = Script(deltas=["first", " last"], usage=(7, 2), gate=gate)

    async def scenario() -> tuple[bytes, bool, bytes]:
        response = await asyncio.wait_for(open_stream(user, "hello"), timeout=5)
        chunks = aiter(response.streaming_content)
        try:
            first = await asyncio.wait_for(anext(chunks), timeout=5)
        except TimeoutError:
            pytest.fail("no delta before the provider finished: the stream is buffered")
        last_sent_before_first_read = fake_openai.sent_last_delta.is_set()
        gate.set()
        return first, last_sent_before_first_read, b"".join([c async for c in chunks])

    # When the first delta is read, then the provider has not sent the last one yet.
    first, last_sent_before_first_read, rest = async_to_sync(scenario)()

    assert parse_events(first) == [("delta", {"text": "first"})]
    assert last_sent_before_first_read is False
    assert [name for name, _ in parse_events(rest)] == ["delta", "done"]
    assert parse_events(rest)[-1][1]["points_info"]["deducted"] == 18
    assert Account.objects.get(user=user).balance == STARTING_POINTS - 18
    assert audit_accounts() == []


@pytest.mark.django_db(transaction=True)
def test_openai_stream_stalled_mid_answer_is_provider_timeout(
    user: User, fake_openai: FakeOpenAI, settings: Settings
) -> None:
    # Given a provider that sends one delta, then nothing for longer than the
    # client's timeout (its gate never opens).
    settings.LLM_TIMEOUT = 1
    fake_openai.script = Script(deltas=["first", " never"], gate=threading.Event())

    response, events = stream_chat(user)

    assert [name for name, _ in events] == ["delta", "error"]
    assert_nothing_charged(user)
    assert events[-1][1]["code"] == "provider_timeout"
