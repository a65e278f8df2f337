"""Points per token and the cost of a turn, in Decimal arithmetic only."""

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from common.expiring_cache import ExpiringCache
from points.exceptions import InvalidArgument
from points.models import ModelRate

MINIMUM_COST = 1


@dataclass(frozen=True)
class Rates:
    prompt: Decimal
    completion: Decimal


def default_rates() -> Rates:
    per_token = Decimal(settings.POINTS_PER_TOKEN)
    return Rates(prompt=per_token, completion=per_token)


# Each model's row of the admin's table, or None for a model without one, as
# this process read it in the last MODEL_RATE_CACHE_SECONDS.
TABLE_RATES: ExpiringCache[str, Rates | None] = ExpiringCache(
    lifetime=lambda: settings.MODEL_RATE_CACHE_SECONDS
)
UNKNOWN = object()


def rates_for(model: str) -> Rates:
    """Return the model's rates from the admin's table, else POINTS_PER_TOKEN.

    A rate changed in this process is used at once; one changed in another
    process within MODEL_RATE_CACHE_SECONDS.
    """
    rates = TABLE_RATES.get(model, UNKNOWN)
    if rates is UNKNOWN:
        generation = TABLE_RATES.generation
        rates = _table_rates(model)
        TABLE_RATES.put(model, rates, read_in=generation)
    return default_rates() if rates is None else rates


def _table_rates(model: str) -> Rates | None:
    row = ModelRate.objects.filter(model=model).values_list(
        "prompt_rate", "completion_rate"
    )
    for prompt_rate, completion_rate in row:
        return Rates(prompt=prompt_rate, completion=completion_rate)
    return None


def on_rate_changed(sender: type[ModelRate], **kwargs: Any) -> None:
    """Forget the cached rates when the admin's table changes."""
    # Now, for this process's next turn; after commit too, since a turn in
    # between may still read, and keep, the table as it was before the commit.
    TABLE_RATES.clear()
    transaction.on_commit(TABLE_RATES.clear)


def _token_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{name} must be a non-negative integer, not {value!r}.")
    return value


def cost_of(*, prompt_tokens: int, completion_tokens: int, rates: Rates) -> int:
    """Return floor(prompt x rate + completion x rate), and at least one point."""
    prompt_tokens = _token_count("prompt_tokens", prompt_tokens)
    completion_tokens = _token_count("completion_tokens", completion_tokens)
    exact = prompt_tokens * rates.prompt + completion_tokens * rates.completion
    return max(MINIMUM_COST, int(exact.to_integral_value(rounding=ROUND_FLOOR)))


def completion_tokens_affordable(
    *, points: int, prompt_tokens: int, rates: Rates
) -> int:
    """Return how many completion tokens `points` pay for after the prompt."""
    left = Decimal(points) - prompt_tokens * rates.prompt
    if left <= 0:
        return 0
    return int((left / rates.completion).to_integral_value(rounding=ROUND_FLOOR))


BASIS_POINTS = 10_000


def discounted(list_cost: int, discount_bps: int) -> tuple[int, int]:
    """Return (discount, charged cost) of a list cost under a tier discount.

    discount = floor(list x bps / 10000); charged = list - discount, and at least
    one point for a cost above zero. Whole points, the same rule at hold and
    at capture.
    """
    discount = list_cost * discount_bps // BASIS_POINTS
    charged = list_cost - discount
    if list_cost > 0 and charged < MINIMUM_COST:
        charged = MINIMUM_COST
    return list_cost - charged, charged


def purchase_bonus(points: int, bonus_bps: int) -> int:
    """Return a tier's bonus on an order of `points`: floor(points x bps / 10000)."""
    return points * bonus_bps // BASIS_POINTS


def list_cost_affordable(points: int, discount_bps: int) -> int:
    """Return the largest list cost whose discounted cost `points` pay for."""
    if discount_bps == 0 or points <= 0:
        return points
    list_cost = points * BASIS_POINTS // (BASIS_POINTS - discount_bps)
    while list_cost > 0 and discounted(list_cost, discount_bps)[1] > points:
        list_cost -= 1
    while discounted(list_cost + 1, discount_bps)[1] <= points:
        list_cost += 1
    return list_cost


@dataclass(frozen=True)
class Usage:
    """The tokens of one metered request and the rates it is charged at."""

    prompt_tokens: int
    completion_tokens: int
    model: str
    rates: Rates

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> int:
        return cost_of(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            rates=self.rates,
        )


@dataclass(frozen=True)
class Quote:
    """What a turn may cost before it is sent: the range, and whether it is paid."""

    prompt_tokens: int
    completion_limit: int
    minimum_points: int
    maximum_points: int
    available: int
    # The range before the tier discount, and the discount (0 without a tier).
    list_minimum_points: int
    list_maximum_points: int
    discount_bps: int = 0

    @property
    def affordable(self) -> bool:
        """Return whether the available points pay for a full-length answer."""
        return self.maximum_points <= self.available


def quote(
    *,
    prompt_tokens: int,
    completion_limit: int,
    rates: Rates,
    available: int,
    discount_bps: int = 0,
) -> Quote:
    """Return the cost range of a turn: the prompt alone up to a full answer.

    The same arithmetic as `points.services.reserve`, which holds the maximum:
    the list cost, then the tier discount through `discounted`.
    """
    list_minimum = cost_of(
        prompt_tokens=prompt_tokens, completion_tokens=0, rates=rates
    )
    list_maximum = cost_of(
        prompt_tokens=prompt_tokens, completion_tokens=completion_limit, rates=rates
    )
    return Quote(
        prompt_tokens=prompt_tokens,
        completion_limit=completion_limit,
        minimum_points=discounted(list_minimum, discount_bps)[1],
        maximum_points=discounted(list_maximum, discount_bps)[1],
        available=available,
        list_minimum_points=list_minimum,
        list_maximum_points=list_maximum,
        discount_bps=discount_bps,
    )


def discounted_rate(rate: Decimal, discount_bps: int) -> Decimal:
    """Return a per-token rate with the tier discount taken off, for display."""
    return rate * (BASIS_POINTS - discount_bps) / BASIS_POINTS


def reversal_for(
    *, points: int, bonus: int, amount: int, taken_back: int
) -> tuple[int, int]:
    """Return the points and bonus to take back when `taken_back` of the `amount`
    paid for them is refunded or disputed: floor(points x taken_back / amount),
    the same for the bonus, so that partial refunds add up to a full one."""
    taken_back = min(max(taken_back, 0), amount)
    return points * taken_back // amount, bonus * taken_back // amount
