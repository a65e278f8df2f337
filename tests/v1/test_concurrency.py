"""Parallel SDK calls with one key: the balance admits exactly as many turns as
it can hold, the rest get 402, and nothing is overspent."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
from pytest_django.fixtures import Settings

from accounts.models import User
from points.audit import audit_accounts
from points.models import Hold, HoldStatus, Transaction
from points.services import adjust
from points.tokens import count_chat_tokens
from tests.v1.conftest import DEMO_MODEL, KeyHolder, usage_rows

THREADS = 10
AFFORDABLE = 3
ANSWER_TOKENS = 40
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hello"}]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_sdk_calls_beyond_balance_get_402_and_never_overspend(
    make_client: Callable[[str], openai.OpenAI],
    key_holder: KeyHolder,
    staff_user: User,
    settings: Settings,
) -> None:
    # Given: every turn holds exactly `per_turn` (min == max answer, so no hold
    # is lowered to fit), the answers stream slowly enough that all turns
    # overlap, and the balance covers three holds and half of a fourth.
    settings.POINTS_PER_TOKEN = Decimal(2)
    settings.CHAT_MAX_COMPLETION_TOKENS = ANSWER_TOKENS
    settings.CHAT_MIN_COMPLETION_TOKENS = ANSWER_TOKENS
    settings.DEMO_STREAM_DELAY_MS = 40
    per_turn = 2 * (count_chat_tokens(MESSAGES, DEMO_MODEL) + ANSWER_TOKENS)
    starting_balance = AFFORDABLE * per_turn + per_turn // 2
    account = key_holder.account
    adjust(
        account=account,
        delta=-(account.balance - starting_balance),
        reason="test",
        by_user=staff_user,
    )
    clients = [make_client(key_holder.secret) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def turn(client: openai.OpenAI) -> tuple[int, dict[str, object]]:
        start.wait()
        try:
            response = client.chat.completions.with_raw_response.create(
                model=DEMO_MODEL, messages=MESSAGES
            )
        except openai.APIStatusError as error:
            assert isinstance(error.body, dict)
            return error.status_code, error.body
        return response.status_code, {
            "charged": int(response.headers["X-Points-Charged"])
        }

    # When
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(turn, clients))

    # Then
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * AFFORDABLE + [402] * (THREADS - AFFORDABLE)
    refusals = [body for status, body in results if status == 402]
    assert {body["code"] for body in refusals} == {"insufficient_points"}
    charged = [body["charged"] for status, body in results if status == 200]
    rows = usage_rows(account)
    assert sorted(-row.amount for row in rows) == sorted(charged)
    assert all(0 < points <= per_turn for points in charged)
    account = key_holder.account
    assert account.balance == starting_balance - sum(charged)
    assert account.held == 0
    assert not Transaction.objects.filter(balance_after__lt=0).exists()
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    captured = Hold.objects.filter(status=HoldStatus.CAPTURED)
    assert captured.count() == AFFORDABLE
    # The turns really overlapped: every hold was placed before the first ended.
    assert max(h.created_at for h in captured) < min(h.ended_at for h in captured)
    assert audit_accounts() == []
