"""Every change of a points balance.

Each function runs in one `transaction.atomic()`, locks the account row first
(`SELECT ... FOR NO KEY UPDATE` on PostgreSQL; SQLite's IMMEDIATE transactions
serialise writers instead), computes the new figures under that lock and writes
the ledger row with them. Nothing else in the project writes `Account`,
`Transaction` or `Hold`.

A call with an `idempotency_key` records what it did; the same key with the same
request gets the first result back and changes nothing, the same key with another
request raises `IdempotencyConflict`, and a refusal for lack of points is
remembered and repeated.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from points.exceptions import (
    HoldExpired,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidArgument,
)
from points.models import (
    Account,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Transaction,
    TransactionType,
)
from points.pricing import Rates, Usage, completion_tokens_affordable, cost_of

logger = logging.getLogger(__name__)

MAX_POINTS = 10**15
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Client keys of chat turns live in their own namespace of the account's keys, as
# a digest, so that the namespace does not count against the client's 255.
TURN_KEY_NAMESPACE = "turn:"
# No answer is this long; a reported count above it is not a count.
MAX_REPORTED_TOKENS = 10**9
SIGNUP_BONUS_KEY = "signup-bonus"
CREDIT_TYPES = {
    TransactionType.SIGNUP_BONUS,
    TransactionType.TOP_UP,
    TransactionType.REFUND,
}
DEBIT_TYPES = {TransactionType.CHAT_USAGE}

# Ledger descriptions, rendered in the service's default language when written.
CREDIT_DESCRIPTIONS = {
    TransactionType.SIGNUP_BONUS: gettext_noop("Sign-up bonus (%(points)s points)"),
    TransactionType.TOP_UP: gettext_noop("Points top-up (%(points)s points)"),
    TransactionType.REFUND: gettext_noop("Refund (%(points)s points)"),
}
USAGE_DESCRIPTION = gettext_noop(
    "Chat usage (tokens: %(total)d, prompt: %(prompt)d, completion: %(completion)d)"
)
DEBIT_DESCRIPTION = gettext_noop("Points used (%(points)s points)")
ADJUSTMENT_DESCRIPTION = gettext_noop("Adjustment by staff: %(reason)s")


# Validation -------------------------------------------------------------------


def _require_points(
    value: object, *, name: str = "amount", signed: bool = False
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(
            gettext("%(name)s must be a whole number of points, not %(value)r.")
            % {"name": name, "value": value}
        )
    if value == 0 or (value < 0 and not signed):
        raise InvalidAmount(
            gettext("%(name)s must be greater than zero, not %(value)d.")
            % {"name": name, "value": value}
            if not signed
            else gettext("%(name)s must not be zero.") % {"name": name}
        )
    if abs(value) > MAX_POINTS:
        raise InvalidAmount(
            gettext("%(name)s must be at most %(limit)d points.")
            % {"name": name, "limit": MAX_POINTS}
        )
    return value


def _require_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise InvalidArgument(gettext("An idempotency key must be a non-empty string."))
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgument(
            gettext("An idempotency key must be at most %(limit)d characters.")
            % {"limit": MAX_IDEMPOTENCY_KEY_LENGTH}
        )
    return key


def _require_tokens(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(
            gettext("%(name)s must be a whole number of tokens, not %(value)r.")
            % {"name": name, "value": value}
        )
    return value


def _require_type(value: object, allowed: set[str]) -> str:
    if value not in allowed:
        raise InvalidArgument(
            gettext("%(value)r is not a transaction type allowed here.")
            % {"value": value}
        )
    return str(value)


def _require_account(account: object) -> Account:
    if not isinstance(account, Account) or account.pk is None:
        raise InvalidArgument(gettext("A saved points account is required."))
    return account


def _require_hold(hold: object) -> Hold:
    if not isinstance(hold, Hold) or hold.pk is None:
        raise InvalidArgument(gettext("A saved hold is required."))
    return hold


# Locking, idempotency and posting ------------------------------------------


def _lock_account(account_id: int) -> Account:
    return Account.objects.select_for_update(no_key=True).get(pk=account_id)


def _end_overdue_holds(account: Account) -> datetime:
    """End the locked account's overdue holds, so they reserve nothing; return now."""
    now = timezone.now()
    if account.held > 0:
        _expire_overdue_holds(account, now)
    return now


def _lock_hold(hold_id: int) -> Hold:
    return Hold.objects.select_for_update(no_key=True).get(pk=hold_id)


def request_hash(operation: str, **fields: object) -> str:
    """Return a fingerprint of a request, to tell a retry from a different call."""
    canonical = json.dumps(
        {"operation": operation, **fields},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _find_record(
    account: Account, key: str, fingerprint: str
) -> IdempotencyRecord | None:
    record = (
        IdempotencyRecord.objects.select_related("transaction", "hold")
        .filter(account=account, key=key)
        .first()
    )
    if record is not None and record.request_hash != fingerprint:
        raise IdempotencyConflict()
    return record


def _remember(
    account: Account,
    key: str | None,
    fingerprint: str,
    operation: str,
    **outcome: object,
) -> None:
    """Record what a keyed call made, so that its repeat returns the same."""
    if key is not None:
        IdempotencyRecord.objects.create(
            account=account,
            key=key,
            request_hash=fingerprint,
            operation=operation,
            **outcome,
        )


def _replay_refusal(record: IdempotencyRecord) -> None:
    if record.refused_required is not None:
        raise InsufficientPoints(
            available=record.refused_available, required=record.refused_required
        )


def _refuse(
    account: Account, key: str | None, fingerprint: str, operation: str, required: int
) -> InsufficientPoints:
    _remember(
        account,
        key,
        fingerprint,
        operation,
        refused_available=account.available,
        refused_required=required,
    )
    return InsufficientPoints(available=account.available, required=required)


def _default_language_text(message: str, **values: object) -> str:
    # Ledger descriptions are records, written once in the service's language.
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(message) % values


def _post(
    account: Account,
    *,
    type: str,
    amount: int,
    now: datetime,
    description: str,
    **fields: object,
) -> Transaction:
    """Append one ledger row and apply it to the locked account."""
    account.balance += amount
    account.version += 1
    if amount > 0:
        account.total_earned += amount
    else:
        account.total_spent -= amount
    account.last_updated = now
    account.save(
        update_fields=[
            "balance",
            "held",
            "version",
            "total_earned",
            "total_spent",
            "last_updated",
        ]
    )
    return Transaction.objects.create(
        account=account,
        type=type,
        amount=amount,
        balance_after=account.balance,
        version=account.version,
        description=description[:255],
        created_at=now,
        **fields,
    )


def _expire_overdue_holds(account: Account, now: datetime) -> int:
    """End the locked account's open holds that are past their expiry."""
    overdue = list(
        Hold.objects.select_for_update(no_key=True)
        .filter(account=account, status=HoldStatus.OPEN, expires_at__lte=now)
        .values_list("pk", "amount")
    )
    if not overdue:
        return 0
    Hold.objects.filter(pk__in=[pk for pk, _ in overdue]).update(
        status=HoldStatus.EXPIRED, ended_at=now
    )
    account.held -= sum(amount for _, amount in overdue)
    account.save(update_fields=["held"])
    return len(overdue)


# Public services ----------------------------------------------------------------


def open_account(*, user: object) -> Account:
    """Return the user's points account, creating it with its sign-up bonus once."""
    with transaction.atomic():
        account, _created = Account.objects.get_or_create(user=user)
        bonus = settings.SIGNUP_BONUS_POINTS
        if bonus > 0:
            grant(
                account=account,
                amount=bonus,
                type=TransactionType.SIGNUP_BONUS,
                idempotency_key=SIGNUP_BONUS_KEY,
            )
            account.refresh_from_db()
    return account


def grant(
    *,
    account: Account,
    amount: int,
    type: str = TransactionType.TOP_UP,
    description: str = "",
    idempotency_key: str | None = None,
) -> Transaction:
    """Add points to an account (sign-up bonus, top-up, refund)."""
    _require_account(account)
    amount = _require_points(amount)
    type = _require_type(type, CREDIT_TYPES)
    key = _require_key(idempotency_key)
    if not description:
        description = _credit_description(type, amount)
    fingerprint = request_hash("grant", amount=amount, type=type)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            return record.transaction
        entry = _post(
            locked,
            type=type,
            amount=amount,
            now=timezone.now(),
            description=description,
            idempotency_key=key,
            request_hash=fingerprint if key else "",
        )
        _remember(locked, key, fingerprint, "grant", transaction=entry)
        return entry


def _credit_description(type: str, amount: int) -> str:
    return _default_language_text(CREDIT_DESCRIPTIONS[type], points=f"{amount:,}")


def usage_description(usage: Usage) -> str:
    return _default_language_text(
        USAGE_DESCRIPTION,
        total=usage.total_tokens,
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
    )


def _usage_fields(usage: Usage | None) -> dict[str, object]:
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "model": usage.model,
        "prompt_rate": usage.rates.prompt,
        "completion_rate": usage.rates.completion,
    }


def debit(
    *,
    account: Account,
    amount: int,
    type: str = TransactionType.CHAT_USAGE,
    usage: Usage | None = None,
    description: str = "",
    idempotency_key: str | None = None,
) -> Transaction:
    """Take points from an account's available balance at once, without a hold."""
    _require_account(account)
    amount = _require_points(amount)
    type = _require_type(type, DEBIT_TYPES)
    key = _require_key(idempotency_key)
    if not description:
        description = (
            usage_description(usage)
            if usage is not None
            else _default_language_text(DEBIT_DESCRIPTION, points=f"{amount:,}")
        )
    fingerprint = request_hash(
        "debit", amount=amount, type=type, **_usage_fields(usage)
    )
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            _replay_refusal(record)
            return record.transaction
        now = _end_overdue_holds(locked)
        if amount > locked.available:
            refusal = _refuse(locked, key, fingerprint, "debit", amount)
        else:
            entry = _post(
                locked,
                type=type,
                amount=-amount,
                now=now,
                description=description,
                idempotency_key=key,
                request_hash=fingerprint if key else "",
                **_usage_fields(usage),
            )
            _remember(locked, key, fingerprint, "debit", transaction=entry)
            return entry
    raise refusal


def adjust(
    *,
    account: Account,
    delta: int,
    reason: str,
    by_user: object,
    idempotency_key: str | None = None,
) -> Transaction:
    """Change a balance by hand (staff), recording who did it and why."""
    _require_account(account)
    delta = _require_points(delta, name="delta", signed=True)
    key = _require_key(idempotency_key)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgument(gettext("A reason is required for an adjustment."))
    if by_user is None or getattr(by_user, "pk", None) is None:
        raise InvalidArgument(
            gettext("An adjustment must name the staff user making it.")
        )
    reason = reason.strip()
    fingerprint = request_hash("adjust", delta=delta, reason=reason, by=by_user.pk)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            _replay_refusal(record)
            return record.transaction
        now = _end_overdue_holds(locked)
        if delta < 0 and -delta > locked.available:
            refusal = _refuse(locked, key, fingerprint, "adjust", -delta)
        else:
            entry = _post(
                locked,
                type=TransactionType.ADMIN_ADJUSTMENT,
                amount=delta,
                now=now,
                description=_default_language_text(
                    ADJUSTMENT_DESCRIPTION, reason=reason
                ),
                created_by=by_user,
                reason=reason,
                idempotency_key=key,
                request_hash=fingerprint if key else "",
            )
            _remember(locked, key, fingerprint, "adjust", transaction=entry)
            return entry
    raise refusal


def place_hold(
    *,
    account: Account,
    amount: int,
    description: str = "",
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
    ttl_seconds: int | None = None,
) -> Hold:
    """Reserve points for a request in flight, until it is captured or released.

    With `request_fingerprint` the caller says what makes two requests the same
    (a request whose hold amount depends on the balance); otherwise the amount
    does. A repeat returns the first hold.
    """
    _require_account(account)
    amount = _require_points(amount)
    key = _require_key(idempotency_key)
    if ttl_seconds is None:
        ttl_seconds = settings.HOLD_TTL_SECONDS
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int)
        or ttl_seconds < 1
    ):
        raise InvalidArgument(
            gettext("A hold needs a lifetime of at least one second.")
        )
    fingerprint = _hold_fingerprint(amount, ttl_seconds, request_fingerprint)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            _replay_refusal(record)
            return record.hold
        now = _end_overdue_holds(locked)
        if amount > locked.available:
            refusal = _refuse(locked, key, fingerprint, "place_hold", amount)
        else:
            hold = Hold.objects.create(
                account=locked,
                amount=amount,
                description=description[:255],
                expires_at=now + timedelta(seconds=ttl_seconds),
                idempotency_key=key,
                request_hash=fingerprint if key else "",
                created_at=now,
            )
            locked.held += amount
            locked.save(update_fields=["held"])
            _remember(locked, key, fingerprint, "place_hold", hold=hold)
            return hold
    raise refusal


def _hold_fingerprint(
    amount: int, ttl_seconds: int, request_fingerprint: str | None
) -> str:
    if request_fingerprint is not None:
        return request_hash("place_hold", request=request_fingerprint)
    return request_hash("place_hold", amount=amount, ttl=ttl_seconds)


def account_of(*, user: object) -> Account:
    """Return the user's account, opening it (with its bonus) if it is missing."""
    try:
        return Account.objects.get(user=user)
    except Account.DoesNotExist:
        return open_account(user=user)


def _lock_open_hold(hold: Hold) -> tuple[Account, Hold]:
    # Account first, then hold: every path takes the locks in this order.
    account = _lock_account(hold.account_id)
    locked = _lock_hold(hold.pk)
    if locked.status == HoldStatus.EXPIRED:
        raise HoldExpired(status=locked.status)
    if locked.status != HoldStatus.OPEN:
        raise HoldNotOpen(status=locked.status)
    return account, locked


def capture_hold(
    *,
    hold: Hold,
    actual_cost: int,
    usage: Usage | None = None,
    description: str = "",
    api_key: object | None = None,
) -> Transaction:
    """Charge a hold at its real cost, at most its amount, and release the rest.

    Cost above the hold is not taken; it is kept on the row as `uncharged_points`.
    """
    _require_hold(hold)
    actual_cost = _require_points(actual_cost, name="actual_cost")
    if not description:
        description = (
            usage_description(usage)
            if usage is not None
            else _default_language_text(DEBIT_DESCRIPTION, points=f"{actual_cost:,}")
        )
    with transaction.atomic():
        account, locked = _lock_open_hold(hold)
        # The clock is read once the locks are held: a capture that waited for
        # them must not charge a hold whose expiry passed meanwhile.
        now = timezone.now()
        if locked.expires_at <= now:
            # Past its expiry the hold belongs to the expirer, even if it has not
            # run yet: charging it now would race `expire_holds`.
            raise HoldExpired(status=HoldStatus.EXPIRED)
        charged = min(actual_cost, locked.amount)
        account.held -= locked.amount
        entry = _post(
            account,
            type=TransactionType.CHAT_USAGE,
            amount=-charged,
            now=now,
            description=description,
            hold=locked,
            uncharged_points=actual_cost - charged,
            api_key=api_key,
            **_usage_fields(usage),
        )
        locked.status = HoldStatus.CAPTURED
        locked.captured_amount = charged
        locked.ended_at = now
        locked.save(update_fields=["status", "captured_amount", "ended_at"])
    hold.status, hold.captured_amount, hold.ended_at = (
        locked.status,
        locked.captured_amount,
        locked.ended_at,
    )
    return entry


def release_hold(*, hold: Hold) -> Hold:
    """End a hold without charging anything."""
    _require_hold(hold)
    with transaction.atomic():
        account, locked = _lock_open_hold(hold)
        now = timezone.now()
        account.held -= locked.amount
        account.save(update_fields=["held"])
        locked.status = HoldStatus.RELEASED
        locked.ended_at = now
        locked.save(update_fields=["status", "ended_at"])
    hold.status, hold.ended_at = locked.status, locked.ended_at
    return locked


def expire_holds(*, now: datetime | None = None, account: Account | None = None) -> int:
    """End every open hold past its expiry (of one account, if given); count them."""
    now = now or timezone.now()
    overdue = Hold.objects.filter(status=HoldStatus.OPEN, expires_at__lte=now)
    if account is not None:
        overdue = overdue.filter(account=account)
    account_ids = (
        overdue.order_by("account_id").values_list("account_id", flat=True).distinct()
    )
    expired = 0
    for account_id in list(account_ids):
        with transaction.atomic():
            expired += _expire_overdue_holds(_lock_account(account_id), now)
    return expired


# Chat turns ------------------------------------------------------------------------
#
# A turn is `reserve` (one short transaction), the model's generation outside any
# transaction, then `settle` (one short transaction). Every rule about a turn's
# points is here: how far the answer may go, what is held, which token counts are
# billed, the cap at the hold, and what happens to a turn that outlived its hold.


class UsageSource(StrEnum):
    PROVIDER = "provider"
    COUNTED = "counted"


@dataclass(frozen=True)
class TokenCount:
    """Tokens of a turn: our own count, or the provider's report (unchecked)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Reservation:
    """What `reserve` placed: the hold and how long the answer may be."""

    hold: Hold
    model: str
    rates: Rates
    prompt_tokens: int
    completion_limit: int
    # True when the idempotency key was used before: `hold` is the first call's.
    replayed: bool = False


@dataclass(frozen=True)
class Settlement:
    """What `settle` charged, for which usage, and what it could not charge."""

    entry: Transaction | None
    usage: Usage
    source: UsageSource
    charged: int
    uncharged: int
    remaining: int


def turn_key(idempotency_key: str) -> str:
    """Return the ledger's key for a client's idempotency key of a turn."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass"))
    return TURN_KEY_NAMESPACE + digest.hexdigest()


def reserve(
    *,
    account: Account,
    model: str,
    rates: Rates,
    prompt_tokens: int,
    completion_tokens: int,
    minimum_completion_tokens: int,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    description: str = "",
    ttl_seconds: int | None = None,
) -> Reservation:
    """Hold the most a turn may cost, under one lock of the account.

    The answer may run to `completion_tokens`; when the available points cannot
    pay for that, the limit is lowered to what they pay for, and below
    `minimum_completion_tokens` the turn is refused with `InsufficientPoints`.
    A repeated `idempotency_key` returns the first call's hold (`replayed`) or
    raises its refusal again; with another `request_fingerprint` it raises
    `IdempotencyConflict`.
    """
    _require_account(account)
    prompt_tokens = _require_tokens(prompt_tokens, "prompt_tokens")
    requested = _require_points(completion_tokens, name="completion_tokens")
    minimum = min(
        _require_points(minimum_completion_tokens, name="minimum_completion_tokens"),
        requested,
    )
    client_key = _require_key(idempotency_key)
    key = turn_key(client_key) if client_key is not None else None
    ttl = settings.HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    fingerprint = request_hash("reserve", request=request_fingerprint)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            _replay_refusal(record)
            return Reservation(
                hold=record.hold,
                model=model,
                rates=rates,
                prompt_tokens=prompt_tokens,
                completion_limit=requested,
                replayed=True,
            )
        now = _end_overdue_holds(locked)
        limit = requested
        if cost_of(
            prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates
        ) > (locked.available):
            limit = completion_tokens_affordable(
                points=locked.available, prompt_tokens=prompt_tokens, rates=rates
            )
        if limit < minimum:
            required = cost_of(
                prompt_tokens=prompt_tokens, completion_tokens=minimum, rates=rates
            )
            refusal = _refuse(locked, key, fingerprint, "reserve", required)
        else:
            amount = cost_of(
                prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates
            )
            hold = Hold.objects.create(
                account=locked,
                amount=amount,
                description=description[:255],
                expires_at=now + timedelta(seconds=ttl),
                idempotency_key=key,
                request_hash=fingerprint if key else "",
                created_at=now,
            )
            locked.held += amount
            locked.save(update_fields=["held"])
            _remember(locked, key, fingerprint, "reserve", hold=hold)
            return Reservation(
                hold=hold,
                model=model,
                rates=rates,
                prompt_tokens=prompt_tokens,
                completion_limit=limit,
            )
    raise refusal


def _trusted(reported: TokenCount | None) -> TokenCount | None:
    """Return the provider's report if both counts are whole numbers >= 0."""
    if reported is None:
        return None
    for value in (reported.prompt_tokens, reported.completion_tokens):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= MAX_REPORTED_TOKENS
        ):
            logger.warning("Ignoring provider usage %r: not a token count.", reported)
            return None
    return reported


def metered_usage(
    reservation: Reservation,
    *,
    counted: TokenCount,
    reported: TokenCount | None,
    delivered_in_full: bool,
) -> tuple[Usage, UsageSource]:
    """Return the usage a turn is billed for, and where its counts come from.

    The provider's report, when the whole answer was delivered and the report is
    a real count; else our own count of the prompt and of the text delivered.
    """
    trusted = _trusted(reported) if delivered_in_full else None
    tokens, source = (
        (trusted, UsageSource.PROVIDER)
        if trusted is not None
        else (counted, UsageSource.COUNTED)
    )
    usage = Usage(
        _require_tokens(tokens.prompt_tokens, "prompt_tokens"),
        _require_tokens(tokens.completion_tokens, "completion_tokens"),
        reservation.model,
        reservation.rates,
    )
    return usage, source


def settle(
    *,
    reservation: Reservation,
    counted: TokenCount,
    reported: TokenCount | None = None,
    delivered_in_full: bool = True,
    api_key: object | None = None,
) -> Settlement:
    """Charge a turn for its usage, at most what was held, and end its hold.

    `counted` is our own count of the prompt and of the text the client got;
    `reported` the provider's usage, if it sent one; `delivered_in_full` is
    False when the client left (or the answer stopped) before the end. Cost
    above the hold is not charged and is recorded as `uncharged_points`. A turn
    that outlived its hold is charged the same, capped at the hold and at what
    is available now.
    """
    usage, source = metered_usage(
        reservation,
        counted=counted,
        reported=reported,
        delivered_in_full=delivered_in_full,
    )
    cost = usage.cost
    with transaction.atomic():
        account = _lock_account(reservation.hold.account_id)
        hold = _lock_hold(reservation.hold.pk)
        now = timezone.now()
        if hold.status == HoldStatus.OPEN and hold.expires_at > now:
            charged = min(cost, hold.amount)
            account.held -= hold.amount
            hold.status = HoldStatus.CAPTURED
        elif hold.status in (HoldStatus.OPEN, HoldStatus.EXPIRED):
            # The turn outlived its hold: end the account's overdue holds (this
            # one among them), then charge what was agreed, as far as it goes.
            _end_overdue_holds(account)
            charged = min(cost, hold.amount, account.available)
            hold.status = HoldStatus.EXPIRED
        else:
            raise HoldNotOpen(status=hold.status)
        entry = None
        if charged > 0:
            entry = _post(
                account,
                type=TransactionType.CHAT_USAGE,
                amount=-charged,
                now=now,
                description=usage_description(usage),
                hold=hold,
                uncharged_points=cost - charged,
                api_key=api_key,
                **_usage_fields(usage),
            )
        else:
            account.save(update_fields=["held"])
            logger.warning(
                "Turn of hold %s outlived it with nothing available; "
                "%d points not charged.",
                hold.pk,
                cost,
            )
        hold.captured_amount = charged
        hold.ended_at = hold.ended_at or now
        hold.save(update_fields=["status", "captured_amount", "ended_at"])
    return Settlement(
        entry=entry,
        usage=usage,
        source=source,
        charged=charged,
        uncharged=cost - charged,
        remaining=account.available,
    )
