import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from points.audit import audit_accounts
from points.models import Account
from points.services import adjust
from points.tokens import count_chat_tokens

THREADS = 10
AFFORDABLE = 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_beyond_balance_get_402_and_never_overspend(
    user: User, staff_user: User, settings
) -> None:
    # Given: every turn holds exactly `per_turn` (no lowering: min == max answer),
    # and the demo answer streams slowly enough that all turns overlap.
    settings.CHAT_MAX_COMPLETION_TOKENS = 40
    settings.CHAT_MIN_COMPLETION_TOKENS = 40
    settings.DEMO_STREAM_DELAY_MS = 40
    message = "hello"
    prompt = count_chat_tokens(
        [
            {"role": "system", "content": settings.CHAT_SYSTEM_PROMPT},
            {"role": "user", "content": message},
        ]
    )
    per_turn = 2 * (prompt + 40)
    account = user.points_account
    adjust(
        account=account,
        delta=-(account.balance - (AFFORDABLE * per_turn + per_turn // 2)),
        reason="test",
        by_user=staff_user,
    )
    start = threading.Barrier(THREADS)

    def turn(_: int) -> tuple[int, dict]:
        client = Client()
        client.force_login(user)
        start.wait()
        try:
            response = client.post(
                "/api/chat",
                json.dumps({"message": message}),
                content_type="application/json",
            )
            return response.status_code, response.json()
        finally:
            connection.close()

    # When
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(turn, range(THREADS)))

    # Then
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * AFFORDABLE + [402] * (THREADS - AFFORDABLE)
    charged = sum(
        body["points_info"]["deducted"] for status, body in results if status == 200
    )
    account = Account.objects.get(pk=account.pk)
    assert account.balance == AFFORDABLE * per_turn + per_turn // 2 - charged
    assert account.balance >= 0
    assert account.held == 0
    assert audit_accounts() == []
