"""Random sequences of ledger operations, checked step by step against a model.

The model is a handful of integers and a dict of holds; after every step the
account in the database must agree with it and `audit_accounts()` must be empty.
Chat turns (`reserve` then `settle`), tier changes and a daily spending limit
mix with grants, holds, expiries and free-point day changes.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.services import register_user
from points import services
from points.audit import audit_accounts
from points.exceptions import (
    HoldExpired,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    SpendingLimitReached,
)
from points.models import (
    Account,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Tier,
    Transaction,
)
from points.pricing import (
    Rates,
    completion_tokens_affordable,
    cost_of,
    discounted,
    list_cost_affordable,
)
from tests.conftest import TEST_PASSWORD

START = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
SIGNUP_BONUS = 1_000
ADJUSTMENT_REASON = "stateful test"
# Amounts around the balance, so that refusals for lack of points are common.
AMOUNTS = st.integers(min_value=1, max_value=1_500)
HOLD_AMOUNTS = st.integers(min_value=1, max_value=600)
DELTAS = st.integers(min_value=-1_500, max_value=1_500).filter(bool)
COSTS = st.integers(min_value=1, max_value=2_000)
TTLS = st.sampled_from([1, 30, 300, 900, 3_600])
PAUSES = st.integers(min_value=1, max_value=300)
BAD_AMOUNTS = [0, -1, -250, 1.5, 2.0, True, False, "10", 10**15 + 1]
BAD_DELTAS = [0, 1.5, -2.0, True, False, "-10", -(10**15 + 1)]
KEYED_OPERATIONS = ["grant", "debit", "place_hold", "adjust"]
TURN_MODEL = "eora-stateful"
TURN_RATES = Rates(prompt=Decimal("0.5"), completion=Decimal("1.5"))
TURN_TTL = 600
PROMPT_TOKENS = st.integers(min_value=0, max_value=400)
COMPLETION_TOKENS = st.integers(min_value=0, max_value=900)
DISCOUNTS = st.sampled_from([1, 1_000, 2_500, 3_333, 9_999])
DAILY_LIMITS = st.integers(min_value=1, max_value=2_000)

_machines = itertools.count(1)


@dataclass
class ModelHold:
    amount: int
    expires_at: datetime
    status: str = HoldStatus.OPEN
    free_amount: int = 0


@dataclass(frozen=True)
class Refusal:
    available: int
    required: int


@dataclass(frozen=True)
class KeyedCall:
    operation: str
    size: int
    ttl_seconds: int
    # The pk of the transaction or hold made, or the figures of the refusal.
    outcome: int | Refusal


@dataclass
class ModelTurn:
    reservation: services.Reservation
    discount_bps: int


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    turns = Bundle("turns")

    def __init__(self) -> None:
        super().__init__()
        # Each example runs in its own savepoint, rolled back at teardown, so that
        # examples (and Hypothesis's shrinking) never see each other's rows.
        self.example = transaction.atomic()
        self.example.__enter__()
        self.clock = time_machine.travel(START, tick=False)
        self.coordinates = self.clock.start()
        self.now = START
        number = next(_machines)
        user = register_user(
            email=f"stateful{number}@example.com", password=TEST_PASSWORD
        )
        self.staff = register_user(
            email=f"stateful-staff{number}@example.com",
            password=TEST_PASSWORD,
            is_staff=True,
        )
        self.account = user.points_account
        # With daily free points, the account's first lock (by the sign-up
        # bonus) tops them up first.
        self.allowance = settings.DAILY_FREE_POINTS
        self.balance = SIGNUP_BONUS + self.allowance
        self.held = 0
        self.free_balance = self.allowance
        self.free_held = 0
        self.total_earned = SIGNUP_BONUS + self.allowance
        self.total_spent = 0
        self.version = 1 + (1 if self.allowance else 0)
        self.model_holds: dict[int, ModelHold] = {}
        self.keyed_calls: dict[str, KeyedCall] = {}
        self.keys = itertools.count(1)
        self.model_turns: dict[int, ModelTurn] = {}
        # The tier's discount and its end (None: no end), and the daily limit.
        self.tier_bps = 0
        self.tier_ends_at: datetime | None = None
        self.daily_limit: int | None = None
        # (local day, points) of each chat_usage row (turns, debits, captures):
        # with the open holds, what the daily limit counts.
        self.usage_charges: list[tuple[object, int]] = []

    def teardown(self) -> None:
        try:
            self.clock.stop()
        finally:
            transaction.set_rollback(True)
            self.example.__exit__(None, None, None)

    # The model ----------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.balance - self.held

    @property
    def free_available(self) -> int:
        return self.free_balance - self.free_held

    @property
    def paid_available(self) -> int:
        return self.available - self.free_available

    def post(self, amount: int) -> None:
        self.balance += amount
        self.version += 1
        if amount > 0:
            self.total_earned += amount
        else:
            self.total_spent -= amount

    def new_key(self, keyed: bool) -> str | None:
        return f"key-{next(self.keys)}" if keyed else None

    def remember(
        self,
        key: str | None,
        operation: str,
        size: int,
        outcome: int | Refusal,
        ttl_seconds: int = 60,
    ) -> None:
        if key is not None:
            self.keyed_calls[key] = KeyedCall(operation, size, ttl_seconds, outcome)

    def expire_overdue_model_holds(self) -> int:
        due = [
            hold
            for hold in self.model_holds.values()
            if hold.status == HoldStatus.OPEN and hold.expires_at <= self.now
        ]
        for hold in due:
            hold.status = HoldStatus.EXPIRED
            self.held -= hold.amount
            self.free_held -= hold.free_amount
        return len(due)

    @property
    def discount_bps(self) -> int:
        if self.tier_ends_at is not None and self.tier_ends_at <= self.now:
            return 0
        return self.tier_bps

    def spent_today(self) -> int:
        """Return what the daily limit counts: today's usage and the open holds."""
        today = timezone.localdate(self.now)
        return sum(points for day, points in self.usage_charges if day == today) + sum(
            hold.amount
            for hold in self.model_holds.values()
            if hold.status == HoldStatus.OPEN
        )

    def move_clock(self, to: datetime) -> None:
        """Move the clock; on a new day (KST), refresh the free points at once.

        So that no other rule meets a day change still to be applied.
        """
        new_day = timezone.localdate(to) != timezone.localdate(self.now)
        self.now = to
        self.coordinates.move_to(to)
        if new_day and (self.allowance or self.free_available):
            services.refresh_free_points(account=self.account)
            expired = self.free_available
            if expired:
                self.free_balance -= expired
                self.post(-expired)
            top_up = self.allowance - self.free_balance
            if top_up > 0:
                self.free_balance += top_up
                self.post(top_up)

    # Talking to the services ----------------------------------------------------

    def call(
        self, operation: str, size: int, key: str | None, ttl_seconds: int = 60
    ) -> Transaction | Hold:
        if operation == "grant":
            return services.grant(
                account=self.account, amount=size, idempotency_key=key
            )
        if operation == "debit":
            return services.debit(
                account=self.account, amount=size, idempotency_key=key
            )
        if operation == "place_hold":
            return services.place_hold(
                account=self.account,
                amount=size,
                idempotency_key=key,
                ttl_seconds=ttl_seconds,
            )
        return services.adjust(
            account=self.account,
            delta=size,
            reason=ADJUSTMENT_REASON,
            by_user=self.staff,
            idempotency_key=key,
        )

    def snapshot(self) -> tuple[object, ...]:
        """Return everything a call that should change nothing must leave as is."""
        account = Account.objects.get(pk=self.account.pk)
        return (
            account.balance,
            account.held,
            account.total_earned,
            account.total_spent,
            account.version,
            Transaction.objects.filter(account=self.account).count(),
            IdempotencyRecord.objects.filter(account=self.account).count(),
            sorted(
                Hold.objects.filter(account=self.account).values_list("pk", "status")
            ),
        )

    def refuse_for_lack_of_points(
        self, operation: str, size: int, required: int, key: str | None, ttl: int = 60
    ) -> None:
        with pytest.raises(InsufficientPoints) as refused:
            self.call(operation, size, key, ttl)
        assert (refused.value.available, refused.value.required) == (
            self.available,
            required,
        )
        self.remember(key, operation, size, Refusal(self.available, required), ttl)

    # Rules ----------------------------------------------------------------------

    @rule(amount=AMOUNTS, keyed=st.booleans())
    def grant(self, amount: int, keyed: bool) -> None:
        key = self.new_key(keyed)
        entry = services.grant(account=self.account, amount=amount, idempotency_key=key)
        self.post(amount)
        assert (entry.amount, entry.balance_after, entry.version) == (
            amount,
            self.balance,
            self.version,
        )
        self.remember(key, "grant", amount, entry.pk)

    @rule(amount=AMOUNTS, keyed=st.booleans())
    def debit(self, amount: int, keyed: bool) -> None:
        key = self.new_key(keyed)
        # A debit ends the account's overdue holds first, even when refused.
        self.expire_overdue_model_holds()
        if amount > self.available:
            self.refuse_for_lack_of_points("debit", amount, amount, key)
            return
        entry = services.debit(account=self.account, amount=amount, idempotency_key=key)
        # Free points first.
        self.free_balance -= min(amount, self.free_available)
        self.post(-amount)
        self.usage_charges.append((timezone.localdate(self.now), amount))
        assert (entry.amount, entry.balance_after) == (-amount, self.balance)
        self.remember(key, "debit", amount, entry.pk)

    @rule(target=holds, amount=HOLD_AMOUNTS, ttl=TTLS, keyed=st.booleans())
    def place_hold(self, amount: int, ttl: int, keyed: bool) -> object:
        key = self.new_key(keyed)
        # Placing a hold ends the account's overdue holds first, even when refused.
        self.expire_overdue_model_holds()
        if amount > self.available:
            self.refuse_for_lack_of_points("place_hold", amount, amount, key, ttl)
            return multiple()
        hold = services.place_hold(
            account=self.account, amount=amount, idempotency_key=key, ttl_seconds=ttl
        )
        free_amount = min(amount, self.free_available)
        self.model_holds[hold.pk] = ModelHold(
            amount, self.now + timedelta(seconds=ttl), free_amount=free_amount
        )
        self.held += amount
        self.free_held += free_amount
        assert Hold.objects.get(pk=hold.pk).free_amount == free_amount
        self.remember(key, "place_hold", amount, hold.pk, ttl)
        return hold.pk

    @rule(hold_pk=holds, cost=COSTS)
    def capture_hold(self, hold_pk: int, cost: int) -> None:
        hold = self.model_holds[hold_pk]
        if hold.status != HoldStatus.OPEN:
            with pytest.raises(HoldNotOpen) as refused:
                services.capture_hold(
                    hold=Hold.objects.get(pk=hold_pk), actual_cost=cost
                )
            assert refused.value.status == hold.status
            assert isinstance(refused.value, HoldExpired) == (
                hold.status == HoldStatus.EXPIRED
            )
            return
        if hold.expires_at <= self.now:
            # Overdue but not yet expired: it belongs to the expirer already.
            with pytest.raises(HoldExpired):
                services.capture_hold(
                    hold=Hold.objects.get(pk=hold_pk), actual_cost=cost
                )
            return
        entry = services.capture_hold(
            hold=Hold.objects.get(pk=hold_pk), actual_cost=cost
        )
        charged = min(cost, hold.amount)
        self.held -= hold.amount
        self.free_held -= hold.free_amount
        self.free_balance -= min(charged, hold.free_amount)
        self.post(-charged)
        self.usage_charges.append((timezone.localdate(self.now), charged))
        hold.status = HoldStatus.CAPTURED
        assert (entry.amount, entry.uncharged_points, entry.hold_id) == (
            -charged,
            cost - charged,
            hold_pk,
        )
        assert Hold.objects.get(pk=hold_pk).captured_amount == charged

    @rule(hold_pk=holds)
    def release_hold(self, hold_pk: int) -> None:
        hold = self.model_holds[hold_pk]
        if hold.status != HoldStatus.OPEN:
            with pytest.raises(HoldNotOpen) as refused:
                services.release_hold(hold=Hold.objects.get(pk=hold_pk))
            assert refused.value.status == hold.status
            return
        services.release_hold(hold=Hold.objects.get(pk=hold_pk))
        self.held -= hold.amount
        self.free_held -= hold.free_amount
        hold.status = HoldStatus.RELEASED

    @rule(hold_pk=holds, extra_seconds=st.integers(min_value=0, max_value=120))
    def expire_past_hold(self, hold_pk: int, extra_seconds: int) -> None:
        due_at = self.model_holds[hold_pk].expires_at
        self.move_clock(max(self.now, due_at + timedelta(seconds=extra_seconds)))

        expired = services.expire_holds()

        assert expired == self.expire_overdue_model_holds()

    @rule(extra_seconds=st.integers(min_value=0, max_value=2))
    def next_day(self, extra_seconds: int) -> None:
        # 00:00 KST (15:00 UTC) of the next day, give or take a second or two.
        midnight = (self.now - timedelta(hours=15)).replace(
            hour=15, minute=0, second=0, microsecond=0
        ) + timedelta(days=1)
        self.move_clock(max(self.now, midnight + timedelta(seconds=extra_seconds)))

    @rule(seconds=PAUSES)
    def let_time_pass(self, seconds: int) -> None:
        # No expirer runs, so overdue holds stay open until something ends them.
        self.move_clock(self.now + timedelta(seconds=seconds))

    @rule(delta=DELTAS, keyed=st.booleans())
    def adjust(self, delta: int, keyed: bool) -> None:
        key = self.new_key(keyed)
        self.expire_overdue_model_holds()
        if delta < 0 and -delta > self.available:
            self.refuse_for_lack_of_points("adjust", delta, -delta, key)
            return
        entry = services.adjust(
            account=self.account,
            delta=delta,
            reason=ADJUSTMENT_REASON,
            by_user=self.staff,
            idempotency_key=key,
        )
        # Staff take paid points first, then free ones.
        self.free_balance += min(0, delta + self.paid_available)
        self.post(delta)
        assert (entry.amount, entry.created_by_id) == (delta, self.staff.pk)
        self.remember(key, "adjust", delta, entry.pk)

    @precondition(lambda self: self.keyed_calls)
    @rule(data=st.data())
    def repeat_keyed_call(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.keyed_calls)), label="key")
        call = self.keyed_calls[key]
        before = self.snapshot()

        if isinstance(call.outcome, Refusal):
            with pytest.raises(InsufficientPoints) as refused:
                self.call(call.operation, call.size, key, call.ttl_seconds)
            assert refused.value.available == call.outcome.available
            assert refused.value.required == call.outcome.required
        else:
            result = self.call(call.operation, call.size, key, call.ttl_seconds)
            assert result.pk == call.outcome

        assert self.snapshot() == before

    @precondition(lambda self: self.keyed_calls)
    @rule(data=st.data(), operation=st.sampled_from(KEYED_OPERATIONS))
    def reuse_key_for_another_request(
        self, data: st.DataObject, operation: str
    ) -> None:
        key = data.draw(st.sampled_from(sorted(self.keyed_calls)), label="key")
        call = self.keyed_calls[key]
        size = call.size * 2 if operation == call.operation else abs(call.size)
        before = self.snapshot()

        with pytest.raises(IdempotencyConflict):
            self.call(operation, size, key)

        assert self.snapshot() == before

    @rule(
        operation=st.sampled_from(["grant", "debit", "place_hold"]),
        amount=st.sampled_from(BAD_AMOUNTS),
        keyed=st.booleans(),
    )
    def refuse_bad_amount(self, operation: str, amount: object, keyed: bool) -> None:
        before = self.snapshot()
        with pytest.raises(InvalidAmount):
            self.call(operation, amount, self.new_key(keyed))  # type: ignore[arg-type]
        assert self.snapshot() == before

    @rule(delta=st.sampled_from(BAD_DELTAS), keyed=st.booleans())
    def refuse_bad_delta(self, delta: object, keyed: bool) -> None:
        before = self.snapshot()
        with pytest.raises(InvalidAmount):
            self.call("adjust", delta, self.new_key(keyed))  # type: ignore[arg-type]
        assert self.snapshot() == before

    @rule(hold_pk=holds, cost=st.sampled_from(BAD_AMOUNTS))
    def refuse_bad_capture_cost(self, hold_pk: int, cost: object) -> None:
        before = self.snapshot()
        with pytest.raises(InvalidAmount):
            services.capture_hold(hold=Hold.objects.get(pk=hold_pk), actual_cost=cost)  # type: ignore[arg-type]
        assert self.snapshot() == before

    # Chat turns, tiers and the daily limit ----------------------------------------

    @rule(
        target=turns,
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=st.integers(min_value=1, max_value=900),
        minimum=st.integers(min_value=1, max_value=200),
    )
    def reserve_turn(
        self, prompt_tokens: int, completion_tokens: int, minimum: int
    ) -> object:
        # A turn ends the account's overdue holds first, even when refused.
        services.expire_holds()
        self.expire_overdue_model_holds()
        bps = self.discount_bps
        minimum = min(minimum, completion_tokens)
        budget = list_cost_affordable(self.available, bps)
        limit = completion_tokens
        if (
            cost_of(
                prompt_tokens=prompt_tokens, completion_tokens=limit, rates=TURN_RATES
            )
            > budget
        ):
            limit = completion_tokens_affordable(
                points=budget, prompt_tokens=prompt_tokens, rates=TURN_RATES
            )
        before = self.snapshot()

        def reserve() -> services.Reservation:
            return services.reserve(
                account=self.account,
                model=TURN_MODEL,
                rates=TURN_RATES,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                minimum_completion_tokens=minimum,
                ttl_seconds=TURN_TTL,
            )

        if limit < minimum:
            required = discounted(
                cost_of(
                    prompt_tokens=prompt_tokens,
                    completion_tokens=minimum,
                    rates=TURN_RATES,
                ),
                bps,
            )[1]
            with pytest.raises(InsufficientPoints) as refused:
                reserve()
            assert (refused.value.available, refused.value.required) == (
                self.available,
                required,
            )
            assert self.snapshot() == before
            return multiple()
        amount = discounted(
            cost_of(
                prompt_tokens=prompt_tokens, completion_tokens=limit, rates=TURN_RATES
            ),
            bps,
        )[1]
        spent = self.spent_today()
        if self.daily_limit is not None and spent + amount > self.daily_limit:
            with pytest.raises(SpendingLimitReached) as refused:
                reserve()
            assert (refused.value.limit, refused.value.spent) == (
                self.daily_limit,
                spent,
            )
            assert self.snapshot() == before
            return multiple()
        reservation = reserve()
        hold = reservation.hold
        free_amount = min(amount, self.free_available)
        assert (hold.amount, hold.free_amount, hold.discount_bps) == (
            amount,
            free_amount,
            bps,
        )
        assert reservation.completion_limit == limit
        self.model_holds[hold.pk] = ModelHold(
            amount, self.now + timedelta(seconds=TURN_TTL), free_amount=free_amount
        )
        self.model_turns[hold.pk] = ModelTurn(reservation, bps)
        self.held += amount
        self.free_held += free_amount
        return hold.pk

    @rule(
        hold_pk=consumes(turns),
        counted=st.tuples(PROMPT_TOKENS, COMPLETION_TOKENS),
        reported=st.none() | st.tuples(PROMPT_TOKENS, COMPLETION_TOKENS),
        delivered_in_full=st.booleans(),
        outlive=st.booleans(),
    )
    def settle_turn(
        self,
        hold_pk: int,
        counted: tuple[int, int],
        reported: tuple[int, int] | None,
        delivered_in_full: bool,
        outlive: bool,
    ) -> None:
        turn = self.model_turns.pop(hold_pk)
        hold = self.model_holds[hold_pk]
        if outlive:
            self.move_clock(max(self.now, hold.expires_at + timedelta(seconds=1)))
        tokens = reported if reported is not None and delivered_in_full else counted
        list_cost = cost_of(
            prompt_tokens=tokens[0], completion_tokens=tokens[1], rates=TURN_RATES
        )
        discount, cost = discounted(list_cost, turn.discount_bps)

        settlement = services.settle(
            reservation=turn.reservation,
            counted=services.TokenCount(*counted),
            reported=services.TokenCount(*reported) if reported else None,
            delivered_in_full=delivered_in_full,
        )

        if hold.status == HoldStatus.OPEN and hold.expires_at > self.now:
            charged = min(cost, hold.amount)
            free_charged = min(charged, hold.free_amount)
            self.held -= hold.amount
            self.free_held -= hold.free_amount
            hold.status = HoldStatus.CAPTURED
        else:
            # The turn outlived its hold: charged what is available, at most.
            self.expire_overdue_model_holds()
            charged = min(cost, hold.amount, self.available)
            free_charged = min(charged, self.free_available)
        if charged:
            self.free_balance -= free_charged
            self.post(-charged)
            self.usage_charges.append((timezone.localdate(self.now), charged))
        assert (
            settlement.charged,
            settlement.uncharged,
            settlement.list_cost,
            settlement.discount,
            settlement.remaining,
        ) == (charged, cost - charged, list_cost, discount, self.available)
        if charged:
            entry = settlement.entry
            assert (entry.amount, entry.list_cost, entry.discount) == (
                -charged,
                list_cost,
                discount,
            )
        else:
            assert settlement.entry is None

    @rule(
        discount_bps=DISCOUNTS,
        ends_in=st.none() | st.integers(min_value=1, max_value=3_600),
    )
    def set_tier(self, discount_bps: int, ends_in: int | None) -> None:
        tier, _created = Tier.objects.get_or_create(
            code=f"stateful-{discount_bps}",
            defaults={"name": f"{discount_bps} bps", "discount_bps": discount_bps},
        )
        ends_at = self.now + timedelta(seconds=ends_in) if ends_in else None
        before = self.snapshot()

        services.set_tier(
            account=self.account,
            tier=tier,
            reason=ADJUSTMENT_REASON,
            by_user=self.staff,
            ends_at=ends_at,
        )

        # A tier moves no points, and open turns keep the discount they had.
        assert self.snapshot() == before
        self.tier_bps, self.tier_ends_at = discount_bps, ends_at

    @rule()
    def end_tier(self) -> None:
        before = self.snapshot()
        services.set_tier(
            account=self.account,
            tier=None,
            reason=ADJUSTMENT_REASON,
            by_user=self.staff,
        )
        assert self.snapshot() == before
        self.tier_bps, self.tier_ends_at = 0, None

    @rule(daily=st.none() | DAILY_LIMITS)
    def set_daily_limit(self, daily: int | None) -> None:
        before = self.snapshot()
        services.set_spending_limits(account=self.account, daily=daily, monthly=None)
        assert self.snapshot() == before
        self.daily_limit = daily

    # Invariants -----------------------------------------------------------------

    @invariant()
    def account_matches_model(self) -> None:
        account = Account.objects.get(pk=self.account.pk)
        assert (
            account.balance,
            account.held,
            account.available,
            account.total_earned,
            account.total_spent,
            account.version,
            account.free_balance,
            account.free_held,
            account.daily_limit,
        ) == (
            self.balance,
            self.held,
            self.available,
            self.total_earned,
            self.total_spent,
            self.version,
            self.free_balance,
            self.free_held,
            self.daily_limit,
        )

    @invariant()
    def tier_matches_model(self) -> None:
        account = Account.objects.select_related("tier").get(pk=self.account.pk)
        active = account.tier if account.tier_active_at(self.now) else None
        assert (active.discount_bps if active else 0) == self.discount_bps

    @invariant()
    def holds_match_model(self) -> None:
        statuses = dict(
            Hold.objects.filter(account=self.account).values_list("pk", "status")
        )
        assert statuses == {pk: hold.status for pk, hold in self.model_holds.items()}

    @invariant()
    def ledger_passes_audit(self) -> None:
        assert audit_accounts() == []


@pytest.mark.django_db
@pytest.mark.parametrize("daily_free_points", [0, 400])
def test_ledger_agrees_with_model_after_any_sequence_of_operations(
    daily_free_points: int,
) -> None:
    with override_settings(
        SIGNUP_BONUS_POINTS=SIGNUP_BONUS, DAILY_FREE_POINTS=daily_free_points
    ):
        run_ledger_machine()


def run_ledger_machine() -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=hypothesis_settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
            ],
        ),
    )
