"""Chat metrics: each turn is counted once, by outcome and endpoint, and the
billed tokens and points equal the ledger's chat_usage rows.

Counters belong to the process, so each test compares two scrapes of /metrics.
"""

import asyncio
import json
import uuid
from collections import Counter
from contextlib import aclosing, suppress
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db.models import Sum
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from accounts.api_keys import create_api_key
from chat.providers import Completion
from chat.services import PreparedTurn, TurnRequest, prepare_turn
from chat.streaming import Delta, complete_turn, stream_turn
from common.metrics import Endpoint
from points.exceptions import InsufficientPoints
from points.models import RefusalDay, Transaction, TransactionType
from points.services import adjust
from tests.chat.fakes import ScriptedProvider
from tests.prometheus import TOKEN, Samples, scrape, value

TURNS = "eora_chat_turns_total"
TOKENS = "eora_chat_billed_tokens_total"
POINTS = "eora_chat_points_charged_total"
LATENCY_COUNT = "eora_chat_provider_latency_seconds_count"
FIRST_TOKEN_COUNT = "eora_chat_time_to_first_token_seconds_count"


@pytest.fixture(autouse=True)
def metrics_on(settings: Settings) -> None:
    settings.METRICS_TOKEN = TOKEN


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def turns_grown(before: Samples, after: Samples) -> Counter:
    """Return how many turns each (endpoint, outcome) gained between scrapes."""
    grown_by = Counter()
    for (name, labels), count in after.items():
        if name == TURNS and count != before.get((name, labels), 0.0):
            key = (dict(labels)["endpoint"], dict(labels)["outcome"])
            grown_by[key] = count - before.get((name, labels), 0.0)
    return grown_by


def drain(user, staff_user) -> None:
    account = user.points_account
    adjust(
        account=account, delta=5 - account.balance, reason="test", by_user=staff_user
    )


def post_json(client: Client, url: str, body: dict, **headers: str):
    return client.post(
        url, json.dumps(body), content_type="application/json", headers=headers
    )


async def streamed(url: str, body: dict, *, user=None, **headers: str) -> bytes:
    client = AsyncClient()
    if user is not None:
        await client.aforce_login(user)
    response = await client.post(
        url, json.dumps(body), content_type="application/json", headers=headers
    )
    assert response.status_code == 200
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.mark.django_db(transaction=True)
def test_counters_equal_the_ledger_after_turns_through_every_endpoint(
    make_user, staff_user
) -> None:
    # given a signed-in user, an API key's user and a user without points
    person, key_owner, poor = make_user(), make_user(), make_user()
    secret = create_api_key(user=key_owner, name="metrics")[1]
    bearer = {"Authorization": f"Bearer {secret}"}
    drain(poor, staff_user)
    page = Client()
    page.force_login(person)
    before = scrape()

    # when turns go through /api/chat (JSON, streamed), /v1 (JSON, streamed), the
    # page's form, and a turn is refused for lack of points
    assert post_json(page, "/api/chat", {"message": "hello"}).status_code == 200
    async_to_sync(streamed)("/api/chat", {"message": "hi", "stream": True}, user=person)
    v1_body = {"model": "eora-demo", "messages": [{"role": "user", "content": "hey"}]}
    assert (
        post_json(Client(), "/v1/chat/completions", v1_body, **bearer).status_code
        == 200
    )
    async_to_sync(streamed)(
        "/v1/chat/completions", {**v1_body, "stream": True}, **bearer
    )
    sent = page.post("/chat/send/", {"message": "hello", "turn_key": uuid.uuid4().hex})
    assert sent.status_code == 302
    refused = Client()
    refused.force_login(poor)
    assert post_json(refused, "/api/chat", {"message": "hello"}).status_code == 402
    after = scrape()

    # then every turn is counted once, where it came in
    assert turns_grown(before, after) == {
        ("api_chat", "complete"): 2,
        ("v1", "complete"): 2,
        ("page", "complete"): 1,
        ("api_chat", "refused"): 1,
    }
    rows = Transaction.objects.filter(type=TransactionType.CHAT_USAGE)
    assert rows.count() == 5
    assert RefusalDay.objects.aggregate(n=Sum("count"))["n"] == 1
    # and the billed tokens and points equal the ledger's rows, model by model
    by_model = rows.values("model").annotate(
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        amount=Sum("amount"),
    )
    assert {row["model"] for row in by_model} == {"eora-demo"}
    for row in by_model:
        model = row["model"]
        assert grown(before, after, TOKENS, model=model, kind="prompt") == row["prompt"]
        assert (
            grown(before, after, TOKENS, model=model, kind="completion")
            == row["completion"]
        )
        assert grown(before, after, POINTS, model=model) == -row["amount"]
        # and each answer was timed, to its first token and to its end
        assert grown(before, after, LATENCY_COUNT, model=model) == 5
        assert grown(before, after, FIRST_TOKEN_COUNT, model=model) == 5


def run(turn: PreparedTurn, provider, *, stop_after=None):
    """Consume a turn's events; stop (as a departing client does) after N deltas."""

    async def consume() -> None:
        deltas = 0
        async with aclosing(stream_turn(turn, provider)) as events:
            async for event in events:
                deltas += isinstance(event, Delta)
                if stop_after is not None and deltas == stop_after:
                    break

    async_to_sync(consume)()


class SilentProvider(ScriptedProvider):
    """A provider whose whole answer never comes."""

    async def complete(self, **request: Any) -> Completion:
        self.calls.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable: nothing sets the event")


async def leave_before_the_answer(turn: PreparedTurn, provider) -> None:
    """Ask for a JSON answer, then cancel it (as a departing client does)."""
    answer = asyncio.ensure_future(complete_turn(turn, provider))
    for _turn in range(1000):
        if provider.calls:
            break
        await asyncio.sleep(0)
    assert provider.calls, "the provider was never asked"
    answer.cancel()
    with suppress(asyncio.CancelledError):
        await answer
    assert answer.cancelled()


def usage_totals() -> tuple[int, int, int]:
    totals = Transaction.objects.filter(type=TransactionType.CHAT_USAGE).aggregate(
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        amount=Sum("amount"),
    )
    return totals["prompt"] or 0, totals["completion"] or 0, -(totals["amount"] or 0)


def charged_grown(before: Samples, after: Samples) -> tuple[int, int, int]:
    return (
        int(grown(before, after, TOKENS, model="eora-demo", kind="prompt")),
        int(grown(before, after, TOKENS, model="eora-demo", kind="completion")),
        int(grown(before, after, POINTS, model="eora-demo")),
    )


def test_provider_failure_counts_a_failed_turn_and_charges_nothing(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))
    before = scrape()

    run(turn, ScriptedProvider(["One ", "two"], fail_after=1))

    after = scrape()
    assert turns_grown(before, after) == {("api_chat", "failed"): 1}
    assert charged_grown(before, after) == (0, 0, 0) == usage_totals()
    assert grown(before, after, LATENCY_COUNT, model="eora-demo") == 0


def test_client_leaving_mid_stream_counts_a_partial_turn_as_charged(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi", endpoint=Endpoint.V1))
    before = scrape()

    run(turn, ScriptedProvider(["One ", "two ", "three"]), stop_after=2)

    after = scrape()
    assert turns_grown(before, after) == {("v1", "partial"): 1}
    assert charged_grown(before, after) == usage_totals() != (0, 0, 0)


def test_client_leaving_before_the_answer_counts_an_abandoned_turn(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi", endpoint=Endpoint.PAGE))
    before = scrape()

    # a JSON answer delivers nothing until the end: the client leaves meanwhile
    async_to_sync(leave_before_the_answer)(turn, SilentProvider(["One ", "two"]))

    after = scrape()
    assert turns_grown(before, after) == {("page", "abandoned"): 1}
    assert charged_grown(before, after) == (0, 0, 0) == usage_totals()


def test_refusal_repeated_by_its_idempotency_key_counts_once(user, staff_user) -> None:
    drain(user, staff_user)
    request = TurnRequest(user=user, message="hi", idempotency_key="turn-1")
    before = scrape()

    for _attempt in range(2):
        with pytest.raises(InsufficientPoints):
            prepare_turn(request)

    after = scrape()
    assert turns_grown(before, after) == {("api_chat", "refused"): 1}
    assert RefusalDay.objects.aggregate(n=Sum("count"))["n"] == 1


def test_turn_repeated_by_its_idempotency_key_counts_once(user) -> None:
    client = Client()
    client.force_login(user)
    before = scrape()

    for _attempt in range(2):
        response = post_json(
            client, "/api/chat", {"message": "hello"}, Idempotency_Key="turn-1"
        )
        assert response.status_code == 200

    after = scrape()
    assert turns_grown(before, after) == {("api_chat", "complete"): 1}
    assert charged_grown(before, after) == usage_totals()
