"""A stream the client cuts off is charged only for what was sent before it left."""

import threading
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from django.core.signals import request_finished
from pytest_django.fixtures import Settings

from chat.models import Message, MessageStatus
from chat.providers import demo_answer
from points.audit import audit_accounts
from points.models import Hold, HoldStatus
from points.tokens import count_chat_tokens, count_tokens
from tests.v1.conftest import DEMO_MODEL, KeyHolder, usage_rows

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is a ledger?"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": QUESTION}]
CHUNKS_READ = 3
SETTLE_SECONDS = 5


@pytest.fixture(autouse=True)
def slow_demo_model(settings: Settings) -> None:
    # About 50 pieces at 50 ms: the full answer takes 2.5 s to stream.
    settings.DEMO_STREAM_DELAY_MS = 50
    settings.POINTS_PER_TOKEN = Decimal(2)


def read_then_cut(client: openai.OpenAI, *, store: bool) -> str:
    """Read a few content chunks of a streamed answer, close it; return the text."""
    stream = client.chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES, stream=True, store=store
    )
    pieces: list[str] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if len(pieces) == CHUNKS_READ:
            break
    stream.close()
    return "".join(pieces)


@pytest.fixture
def request_done() -> Iterator[threading.Event]:
    """Set when the server has finished a request, settlement included.

    Waiting for this instead of polling the database keeps the test's reads from
    racing the server's settlement: on the shared in-memory SQLite test database
    a read during another connection's write fails with "table is locked".
    """
    done = threading.Event()

    def finished(**kwargs: object) -> None:
        done.set()

    request_finished.connect(finished, weak=False, dispatch_uid="v1-request-done")
    yield done
    request_finished.disconnect(dispatch_uid="v1-request-done")


def wait_until_settled(request_done: threading.Event) -> None:
    if not request_done.wait(SETTLE_SECONDS):
        pytest.fail(f"the cut turn was not settled within {SETTLE_SECONDS} s")
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()


def test_cut_stream_is_charged_only_for_the_delivered_part(
    client: openai.OpenAI, key_holder: KeyHolder, request_done: threading.Event
) -> None:
    balance_before = key_holder.account.balance
    full_answer_tokens = count_tokens(demo_answer(QUESTION), DEMO_MODEL)

    read_then_cut(client, store=False)
    wait_until_settled(request_done)

    (row,) = usage_rows(key_holder.account)
    assert 0 < row.completion_tokens <= full_answer_tokens // 2
    assert row.prompt_tokens == count_chat_tokens(MESSAGES, DEMO_MODEL)
    assert row.amount == -2 * (row.prompt_tokens + row.completion_tokens)
    assert Hold.objects.get().captured_amount == -row.amount
    account = key_holder.account
    assert account.balance == balance_before + row.amount == row.balance_after
    assert account.held == 0
    assert audit_accounts() == []


def test_cut_stream_with_store_keeps_the_charged_partial_answer(
    client: openai.OpenAI, key_holder: KeyHolder, request_done: threading.Event
) -> None:
    read = read_then_cut(client, store=True)
    wait_until_settled(request_done)

    (row,) = usage_rows(key_holder.account)
    answer = Message.objects.get(role="assistant")
    assert answer.status == MessageStatus.PARTIAL
    assert answer.transaction_id == row.pk
    assert answer.content.startswith(read)
    assert demo_answer(QUESTION).startswith(answer.content)
    assert count_tokens(answer.content, DEMO_MODEL) == row.completion_tokens
    assert len(answer.content) < len(demo_answer(QUESTION)) // 2
    assert audit_accounts() == []
