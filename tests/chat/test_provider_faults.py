"""Faults of an OpenAI-compatible provider, driven through a fake server over HTTP.

Each fault has one expected outcome: the HTTP status, what is charged, and what
is kept of the question and the answer. Whatever the fault, no hold stays open
and `points_audit` is clean.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from accounts.models import User
from chat.models import Message, MessageRole, MessageStatus
from points.audit import audit_accounts
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType
from points.pricing import cost_of, default_rates
from points.tokens import count_chat_tokens, count_tokens
from tests.chat.fake_openai import FakeOpenAI, Script

URL = "/api/chat"
MODEL = "gpt-4o-mini"
STARTING_POINTS = 100_000
DELTAS = ["Hello", " there", "!"]


@dataclass(frozen=True)
class Fault:
    script: Script
    status: int
    # "provider": billed by the provider's usage; "counted": by our own count of
    # the prompt and the text; "hold": capped at the hold; "nothing".
    charge: str
    answer_status: str | None
    code: str | None = None


FAULTS = {
    "malformed chunk": Fault(
        Script(deltas=DELTAS, malformed_after=1), 502, "nothing", None, "provider_error"
    ),
    "negative usage": Fault(
        Script(deltas=DELTAS, raw_usage={"prompt_tokens": -5, "completion_tokens": 3}),
        200,
        "counted",
        MessageStatus.COMPLETE,
    ),
    "null usage": Fault(
        Script(
            deltas=DELTAS, raw_usage={"prompt_tokens": None, "completion_tokens": None}
        ),
        200,
        "counted",
        MessageStatus.COMPLETE,
    ),
    "float usage": Fault(
        Script(
            deltas=DELTAS, raw_usage={"prompt_tokens": 10.5, "completion_tokens": 3.0}
        ),
        200,
        "counted",
        MessageStatus.COMPLETE,
    ),
    "string usage": Fault(
        Script(
            deltas=DELTAS, raw_usage={"prompt_tokens": "10", "completion_tokens": "3"}
        ),
        200,
        "counted",
        MessageStatus.COMPLETE,
    ),
    "usage above the hold": Fault(
        Script(deltas=DELTAS, usage=(10, 5_000)), 200, "hold", MessageStatus.COMPLETE
    ),
    "stall": Fault(
        Script(deltas=DELTAS, stall_seconds=3), 502, "nothing", None, "provider_timeout"
    ),
    "cut": Fault(
        Script(deltas=DELTAS, error_after=2), 502, "nothing", None, "provider_error"
    ),
    "error status": Fault(
        Script(deltas=DELTAS, status=500), 502, "nothing", None, "provider_error"
    ),
    "no [DONE] after the finish reason": Fault(
        Script(deltas=DELTAS, usage=(12, 3), done=False),
        200,
        "provider",
        MessageStatus.COMPLETE,
    ),
    "no [DONE] and no finish reason": Fault(
        Script(deltas=DELTAS, usage=(12, 3), done=False, finish=False),
        200,
        "counted",
        MessageStatus.PARTIAL,
    ),
}


def expected_charge(fault: Fault, fake: FakeOpenAI, hold: Hold) -> int:
    if fault.charge == "nothing":
        return 0
    if fault.charge == "hold":
        return hold.amount
    if fault.charge == "provider":
        prompt, completion = fault.script.usage
    else:
        (sent,) = fake.chat_requests
        prompt = count_chat_tokens(sent.body["messages"], MODEL)
        completion = count_tokens("".join(DELTAS), MODEL)
    return cost_of(
        prompt_tokens=prompt, completion_tokens=completion, rates=default_rates()
    )


def assert_settled(user: User, fault: Fault, fake: FakeOpenAI) -> None:
    account = Account.objects.get(user=user)
    hold = Hold.objects.get(account=account)
    charged = expected_charge(fault, fake, hold)
    rows = Transaction.objects.filter(account=account, type=TransactionType.CHAT_USAGE)
    assert [-row.amount for row in rows] == ([charged] if charged else [])
    assert (account.balance, account.held) == (STARTING_POINTS - charged, 0)
    assert hold.status != HoldStatus.OPEN
    answers = Message.objects.filter(role=MessageRole.ASSISTANT)
    assert [a.status for a in answers] == (
        [fault.answer_status] if fault.answer_status else []
    )
    question = Message.objects.get(role=MessageRole.USER)
    assert question.status == (fault.answer_status or MessageStatus.FAILED)
    assert audit_accounts() == []


@pytest.fixture
def fault_server(fake_openai: FakeOpenAI, settings) -> FakeOpenAI:
    settings.LLM_TIMEOUT = 1
    return fake_openai


@pytest.mark.parametrize("name", list(FAULTS))
def test_provider_fault_as_json(
    name: str, fault_server: FakeOpenAI, client: Client, user: User
) -> None:
    fault = FAULTS[name]
    fault_server.script = fault.script
    client.force_login(user)

    response = client.post(
        URL, json.dumps({"message": "hello"}), content_type="application/json"
    )

    assert response.status_code == fault.status
    if fault.code:
        assert response.json()["code"] == fault.code
    assert_settled(user, fault, fault_server)


def stream(user: User, body: dict[str, Any]) -> tuple[int, list[tuple[str, dict]]]:
    async def scenario() -> tuple[int, bytes]:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(
            URL, json.dumps({**body, "stream": True}), content_type="application/json"
        )
        if not response.streaming:
            return response.status_code, b""
        return 200, b"".join([c async for c in response.streaming_content])

    status, raw = async_to_sync(scenario)()
    events = []
    for block in raw.decode().strip().split("\n\n") if raw else []:
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return status, events


@pytest.mark.parametrize("name", list(FAULTS))
def test_provider_fault_as_stream(
    name: str, fault_server: FakeOpenAI, user: User
) -> None:
    fault = FAULTS[name]
    fault_server.script = fault.script

    status, events = stream(user, {"message": "hello"})

    if fault.status == 200:
        assert (status, events[-1][0]) == (200, "done")
    elif events:
        # The failure came after the first delta: the stream says so.
        assert events[-1][0] == "error"
        assert events[-1][1]["code"] == fault.code
    else:
        assert status == fault.status
    assert_settled(user, fault, fault_server)
