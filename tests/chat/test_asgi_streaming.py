"""Streaming under the production ASGI server: uvicorn serving eora.asgi."""

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chat.fake_openai import FakeOpenAI, Script
from tests.live_server import live_server

# Its server runs on a SQLite file of its own: once per CI run.
pytestmark = pytest.mark.own_server

EMAIL = "asgi-streaming@example.com"
PASSWORD = "correct-horse-battery-staple"
# Shorter than the fake server's gate timeout, so that a buffered response fails
# the test by timing out instead of arriving in one piece later.
READ_TIMEOUT_SECONDS = 5


@pytest.fixture
def asgi_server(tmp_path: Path, fake_openai: FakeOpenAI) -> Iterator[str]:
    """Serve the app with uvicorn on a throwaway SQLite database with one user."""
    with live_server(
        tmp_path,
        LLM_PROVIDER="openai",
        LLM_BASE_URL=fake_openai.url,
        LLM_API_KEY="test-key",
        LLM_MODELS="gpt-4o-mini",
        # Longer than the test waits: only buffering can hold the first delta back.
        LLM_TIMEOUT="20",
        LLM_MAX_RETRIES="0",
    ) as server:
        server.add_users([EMAIL], PASSWORD)
        yield server.url


def log_in(client: httpx.Client) -> None:
    client.get("/accounts/login/").raise_for_status()
    response = client.post(
        "/accounts/login/",
        data={
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "username": EMAIL,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 302, response.text


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """Yield each server-sent event's name and data as soon as it arrives."""
    lines = response.iter_lines()
    for line in lines:
        if line.startswith("event: "):
            data = next(lines)
            assert data.startswith("data: ")
            yield line.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def test_uvicorn_streams_first_delta_while_provider_still_generating(
    asgi_server: str, fake_openai: FakeOpenAI
) -> None:
    # Given a provider that holds its last delta back until the gate opens.
    gate = threading.Event()
    fake_openai.script = Script(deltas=["first", " last"], usage=(7, 2), gate=gate)
    timeout = httpx.Timeout(READ_TIMEOUT_SECONDS)

    with httpx.Client(base_url=asgi_server, timeout=timeout) as client:
        log_in(client)
        with client.stream(
            "POST",
            "/api/chat",
            json={"message": "hello", "stream": True},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        ) as response:
            events = read_events(response)
            # When the first delta is read, then the provider is still generating.
            try:
                first = next(events)
            except httpx.ReadTimeout:
                pytest.fail("no delta before the provider finished: uvicorn buffers")
            last_sent_before_first_read = fake_openai.sent_last_delta.is_set()
            gate.set()
            rest = list(events)

    assert response.headers["content-type"] == "text/event-stream"
    assert first == ("delta", {"text": "first"})
    assert last_sent_before_first_read is False
    assert [name for name, _ in rest] == ["delta", "done"]
    assert rest[0][1] == {"text": " last"}
    done = rest[1][1]
    assert done["response"] == "first last"
    assert done["points_info"]["deducted"] == 18
    assert done["points_info"]["remaining"] == 100_000 - 18
