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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import partial
from typing import TypeVar

from django.conf import settings
from django.core.mail import send_mail
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Model, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from points import pipeline
from points.exceptions import (
    HoldExpired,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidArgument,
    SpendingLimitReached,
)
from points.limits import LimitPeriod, period_bounds
from points.models import (
    Account,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    RefusalReason,
    Tier,
    TierChange,
    Transaction,
    TransactionType,
)
from points.pricing import (
    Rates,
    Usage,
    completion_tokens_affordable,
    cost_of,
    discounted,
    list_cost_affordable,
)

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)

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
    TransactionType.BONUS,
    TransactionType.REDEMPTION,
    TransactionType.PAYMENT_REINSTATED,
}
DEBIT_TYPES = {TransactionType.CHAT_USAGE}

# Ledger descriptions, rendered in the service's default language when written.
CREDIT_DESCRIPTIONS = {
    TransactionType.SIGNUP_BONUS: gettext_noop("Sign-up bonus (%(points)s points)"),
    TransactionType.TOP_UP: gettext_noop("Points top-up (%(points)s points)"),
    TransactionType.REFUND: gettext_noop("Refund (%(points)s points)"),
    TransactionType.BONUS: gettext_noop("Bonus points (%(points)s points)"),
    TransactionType.REDEMPTION: gettext_noop("Redemption code (%(points)s points)"),
    TransactionType.PAYMENT_REINSTATED: gettext_noop(
        "Payment reinstated (%(points)s points)"
    ),
}
# Debits that take back a refunded or disputed purchase, and repay a debt.
REVERSAL_DESCRIPTIONS = {
    TransactionType.TOP_UP_REVERSAL: gettext_noop(
        "Purchased points taken back (%(points)s points)"
    ),
    TransactionType.BONUS_REVERSAL: gettext_noop(
        "Bonus points taken back (%(points)s points)"
    ),
}
DEBT_REPAYMENT_DESCRIPTION = gettext_noop("Owed points repaid (%(points)s points)")
USAGE_DESCRIPTION = gettext_noop(
    "Chat usage (tokens: %(total)d, prompt: %(prompt)d, completion: %(completion)d)"
)
DEBIT_DESCRIPTION = gettext_noop("Points used (%(points)s points)")
ADJUSTMENT_DESCRIPTION = gettext_noop("Adjustment by staff: %(reason)s")
DAILY_FREE_DESCRIPTION = gettext_noop("Daily free points (%(points)s points)")
FREE_EXPIRY_DESCRIPTION = gettext_noop("Free points expired (%(points)s points)")


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
#
# The locks, the holds and the ledger rows go through Django's cursor as
# hand-written SQL: on the hot path of a turn (`reserve`, `settle`), building an
# ORM query cost more client time than the round trip it makes (bench/ledger.py).
# The rules stay in Python, under the row locks; the SQL reads, locks and writes
# the figures computed here.


def _for_no_key_update() -> str:
    # SQLite has no row locks: its IMMEDIATE transactions serialise writers instead.
    if connection.features.has_select_for_no_key_update:
        return " FOR NO KEY UPDATE"
    return ""


def _fetch_one(sql: str, params: Sequence[object]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _execute(sql: str, params: Sequence[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _columns(model: type[Model], table: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{table}.{quote(f.column)}" for f in model._meta.concrete_fields)


def _load(model: type[M], values: Sequence[object]) -> M:
    """Return the instance the ORM would make of a row of `_columns(model)`."""
    database = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        converters = database.ops.get_db_converters(column)
        for convert in converters + column.get_db_converters(database):
            value = convert(value, column, database)
        converted.append(value)
    return model.from_db(database.alias, [f.attname for f in fields], converted)


def _insert(row: Model) -> None:
    """Insert a new instance with one `INSERT ... RETURNING id`, as `save()` would.

    In a ledger transaction sending its writes with its COMMIT, the id is set
    when the answers come back (`points.pipeline`).
    """
    database = connections[DEFAULT_DB_ALIAS]
    quote = database.ops.quote_name
    fields = [field for field in row._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {quote(row._meta.db_table)} ({columns})"
        f" VALUES ({placeholders}) RETURNING {quote(row._meta.pk.column)}"
    )
    values = [
        field.get_db_prep_save(field.pre_save(row, True), database) for field in fields
    ]
    if not pipeline.insert_later(row, sql, values):
        (row.pk,) = _fetch_one(sql, values)
    row._state.adding = False
    row._state.db = database.alias


def _lock_account(account_id: int) -> Account:
    """Lock the account and return it, knowing whether it has an overdue hold.

    The same statement asks whether an open hold of the account is past its
    expiry, so that `_end_overdue_holds` sends its UPDATE only when one is: on a
    busy account that is a round trip less while the lock is held. (Holds change
    only under this lock, so the answer holds until it is released; one that
    falls due meanwhile still reserves its points, and is ended next time.)
    """
    # The earliest expiry of the account's open holds, compared with now: in
    # that form (ORDER BY ... LIMIT 1) the statement reads the index of open
    # holds by account and expiry whatever the statistics say; as an EXISTS,
    # statistics gathered while most holds were open made PostgreSQL read every
    # hold the account ever had, on every turn.
    row = _fetch_one(
        f"SELECT {_columns(Account, 'a')}, (SELECT h.expires_at FROM points_hold h"
        " WHERE h.account_id = a.id AND h.status = %s ORDER BY h.expires_at"
        " LIMIT 1) <= %s FROM points_account a WHERE a.id = %s" + _for_no_key_update(),
        [
            HoldStatus.OPEN,
            connection.ops.adapt_datetimefield_value(timezone.now()),
            account_id,
        ],
    )
    if row is None:
        raise Account.DoesNotExist(f"No points account {account_id}.")
    account = _load(Account, row[:-1])
    account._has_overdue_holds = bool(row[-1])
    _refresh_free_points(account)
    return account


def _end_overdue_holds(account: Account) -> datetime:
    """End the locked account's overdue holds, so they reserve nothing; return now."""
    now = timezone.now()
    # An account locked by `_lock_account` knows whether it has one.
    if account.held > 0 and getattr(account, "_has_overdue_holds", True):
        _expire_overdue_holds(account, now)
    return now


def _lock_hold(hold_id: int) -> Hold:
    row = _fetch_one(
        f"SELECT {_columns(Hold, 'h')} FROM points_hold h WHERE h.id = %s"
        + _for_no_key_update(),
        [hold_id],
    )
    if row is None:
        raise Hold.DoesNotExist(f"No hold {hold_id}.")
    return _load(Hold, row)


def _lock_account_and_hold(hold_id: int) -> tuple[Account, Hold]:
    """Lock a hold's account, then the hold, in one statement (in that order)."""
    row = _fetch_one(
        f"SELECT {_columns(Account, 'a')}, {_columns(Hold, 'h')}"
        " FROM points_account a JOIN points_hold h ON h.account_id = a.id"
        " WHERE h.id = %s" + _for_no_key_update(),
        [hold_id],
    )
    if row is None:
        raise Hold.DoesNotExist(f"No hold {hold_id}.")
    split = len(Account._meta.concrete_fields)
    account = _load(Account, row[:split])
    _refresh_free_points(account)
    return account, _load(Hold, row[split:])


def _open_hold(
    account: Account,
    *,
    amount: int,
    description: str,
    expires_at: datetime,
    key: str | None,
    fingerprint: str,
    now: datetime,
    discount_bps: int = 0,
    api_key: object | None = None,
) -> Hold:
    """Place a hold on the locked account: insert it and add it to `held`.

    The hold reserves free points first, then paid points.
    """
    free_amount = min(amount, account.free_available)
    hold = Hold(
        account_id=account.pk,
        amount=amount,
        free_amount=free_amount,
        discount_bps=discount_bps,
        api_key=api_key,
        description=description[:255],
        expires_at=expires_at,
        idempotency_key=key,
        request_hash=fingerprint if key else "",
        created_at=now,
    )
    _insert(hold)
    _execute(
        "UPDATE points_account SET held = held + %s, free_held = free_held + %s"
        " WHERE id = %s",
        [amount, free_amount, account.pk],
    )
    account.held += amount
    account.free_held += free_amount
    return hold


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
        # The record points at the rows the call made: they need their ids.
        pipeline.flush()
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
            available=record.refused_available,
            required=record.refused_required,
            replayed=True,
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
    free_amount: int = 0,
    **fields: object,
) -> Transaction:
    """Append one ledger row and apply it to the locked account.

    `free_amount` is the part of `amount` that moves the free points.
    """
    account.balance += amount
    account.free_balance += free_amount
    account.version += 1
    if amount > 0:
        account.total_earned += amount
    else:
        account.total_spent -= amount
    account.last_updated = now
    _update_alert(account, type=type, amount=amount)
    _execute(
        "UPDATE points_account SET balance = %s, held = %s, free_balance = %s,"
        " free_held = %s, version = %s, total_earned = %s, total_spent = %s,"
        " alert = %s, last_updated = %s WHERE id = %s",
        [
            account.balance,
            account.held,
            account.free_balance,
            account.free_held,
            account.version,
            account.total_earned,
            account.total_spent,
            account.alert,
            connection.ops.adapt_datetimefield_value(now),
            account.pk,
        ],
    )
    entry = Transaction(
        account=account,
        type=type,
        amount=amount,
        free_amount=free_amount,
        balance_after=account.balance,
        version=account.version,
        description=description[:255],
        created_at=now,
        **fields,
    )
    _insert(entry)
    return entry


# Alert threshold ----------------------------------------------------------------------


def _update_alert(account: Account, *, type: str, amount: int) -> None:
    """Set or clear the locked account's alert flag for one ledger row.

    A debit that takes the available points below `alert_below` sets the flag
    and schedules one email; a credit back to the threshold or above clears it.
    Free points expiring at midnight are not a spend and set nothing.
    """
    if account.alert_below is None:
        return
    below = account.available < account.alert_below
    if (
        amount < 0
        and below
        and not account.alert
        and type != TransactionType.FREE_EXPIRY
    ):
        account.alert = True
        transaction.on_commit(partial(send_alert_email, account.pk))
    elif amount > 0 and not below and account.alert:
        account.alert = False


ALERT_EMAIL_SUBJECT = gettext_noop("Your EORA points are running low")
ALERT_EMAIL_BODY = gettext_noop(
    "You have %(available)s points left, below your alert of %(threshold)s points."
)


def send_alert_email(account_id: int) -> None:
    """Email the user that their available points fell below their alert."""
    account = Account.objects.select_related("user").get(pk=account_id)
    address = getattr(account.user, "email", "")
    if not address or account.alert_below is None:
        return
    with translation.override(settings.LANGUAGE_CODE):
        send_mail(
            gettext(ALERT_EMAIL_SUBJECT),
            gettext(ALERT_EMAIL_BODY)
            % {"available": account.available, "threshold": account.alert_below},
            None,
            [address],
        )


def _expire_overdue_holds(account: Account, now: datetime) -> int:
    """End the locked account's open holds that are past their expiry."""
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        # The UPDATE locks the holds it ends; the account is locked already.
        cursor.execute(
            "UPDATE points_hold SET status = %s, ended_at = %s WHERE account_id = %s"
            " AND status = %s AND expires_at <= %s RETURNING amount, free_amount",
            [HoldStatus.EXPIRED, at, account.pk, HoldStatus.OPEN, at],
        )
        ended = cursor.fetchall()
    if ended:
        amount = sum(amount for amount, _free in ended)
        free_amount = sum(free for _amount, free in ended)
        _execute(
            "UPDATE points_account SET held = held - %s, free_held = free_held - %s"
            " WHERE id = %s",
            [amount, free_amount, account.pk],
        )
        account.held -= amount
        account.free_held -= free_amount
    return len(ended)


# Spending limits ----------------------------------------------------------------------
#
# Counted under the account lock that the hold is placed under: the chat_usage
# rows of the period plus every open hold (of the key, for a key's limit), so
# that turns racing each other cannot pass a limit together.


def spent_in_period(
    account: Account, *, since: datetime | None, api_key_id: int | None = None
) -> int:
    """Return the points chat turns spent since `since` plus what they hold now."""
    rows = Transaction.objects.filter(
        account_id=account.pk, type=TransactionType.CHAT_USAGE
    )
    holds = Hold.objects.filter(account_id=account.pk, status=HoldStatus.OPEN)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
        holds = holds.filter(api_key_id=api_key_id)
    charged = rows.aggregate(total=Sum("amount"))["total"] or 0
    held = holds.aggregate(total=Sum("amount"))["total"] or 0
    return held - charged


def _spending_limit_refusal(
    account: Account, *, api_key: object | None, amount: int, now: datetime
) -> tuple[SpendingLimitReached | None, RefusalReason | None]:
    limits: list[tuple[int, str, int | None]] = [
        (limit, period, None)
        for limit, period in (
            (account.daily_limit, LimitPeriod.DAILY),
            (account.monthly_limit, LimitPeriod.MONTHLY),
        )
        if limit is not None
    ]
    key_limit = getattr(api_key, "points_limit", None)
    if key_limit is not None:
        limits.append((key_limit, api_key.limit_period, api_key.pk))
    for limit, period, api_key_id in limits:
        since, resets_at = period_bounds(period, now)
        spent = spent_in_period(account, since=since, api_key_id=api_key_id)
        if spent + amount > limit:
            return (
                SpendingLimitReached(limit=limit, spent=spent, resets_at=resets_at),
                RefusalReason.SPENDING_LIMIT
                if api_key_id is None
                else RefusalReason.KEY_LIMIT,
            )
    return None, None


def set_spending_limits(
    *,
    account: Account,
    daily: int | None,
    monthly: int | None,
    alert_below: int | None = None,
) -> Account:
    """Set the account's limits on points spent and its alert threshold (None: none).

    The alert flag follows the points available now, without an email: only a
    later debit that crosses the threshold sends one.
    """
    _require_account(account)
    for name, value in (
        ("daily", daily),
        ("monthly", monthly),
        ("alert_below", alert_below),
    ):
        if value is not None:
            _require_points(value, name=name)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        alert = alert_below is not None and locked.available < alert_below
        Account.objects.filter(pk=locked.pk).update(
            daily_limit=daily,
            monthly_limit=monthly,
            alert_below=alert_below,
            alert=alert,
        )
        locked.daily_limit, locked.monthly_limit = daily, monthly
        locked.alert_below, locked.alert = alert_below, alert
        return locked


# Tiers ------------------------------------------------------------------------------


def _active_tier(account: Account, now: datetime) -> Tier | None:
    """Return the locked account's tier in force at `now` (no query without one)."""
    if not account.tier_active_at(now):
        return None
    return Tier.objects.filter(pk=account.tier_id).first()


def set_tier(
    *,
    account: Account,
    tier: Tier | None,
    reason: str,
    by_user: object | None,
    ends_at: datetime | None = None,
) -> TierChange:
    """Set (or clear) an account's tier, until `ends_at` if given, and record why.

    `by_user` is the staff user, or None for an automatic change. Turns already
    held keep the discount they were held with.
    """
    _require_account(account)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgument(gettext("A reason is required to change a tier."))
    if by_user is not None and getattr(by_user, "pk", None) is None:
        raise InvalidArgument(gettext("A tier change must name the staff user."))
    with transaction.atomic():
        locked = _lock_account(account.pk)
        Account.objects.filter(pk=locked.pk).update(tier=tier, tier_ends_at=ends_at)
        return TierChange.objects.create(
            account=locked,
            tier=tier,
            reason=reason.strip(),
            by_user=by_user,
            ends_at=ends_at,
        )


def _tier_rank(tier: Tier) -> tuple[int, int]:
    return (tier.order, tier.purchase_threshold or 0)


def promote_for_purchases(*, account: Account, total_paid: int) -> TierChange | None:
    """Give the account the highest tier whose purchase threshold `total_paid` reaches.

    Only an upgrade: an account whose tier in force ranks as high or higher
    (by `order`, then threshold) keeps it, whoever set it.
    """
    _require_account(account)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        reached = (
            Tier.objects.filter(purchase_threshold__lte=total_paid)
            .order_by("-order", "-purchase_threshold")
            .first()
        )
        if reached is None:
            return None
        current = _active_tier(locked, timezone.now())
        if current is not None and _tier_rank(current) >= _tier_rank(reached):
            return None
        return set_tier(
            account=locked,
            tier=reached,
            reason=f"automatic: purchases reached {reached.purchase_threshold}",
            by_user=None,
        )


# Daily free points --------------------------------------------------------------
#
# Each account's free part is topped up to DAILY_FREE_POINTS the first time the
# account is locked on a new day of the service's time zone, and what was left
# unreserved of the previous day's expires: a `free_expiry` row, then a
# `daily_free` row. Free points still reserved by a hold at midnight stay in the
# free part and count toward the new day's allowance, so the free part is never
# more than the allowance (unless the holds alone are more). Both rows are written
# lazily, under the account lock that every service takes first.


def free_points_reset_at(now: datetime | None = None) -> datetime:
    """Return the next midnight of the service's time zone: when free points reset."""
    today = timezone.localdate(now or timezone.now())
    return timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min))


def _free_points_due(account: Account, today: date) -> bool:
    return account.free_day != today and (
        settings.DAILY_FREE_POINTS > 0 or account.free_available > 0
    )


def _refresh_free_points(account: Account) -> None:
    """Expire yesterday's free points and top up today's, on the locked account."""
    now = timezone.now()
    today = timezone.localdate(now)
    if not _free_points_due(account, today):
        return
    expired = account.free_available
    if expired > 0:
        _post(
            account,
            type=TransactionType.FREE_EXPIRY,
            amount=-expired,
            free_amount=-expired,
            now=now,
            description=_default_language_text(
                FREE_EXPIRY_DESCRIPTION, points=f"{expired:,}"
            ),
        )
    top_up = settings.DAILY_FREE_POINTS - account.free_balance
    if top_up > 0:
        _post(
            account,
            type=TransactionType.DAILY_FREE,
            amount=top_up,
            free_amount=top_up,
            now=now,
            description=_default_language_text(
                DAILY_FREE_DESCRIPTION, points=f"{top_up:,}"
            ),
        )
    _execute(
        "UPDATE points_account SET free_day = %s WHERE id = %s",
        [connection.ops.adapt_datefield_value(today), account.pk],
    )
    account.free_day = today


def refresh_free_points(*, account: Account) -> Account:
    """Return the account locked and reread, its free points brought up to today."""
    _require_account(account)
    with transaction.atomic():
        return _lock_account(account.pk)


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
    order: object | None = None,
) -> Transaction:
    """Add points to an account (sign-up bonus, top-up, refund, code, ...).

    The account's debt, if it owes points, is repaid from them first, by a
    `debt_repayment` row in the same transaction. `order` is the billing order
    the points come from, recorded on the row.
    """
    _require_account(account)
    amount = _require_points(amount)
    type = _require_type(type, CREDIT_TYPES)
    key = _require_key(idempotency_key)
    if not description:
        description = _credit_description(type, amount)
    request = {"amount": amount, "type": type}
    if order is not None:
        request["order"] = order.pk
    fingerprint = request_hash("grant", **request)
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if key is not None and (record := _find_record(locked, key, fingerprint)):
            return record.transaction
        now = timezone.now()
        entry = _post(
            locked,
            type=type,
            amount=amount,
            now=now,
            description=description,
            idempotency_key=key,
            request_hash=fingerprint if key else "",
            order=order,
        )
        _repay_debt(locked, now=now, limit=amount)
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
                free_amount=-min(amount, locked.free_available),
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
                # Staff take paid points first, then free ones; they add paid ones.
                free_amount=min(0, delta + max(locked.paid_available, 0)),
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
            hold = _open_hold(
                locked,
                amount=amount,
                description=description,
                expires_at=now + timedelta(seconds=ttl_seconds),
                key=key,
                fingerprint=fingerprint,
                now=now,
            )
            _remember(locked, key, fingerprint, "place_hold", hold=hold)
            return hold
    raise refusal


def _hold_fingerprint(
    amount: int, ttl_seconds: int, request_fingerprint: str | None
) -> str:
    if request_fingerprint is not None:
        return request_hash("place_hold", request=request_fingerprint)
    return request_hash("place_hold", amount=amount, ttl=ttl_seconds)


def account_of(*, user: object, account_id: int | None = None) -> Account:
    """Return the user's account, opening it (with its bonus) if it is missing.

    An account whose free points are not yet today's is refreshed first.

    `account_id`, the user's account id when the caller knows it (an API key
    carries it), reads nothing: the account comes back with its id and user
    only, and its other fields are read if and when they are used. That is all
    `reserve` needs, which reads the account under its lock (and brings its free
    points up to today there).
    """
    if account_id is not None:
        return Account.from_db(
            DEFAULT_DB_ALIAS, ["id", "user_id"], [account_id, getattr(user, "pk", None)]
        )
    try:
        account = Account.objects.get(user=user)
    except Account.DoesNotExist:
        account = open_account(user=user)
    if _free_points_due(account, timezone.localdate()):
        account = refresh_free_points(account=account)
    return account


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
        account.free_held -= locked.free_amount
        entry = _post(
            account,
            type=TransactionType.CHAT_USAGE,
            amount=-charged,
            # Free points first: the hold reserved them first.
            free_amount=-min(charged, locked.free_amount),
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
        account.free_held -= locked.free_amount
        account.save(update_fields=["held", "free_held"])
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
    # The code of the tier whose discount (`hold.discount_bps`) the turn has.
    tier: str | None = None


@dataclass(frozen=True)
class Settlement:
    """What `settle` charged, for which usage, and what it could not charge."""

    entry: Transaction | None
    usage: Usage
    source: UsageSource
    charged: int
    uncharged: int
    remaining: int
    # The usage's cost before the tier discount, and the discount taken off it.
    list_cost: int = 0
    discount: int = 0


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
    api_key: object | None = None,
) -> Reservation:
    """Hold the most a turn may cost, under one lock of the account.

    A turn whose hold would pass the account's daily or monthly limit, or the
    limit of `api_key` (the key the request came with), is refused with
    `SpendingLimitReached` before anything is held.

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
    # Only a keyed call is remembered: the others need no fingerprint.
    fingerprint = (
        request_hash("reserve", request=request_fingerprint) if key is not None else ""
    )
    with pipeline.ledger_transaction():
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
        tier = _active_tier(locked, now)
        discount_bps = tier.discount_bps if tier is not None else 0
        # The most the answer may cost before the discount, to hold no more than
        # the available points after it.
        budget = list_cost_affordable(locked.available, discount_bps)
        limit = requested
        if (
            cost_of(prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates)
            > budget
        ):
            limit = completion_tokens_affordable(
                points=budget, prompt_tokens=prompt_tokens, rates=rates
            )
        if limit < minimum:
            _discount, required = discounted(
                cost_of(
                    prompt_tokens=prompt_tokens, completion_tokens=minimum, rates=rates
                ),
                discount_bps,
            )
            refusal = _refuse(locked, key, fingerprint, "reserve", required)
            reason = RefusalReason.INSUFFICIENT_POINTS
        else:
            _discount, amount = discounted(
                cost_of(
                    prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates
                ),
                discount_bps,
            )
            refusal, reason = _spending_limit_refusal(
                locked, api_key=api_key, amount=amount, now=now
            )
            if refusal is None:
                # Every read is done: the writes go with the COMMIT.
                pipeline.send_with_commit()
                hold = _open_hold(
                    locked,
                    amount=amount,
                    description=description,
                    expires_at=now + timedelta(seconds=ttl),
                    key=key,
                    fingerprint=fingerprint,
                    now=now,
                    discount_bps=discount_bps,
                    api_key=api_key,
                )
                _remember(locked, key, fingerprint, "reserve", hold=hold)
                return Reservation(
                    hold=hold,
                    model=model,
                    rates=rates,
                    prompt_tokens=prompt_tokens,
                    completion_limit=limit,
                    tier=tier.code if tier is not None else None,
                )
        _count_refusal(locked, reason, now)
    raise refusal


def _count_refusal(account: Account, reason: str, now: datetime) -> None:
    """Count a refused turn for the day's figures, in the refusal's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO points_refusalday (account_id, day, reason, count, last_at)"
            " VALUES (%s, %s, %s, 1, %s) ON CONFLICT (account_id, day, reason)"
            " DO UPDATE SET count = points_refusalday.count + 1,"
            " last_at = excluded.last_at",
            [account.pk, timezone.localdate(now), str(reason), now],
        )


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
    conversation_id: object | None = None,
) -> Settlement:
    """Charge a turn for its usage, at most what was held, and end its hold.

    `counted` is our own count of the prompt and of the text the client got;
    `reported` the provider's usage, if it sent one; `delivered_in_full` is
    False when the client left (or the answer stopped) before the end. Cost
    above the hold is not charged and is recorded as `uncharged_points`. A turn
    that outlived its hold is charged the same, capped at the hold and at what
    is available now. `conversation_id` names the conversation the turn was
    saved in, if any: the row records it for the usage pages.
    """
    usage, source = metered_usage(
        reservation,
        counted=counted,
        reported=reported,
        delivered_in_full=delivered_in_full,
    )
    with pipeline.ledger_transaction():
        account, hold = _lock_account_and_hold(reservation.hold.pk)
        # The discount is the one in force when the hold was placed.
        discount, cost = discounted(usage.cost, hold.discount_bps)
        now = timezone.now()
        if hold.status == HoldStatus.OPEN and hold.expires_at > now:
            charged = min(cost, hold.amount)
            # Free points first: the hold reserved them first.
            free_charged = min(charged, hold.free_amount)
            account.held -= hold.amount
            account.free_held -= hold.free_amount
            hold.status = HoldStatus.CAPTURED
        elif hold.status in (HoldStatus.OPEN, HoldStatus.EXPIRED):
            if hold.captured_amount or Transaction.objects.filter(hold=hold).exists():
                # Settled once already, after its expiry: never charged twice.
                raise HoldNotOpen(status=hold.status)
            # The turn outlived its hold: end the account's overdue holds (this
            # one among them), then charge what was agreed, as far as it goes.
            _end_overdue_holds(account)
            charged = min(cost, hold.amount, account.available)
            free_charged = min(charged, account.free_available)
            hold.status = HoldStatus.EXPIRED
        else:
            raise HoldNotOpen(status=hold.status)
        # Every read is done: the writes go with the COMMIT.
        pipeline.send_with_commit()
        entry = None
        if charged > 0:
            entry = _post(
                account,
                type=TransactionType.CHAT_USAGE,
                amount=-charged,
                free_amount=-free_charged,
                now=now,
                description=usage_description(usage),
                hold=hold,
                uncharged_points=cost - charged,
                api_key=api_key,
                list_cost=usage.cost,
                discount=discount,
                tier=reservation.tier or "",
                conversation_id=conversation_id,
                **_usage_fields(usage),
            )
        else:
            _execute(
                "UPDATE points_account SET held = %s, free_held = %s WHERE id = %s",
                [account.held, account.free_held, account.pk],
            )
            logger.warning(
                "Turn of hold %s outlived it with nothing available; "
                "%d points not charged.",
                hold.pk,
                cost,
            )
        hold.captured_amount = charged
        hold.ended_at = hold.ended_at or now
        _execute(
            "UPDATE points_hold SET status = %s, captured_amount = %s, ended_at = %s"
            " WHERE id = %s",
            [
                hold.status,
                charged,
                connection.ops.adapt_datetimefield_value(hold.ended_at),
                hold.pk,
            ],
        )
    return Settlement(
        entry=entry,
        usage=usage,
        source=source,
        charged=charged,
        uncharged=cost - charged,
        remaining=account.available,
        list_cost=usage.cost,
        discount=discount,
    )


# Purchases and debts ----------------------------------------------------------------
#
# A paid order is credited once (`credit_purchase`). A refund or a dispute takes
# its points back (`take_back`) as far as they are available; what the account
# has already spent (or holds for answers in progress) is never taken into a
# negative balance: it is added to `Account.owed`, and the next points the
# account receives (`grant`, `credit_purchase`) repay it first, by
# `debt_repayment` rows.


@dataclass(frozen=True)
class TakeBack:
    """What `take_back` took from the balance, and what it added to the debt."""

    taken: int
    owed: int


def _require_part(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidAmount(
            gettext("%(name)s must be a whole number of points, not %(value)r.")
            % {"name": name, "value": value}
        )
    if value > MAX_POINTS:
        raise InvalidAmount(
            gettext("%(name)s must be at most %(limit)d points.")
            % {"name": name, "limit": MAX_POINTS}
        )
    return value


def _owed(account: Account) -> int:
    """Return the debt of an account whose row this transaction has locked."""
    return Account.objects.filter(pk=account.pk).values_list("owed", flat=True).get()


def _set_owed(account: Account, owed: int) -> None:
    Account.objects.filter(pk=account.pk).update(owed=owed)
    account.owed = owed


def _repay_debt(account: Account, *, now: datetime, limit: int) -> Transaction | None:
    """Repay the locked account's debt from the `limit` points just credited."""
    owed = _owed(account)
    # Debts are repaid from paid points: free points are no one's money.
    repaid = min(owed, limit, account.paid_available)
    if repaid <= 0:
        return None
    _set_owed(account, owed - repaid)
    return _post(
        account,
        type=TransactionType.DEBT_REPAYMENT,
        amount=-repaid,
        now=now,
        description=_default_language_text(
            DEBT_REPAYMENT_DESCRIPTION, points=f"{repaid:,}"
        ),
    )


def credit_purchase(
    *,
    account: Account,
    points: int,
    bonus: int,
    order: object,
    idempotency_key: str,
) -> Transaction:
    """Credit a paid order: its points as a `top_up` row, its bonus as a `bonus` row.

    One call per order, with a key derived from it: a repeat returns the first
    call's top-up row and writes nothing. A debt is repaid from them first.
    """
    _require_account(account)
    points = _require_points(points, name="points")
    bonus = _require_part(bonus, "bonus")
    key = _require_key(idempotency_key)
    if key is None or getattr(order, "pk", None) is None:
        raise InvalidArgument(gettext("A purchase needs its saved order and a key."))
    fingerprint = request_hash(
        "credit_purchase", points=points, bonus=bonus, order=order.pk
    )
    with transaction.atomic():
        locked = _lock_account(account.pk)
        if record := _find_record(locked, key, fingerprint):
            return record.transaction
        now = timezone.now()
        entry = _post(
            locked,
            type=TransactionType.TOP_UP,
            amount=points,
            now=now,
            description=_credit_description(TransactionType.TOP_UP, points),
            idempotency_key=key,
            request_hash=fingerprint,
            order=order,
        )
        if bonus:
            _post(
                locked,
                type=TransactionType.BONUS,
                amount=bonus,
                now=now,
                description=_credit_description(TransactionType.BONUS, bonus),
                order=order,
            )
        _repay_debt(locked, now=now, limit=points + bonus)
        _remember(locked, key, fingerprint, "credit_purchase", transaction=entry)
        return entry


def take_back(*, account: Account, points: int, bonus: int, order: object) -> TakeBack:
    """Take back points and bonus of a refunded or disputed order.

    Each part is its own row (`top_up_reversal`, `bonus_reversal`), of at most
    what is available; the rest is added to the account's debt. The caller
    decides how much, under its own lock of the order (taken before this one).
    """
    _require_account(account)
    points = _require_part(points, "points")
    bonus = _require_part(bonus, "bonus")
    with transaction.atomic():
        locked = _lock_account(account.pk)
        now = _end_overdue_holds(locked)
        taken = 0
        for type, amount in (
            (TransactionType.TOP_UP_REVERSAL, points),
            (TransactionType.BONUS_REVERSAL, bonus),
        ):
            # Only paid points are taken back: free points were never bought.
            part = min(amount, max(locked.paid_available, 0))
            if part > 0:
                _post(
                    locked,
                    type=type,
                    amount=-part,
                    now=now,
                    description=_default_language_text(
                        REVERSAL_DESCRIPTIONS[type], points=f"{part:,}"
                    ),
                    order=order,
                )
                taken += part
        owed = points + bonus - taken
        if owed:
            _set_owed(locked, _owed(locked) + owed)
    return TakeBack(taken=taken, owed=owed)
