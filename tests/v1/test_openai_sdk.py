"""The official openai SDK against a live server: every call is metered on the ledger.

Each test checks the balance change against the `chat_usage` ledger row and that
the audit finds nothing wrong.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import openai
import pytest
from pytest_django.fixtures import Settings

from accounts.models import User
from chat.models import Conversation, Message
from chat.providers import demo_answer
from points.audit import audit_accounts
from points.models import Hold, Transaction
from points.services import adjust
from points.tokens import count_chat_tokens, count_tokens
from tests.v1.conftest import DEMO_MODEL, KeyHolder, usage_rows

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is a ledger?"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": QUESTION}]
POINTS_PER_TOKEN = 2


@pytest.fixture(autouse=True)
def two_points_per_token(settings: Settings) -> None:
    settings.POINTS_PER_TOKEN = Decimal(POINTS_PER_TOKEN)


def expected_prompt_tokens(messages: list[dict[str, str]] = MESSAGES) -> int:
    # /v1 adds no system prompt: the prompt is exactly the messages sent.
    return count_chat_tokens(messages, DEMO_MODEL)


def expected_completion_tokens(question: str = QUESTION) -> int:
    return count_tokens(demo_answer(question), DEMO_MODEL)


def assert_charged_once(
    holder: KeyHolder, *, balance_before: int, charged: int
) -> Transaction:
    """Return the turn's ledger row after checking it against the balance."""
    (row,) = usage_rows(holder.account)
    account = holder.account
    assert row.amount == -charged
    assert charged == POINTS_PER_TOKEN * (row.prompt_tokens + row.completion_tokens)
    assert row.model == DEMO_MODEL
    assert account.balance == balance_before - charged == row.balance_after
    assert account.held == 0
    assert audit_accounts() == []
    return row


def assert_nothing_charged(holder: KeyHolder, *, balance_before: int) -> None:
    account = holder.account
    assert usage_rows(account) == []
    assert account.balance == balance_before
    assert account.held == 0
    assert not Hold.objects.filter(account=account).exists()
    assert audit_accounts() == []


def test_completion_charges_ledger_and_reports_charge_in_headers_and_usage(
    client: openai.OpenAI, key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance

    response = client.chat.completions.with_raw_response.create(
        model=DEMO_MODEL, messages=MESSAGES
    )
    completion = response.parse()

    charged = int(response.headers["X-Points-Charged"])
    row = assert_charged_once(
        key_holder, balance_before=balance_before, charged=charged
    )
    assert int(response.headers["X-Points-Remaining"]) == key_holder.account.available
    assert completion.choices[0].message.content == demo_answer(QUESTION)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == row.prompt_tokens
    assert completion.usage.prompt_tokens == expected_prompt_tokens()
    assert completion.usage.completion_tokens == row.completion_tokens
    assert completion.usage.completion_tokens == expected_completion_tokens()
    assert completion.usage.total_tokens == row.total_tokens
    assert completion.usage.model_extra["points"] == {
        "charged": charged,
        "remaining": key_holder.account.available,
    }


def test_completion_stores_no_conversation_by_default(
    client: openai.OpenAI, key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance

    completion = client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)

    assert Conversation.objects.count() == 0
    assert Message.objects.count() == 0
    assert completion.usage is not None
    assert_charged_once(
        key_holder,
        balance_before=balance_before,
        charged=completion.usage.model_extra["points"]["charged"],
    )


def test_completion_with_store_keeps_the_exchange_as_a_conversation(
    client: openai.OpenAI, key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance

    completion = client.chat.completions.create(
        model=DEMO_MODEL, messages=MESSAGES, store=True
    )

    assert completion.usage is not None
    row = assert_charged_once(
        key_holder,
        balance_before=balance_before,
        charged=completion.usage.model_extra["points"]["charged"],
    )
    conversation = Conversation.objects.get()
    assert conversation.owner_id == key_holder.user.pk
    question, answer = conversation.messages.order_by("pk")
    assert (question.role, question.content) == ("user", QUESTION)
    assert (answer.role, answer.content) == ("assistant", demo_answer(QUESTION))
    assert answer.transaction_id == row.pk
    assert answer.points_charged == -row.amount


def test_streamed_completion_ends_with_usage_chunk_matching_ledger(
    client: openai.OpenAI, key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance

    with client.chat.completions.create(
        model=DEMO_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)

    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices
    )
    *content_chunks, finish_chunk, usage_chunk = chunks
    assert len(content_chunks) > 2
    assert finish_chunk.choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    usage = usage_chunk.usage
    assert usage is not None
    points = usage.model_extra["points"]
    row = assert_charged_once(
        key_holder, balance_before=balance_before, charged=points["charged"]
    )
    assert points["remaining"] == key_holder.account.available
    assert text == demo_answer(QUESTION)
    assert count_tokens(text, DEMO_MODEL) == row.completion_tokens
    assert usage.completion_tokens == row.completion_tokens
    assert usage.prompt_tokens == row.prompt_tokens == expected_prompt_tokens()
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_usage_row_records_the_api_key_that_paid(
    client: openai.OpenAI, key_holder: KeyHolder, stream: bool
) -> None:
    if stream:
        with client.chat.completions.create(
            model=DEMO_MODEL, messages=MESSAGES, stream=True
        ) as chunks:
            list(chunks)
    else:
        client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)

    (row,) = usage_rows(key_holder.account)
    assert row.api_key_id == key_holder.key.pk


def test_invalid_key_raises_authentication_error_and_charges_nothing(
    make_client: Callable[[str], openai.OpenAI], key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance
    client = make_client("eora_" + "a" * 12 + "_" + "b" * 43)

    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert_nothing_charged(key_holder, balance_before=balance_before)


def test_balance_below_minimal_turn_raises_402_and_charges_nothing(
    client: openai.OpenAI,
    key_holder: KeyHolder,
    staff_user: User,
    settings: Settings,
) -> None:
    # Given: one point short of the prompt plus the shortest answer allowed.
    minimal_turn = POINTS_PER_TOKEN * (
        expected_prompt_tokens() + settings.CHAT_MIN_COMPLETION_TOKENS
    )
    account = key_holder.account
    adjust(
        account=account,
        delta=-(account.balance - (minimal_turn - 1)),
        reason="test",
        by_user=staff_user,
    )

    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)

    error = raised.value
    assert error.status_code == 402
    assert isinstance(error.body, dict)
    assert error.body["code"] == "insufficient_points"
    assert error.body["type"] == "insufficient_quota"
    assert error.body["available"] == minimal_turn - 1
    assert error.body["required"] == minimal_turn
    assert_nothing_charged(key_holder, balance_before=minimal_turn - 1)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": MESSAGES, "n": 2}, "n"),
        (
            {
                "messages": MESSAGES,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "lookup", "parameters": {}},
                    }
                ],
            },
            "tools",
        ),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, "messages"),
    ],
    ids=["no-messages", "n-2", "tools", "last-not-user"],
)
def test_unsupported_body_raises_bad_request_and_charges_nothing(
    client: openai.OpenAI,
    key_holder: KeyHolder,
    fields: dict[str, Any],
    param: str,
) -> None:
    balance_before = key_holder.account.balance

    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=DEMO_MODEL, **fields)

    assert raised.value.param == param
    assert_nothing_charged(key_holder, balance_before=balance_before)


def test_unknown_model_raises_not_found_and_charges_nothing(
    client: openai.OpenAI, key_holder: KeyHolder
) -> None:
    balance_before = key_holder.account.balance

    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert raised.value.code == "model_not_found"
    assert_nothing_charged(key_holder, balance_before=balance_before)


def test_models_lists_the_configured_models(
    client: openai.OpenAI, key_holder: KeyHolder, settings: Settings
) -> None:
    settings.LLM_MODELS = [DEMO_MODEL, "eora-demo-large"]
    balance_before = key_holder.account.balance

    models = client.models.list()

    assert [model.id for model in models] == [DEMO_MODEL, "eora-demo-large"]
    assert_nothing_charged(key_holder, balance_before=balance_before)
