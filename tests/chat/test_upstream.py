"""The HTTP side of the OpenAI-compatible provider: events parsed, requests retried."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.models import User
from chat import upstream
from chat.upstream import sse_data
from tests.chat.fake_openai import FakeOpenAI, Script


def events_of(*chunks: bytes) -> list[bytes]:
    async def arrive() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[bytes]:
        return [data async for data in sse_data(arrive())]

    return asyncio.run(collect())


def test_sse_data_joins_the_data_lines_of_an_event_and_skips_comments() -> None:
    assert events_of(b": keep-alive\n\nevent: x\ndata: one\ndata:two\nid: 1\n\n") == [
        b"one\ntwo"
    ]


def test_sse_data_ends_lines_at_crlf_split_between_chunks() -> None:
    assert events_of(b"data: a\r", b"\ndata: b\r\n\r", b"\ndata: c\r\r") == [
        b"a\nb",
        b"c",
    ]


def test_sse_data_keeps_unicode_line_separators_inside_the_data() -> None:
    payload = json.dumps({"text": "one\u2028two\x85"}, ensure_ascii=False).encode()

    (data,) = events_of(b"data: " + payload + b"\n\n")

    assert json.loads(data) == {"text": "one\u2028two\x85"}


def test_sse_data_drops_an_event_cut_before_its_blank_line() -> None:
    assert events_of(b"data: whole\n\n", b"data: cut") == [b"whole"]


def ask(client: Client, user: User) -> dict:
    client.force_login(user)
    response = client.post(
        "/api/chat", json.dumps({"message": "hello"}), content_type="application/json"
    )
    return {"status": response.status_code, **response.json()}


def test_server_error_is_retried_then_reported(
    fake_openai: FakeOpenAI, client: Client, user: User, settings: Settings
) -> None:
    settings.LLM_MAX_RETRIES = 1
    fake_openai.script = Script(status=503)

    answer = ask(client, user)

    assert (answer["status"], answer["upstream_status"]) == (502, 503)
    assert len(fake_openai.chat_requests) == 2


def test_client_error_is_not_retried(
    fake_openai: FakeOpenAI, client: Client, user: User, settings: Settings
) -> None:
    settings.LLM_MAX_RETRIES = 2
    fake_openai.script = Script(status=400)

    answer = ask(client, user)

    assert (answer["status"], answer["upstream_status"]) == (502, 400)
    assert len(fake_openai.chat_requests) == 1


@pytest.mark.parametrize("fault", [{"error_after": 1}, {"malformed_after": 1}])
def test_answer_spoilt_after_it_began_is_not_retried(
    fake_openai: FakeOpenAI,
    client: Client,
    user: User,
    settings: Settings,
    fault: dict,
) -> None:
    settings.LLM_MAX_RETRIES = 2
    fake_openai.script = Script(**fault)

    answer = ask(client, user)

    assert (answer["status"], answer["code"]) == (502, "provider_error")
    assert len(fake_openai.chat_requests) == 1


def test_an_idle_connection_is_dropped_before_the_server_would_drop_it(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Servers close idle connections after a while (uvicorn and vLLM: 5 s); one
    # taken from the pool as the server closes it fails the turn. Ours are let go
    # sooner, and a connection busy enough is kept.
    monkeypatch.setattr(upstream, "KEEPALIVE_SECONDS", 0.3)
    fake_openai.script = Script(keep_alive=True)
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()

    async def three_requests() -> None:
        for pause in (0, 0.05, 0.6):
            await asyncio.sleep(pause)
            async with upstream.chat_completion(body) as response:
                await response.aread()

    asyncio.run(three_requests())

    first, soon_after, after_a_pause = [
        request.client_port for request in fake_openai.chat_requests
    ]
    assert first == soon_after != after_a_pause
