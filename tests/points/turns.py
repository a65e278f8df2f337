"""Ledger rows for tests: chat turns through the services, long histories in bulk."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey
from points import services
from points.models import Account, Transaction, TransactionType
from points.pricing import Rates
from points.services import TokenCount

TURN_RATES = Rates(Decimal("2"), Decimal("2.5"))
# 2 points a token either way: a turn of 26 prompt tokens and at most 16 completion
# tokens holds 84 points.
FLAT_RATES = Rates(prompt=Decimal(2), completion=Decimal(2))


def reserve_turn(account: Account, **overrides: object) -> services.Reservation:
    """Hold a turn of 26 prompt tokens and at most 16 completion tokens."""
    arguments: dict[str, object] = {
        "account": account,
        "model": "gpt-4o",
        "rates": FLAT_RATES,
        "prompt_tokens": 26,
        "completion_tokens": 16,
        "minimum_completion_tokens": 4,
    }
    return services.reserve(**{**arguments, **overrides})


def chat_turn(
    account: Account,
    *,
    model: str = "gpt-4o",
    api_key: ApiKey | None = None,
    prompt_tokens: int = 26,
    completion_tokens: int = 16,
) -> Transaction:
    """Run one turn through the services; return its chat_usage row."""
    reservation = services.reserve(
        account=account,
        model=model,
        rates=TURN_RATES,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        minimum_completion_tokens=1,
        api_key=api_key,
    )
    settlement = services.settle(
        reservation=reservation,
        counted=TokenCount(prompt_tokens, completion_tokens),
        api_key=api_key,
    )
    assert settlement.entry is not None
    return settlement.entry


def seed_history(
    account: Account,
    rows: int,
    *,
    model: str = "gpt-4o-mini",
    api_key: ApiKey | None = None,
) -> None:
    """Append `rows` one-point chat_usage rows to the account's ledger.

    Bulk-inserted: 100,000 service calls take minutes. The rows are a
    consistent ledger (the next versions, each balance_after the last less one),
    the account is brought in line with one update, and the roll-up trigger
    sums the rows as they go in, so the closing audit still passes.
    """
    # An hour apart (over 11 years): on PostgreSQL each roll-up row is then
    # updated 24 times in the transaction, not 100,000 times (slower each time).
    start = timezone.now() - timedelta(hours=rows + 1)
    account.refresh_from_db()
    balance, version = account.balance, account.version
    Transaction.objects.bulk_create(
        (
            Transaction(
                account=account,
                type=TransactionType.CHAT_USAGE,
                amount=-1,
                balance_after=balance - number,
                version=version + number,
                description=f"turn {number}: 안녕하세요, 오늘의 답변입니다",
                prompt_tokens=10,
                completion_tokens=5,
                total_tokens=15,
                model=model,
                api_key=api_key,
                prompt_rate=Decimal("0.0500"),
                completion_rate=Decimal("0.1000"),
                list_cost=1,
                created_at=start + timedelta(hours=number),
            )
            for number in range(1, rows + 1)
        ),
        batch_size=5_000,
    )
    Account.objects.filter(pk=account.pk).update(
        balance=F("balance") - rows,
        version=F("version") + rows,
        total_spent=F("total_spent") + rows,
    )
