"""A ledger for the usage tests, written through the real endpoints and services,
and the figures the usage reads must show, computed from its rows.

Turns at 23:59 and 00:01 in Asia/Seoul fall on different days (and months);
daily free points pay for part of them; one turn's settle comes after its hold
expired and is capped; a refund is credited; one API key is revoked.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.api_keys import create_api_key, revoke_api_key
from accounts.models import ApiKey, User
from points import services
from points.models import Account, Transaction, TransactionType
from points.pricing import Rates
from points.services import TokenCount

DAILY_FREE = 50
MODELS = ["eora-demo", "eora-demo-large"]
# 2026-11-30 (a Monday) 23:59 and 2026-12-01 00:01 in Asia/Seoul.
LAST_MINUTE = datetime(2026, 11, 30, 14, 59, tzinfo=UTC)
FIRST_MINUTE = datetime(2026, 11, 30, 15, 1, tzinfo=UTC)
NEXT_WEEK = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
TODAY = datetime(2026, 12, 9, 3, 0, tzinfo=UTC)
SINCE = date(2026, 11, 25)
UNTIL = date(2026, 12, 9)
UNCHARGED_MODEL = "gpt-4o"


@dataclass(frozen=True)
class SeededLedger:
    user: User
    account: Account
    key: ApiKey
    revoked_key: ApiKey


def chat(client: Client, message: str, *, model: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.post(
        "/api/chat",
        json.dumps({"message": message, "model": model}),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 200, response.content
    return response.json()


def seed_ledger(user: User, settings: Any) -> SeededLedger:
    """Write the ledger, with DAILY_FREE_POINTS and the instant demo models set on
    pytest-django's `settings` for the test."""
    settings.DAILY_FREE_POINTS = DAILY_FREE
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = MODELS
    settings.DEMO_STREAM_DELAY_MS = 0
    web = Client()
    web.force_login(user)
    api = Client()
    key, secret = create_api_key(user=user, name="CI server")
    old_key, old_secret = create_api_key(user=user, name="Old laptop")
    with time_machine.travel(LAST_MINUTE, tick=False):
        chat(web, "Hello at the last minute", model=MODELS[0])
        chat(api, "A key's turn before midnight", model=MODELS[1], key=secret)
    with time_machine.travel(FIRST_MINUTE, tick=False):
        chat(web, "Hello at the first minute", model=MODELS[0])
        chat(web, "And once more", model=MODELS[1])
        chat(api, "Old laptop says hi", model=MODELS[0], key=old_secret)
        account = services.account_of(user=user)
        services.grant(account=account, amount=321, type=TransactionType.REFUND)
        # A turn whose hold expired while the model answered: capped at the hold.
        reservation = services.reserve(
            account=account,
            model=UNCHARGED_MODEL,
            rates=Rates(prompt=Decimal(2), completion=Decimal(2)),
            prompt_tokens=26,
            completion_tokens=16,
            minimum_completion_tokens=4,
            ttl_seconds=3,
        )
        services.expire_holds(now=timezone.now() + timedelta(seconds=4))
        settled = services.settle(
            reservation=reservation,
            counted=TokenCount(26, 16),
            reported=TokenCount(10, 500),
        )
        assert settled.uncharged > 0
    revoke_api_key(user=user, key_id=old_key.pk)
    with time_machine.travel(NEXT_WEEK, tick=False):
        chat(api, "Next week", model=MODELS[1], key=secret)
        chat(web, "Next week from the page", model=MODELS[0])
    return SeededLedger(
        user=user,
        account=Account.objects.get(user=user),
        key=key,
        revoked_key=ApiKey.objects.get(pk=old_key.pk),
    )


def local_day(row: Transaction) -> date:
    return row.created_at.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def ledger_rows(account: Account, since: date, until: date) -> list[Transaction]:
    return [
        row
        for row in Transaction.objects.filter(account=account).order_by("version")
        if since <= local_day(row) <= until
    ]


def figures_of(rows: list[Transaction]) -> dict[str, int]:
    """Return what the usage reads show for these rows' chat turns."""
    turns = [row for row in rows if row.type == TransactionType.CHAT_USAGE]
    return {
        "points": -sum(row.amount for row in turns),
        "free_points": -sum(row.free_amount for row in turns),
        "prompt_tokens": sum(row.prompt_tokens or 0 for row in turns),
        "completion_tokens": sum(row.completion_tokens or 0 for row in turns),
        "turns": len(turns),
        "uncharged_points": sum(row.uncharged_points for row in turns),
    }


def credits_of(rows: list[Transaction]) -> dict[str, int]:
    """Return the signed sum of every type but chat turns."""
    sums = {
        choice.value: 0
        for choice in TransactionType
        if choice is not TransactionType.CHAT_USAGE
    }
    for row in rows:
        if row.type != TransactionType.CHAT_USAGE:
            sums[row.type] += row.amount
    return sums
