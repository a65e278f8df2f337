"""Redemption codes: made in bulk, shown once, stored hashed, redeemed under a lock.

A code is 16 characters from an alphabet without look-alikes (no 0/O, 1/I/L),
in four groups of four: `7KQD-MZ3W-HT9R-XPA4`, about 79 random bits. Only its
SHA-256 is stored (the bits make a slow hash needless) and its last characters,
so that staff can tell codes apart. Typing is forgiving: case, spaces and
dashes do not matter.

Redeeming locks the code's row, then (inside `points.services`) the account: a
code credits each user at most once and no more times than its uses, however
many requests race. The database backs this up: one redemption per code and
user, and uses never above the limit.
"""

import hashlib
import secrets
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import User
from billing import throttles
from billing.exceptions import (
    CodeAlreadyRedeemed,
    CodeDisabled,
    CodeExpired,
    CodeUsedUp,
    InvalidCode,
)
from billing.models import Redemption, RedemptionCode
from common.http import InvalidRequest, Throttled
from points import services as ledger
from points.models import TransactionType

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_GROUPS = 4
GROUP_LENGTH = 4
CODE_LENGTH = CODE_GROUPS * GROUP_LENGTH
SHOWN_CHARACTERS = 4
MAX_CODES_AT_ONCE = 1000
MAX_USES_PER_CODE = 1_000_000


def new_code() -> str:
    characters = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(
        characters[start : start + GROUP_LENGTH]
        for start in range(0, CODE_LENGTH, GROUP_LENGTH)
    )


def normalize_code(typed: str) -> str:
    """Return a typed code as it is hashed: upper case, letters and digits only."""
    return "".join(character for character in typed.upper() if character.isalnum())


def hash_code(typed: str) -> str:
    return hashlib.sha256(normalize_code(typed).encode()).hexdigest()


def end_of_day(day: date) -> datetime:
    """Return when a code valid through `day` (in TIME_ZONE) expires."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def create_codes(
    *,
    points: int,
    count: int,
    uses: int = 1,
    expires_at: datetime | None = None,
    note: str = "",
    created_by: User | None = None,
) -> list[str]:
    """Make `count` codes worth `points` each; return them in full, never stored."""
    for value, name, limit in (
        (points, "points", ledger.MAX_POINTS),
        (count, "count", MAX_CODES_AT_ONCE),
        (uses, "uses", MAX_USES_PER_CODE),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not value > 0:
            raise InvalidRequest(
                gettext("%(name)s must be a whole number above zero.") % {"name": name}
            )
        if value > limit:
            raise InvalidRequest(
                gettext("%(name)s must be at most %(limit)d.")
                % {"name": name, "limit": limit}
            )
    codes = [new_code() for _ in range(count)]
    RedemptionCode.objects.bulk_create(
        RedemptionCode(
            code_hash=hash_code(code),
            last_characters=code[-SHOWN_CHARACTERS:],
            points=points,
            max_uses=uses,
            expires_at=expires_at,
            note=note[:200],
            created_by=created_by,
        )
        for code in codes
    )
    return codes


def disable_codes(*, code_ids: list[int]) -> int:
    """Disable codes (no further use); return how many were still enabled."""
    return RedemptionCode.objects.filter(
        pk__in=code_ids, disabled_at__isnull=True
    ).update(disabled_at=timezone.now())


def redeem_code(*, user: User, code: str, address: str) -> Redemption:
    """Credit the user with a code's points, once per user and within its uses.

    Wrong codes are counted per user and per client address (`address`); past
    the rate, every code is refused with `Throttled` until the window closes.
    """
    wait = throttles.lockout_wait(user_id=user.pk, address=address)
    if wait is not None:
        raise Throttled(wait=wait)
    try:
        return _redeem(user, hash_code(code))
    except InvalidCode:
        throttles.count_wrong_code(user_id=user.pk, address=address)
        raise


def _redeem(user: User, code_hash: str) -> Redemption:
    with transaction.atomic():
        code = RedemptionCode.objects.select_for_update().filter(code_hash=code_hash)
        code = code.first()
        if code is None:
            raise InvalidCode()
        if code.disabled_at is not None:
            raise CodeDisabled()
        if code.expires_at is not None and code.expires_at <= timezone.now():
            raise CodeExpired()
        if Redemption.objects.filter(code=code, user=user).exists():
            raise CodeAlreadyRedeemed()
        if code.uses >= code.max_uses:
            raise CodeUsedUp()
        entry = ledger.grant(
            account=ledger.account_of(user=user),
            amount=code.points,
            type=TransactionType.REDEMPTION,
            idempotency_key=f"redemption-code:{code.pk}",
        )
        # F(): without the lock, the constraint on uses would still hold.
        RedemptionCode.objects.filter(pk=code.pk).update(uses=F("uses") + 1)
        return Redemption.objects.create(code=code, user=user, transaction=entry)
