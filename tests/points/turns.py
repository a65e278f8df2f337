"""Chat turns written the way the chat writes them: reserve, then settle."""

from decimal import Decimal

from accounts.models import ApiKey
from points import services
from points.models import Account, Transaction
from points.pricing import Rates
from points.services import TokenCount

TURN_RATES = Rates(Decimal("2"), Decimal("2.5"))


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
