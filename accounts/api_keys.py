"""Personal API keys: `eora_<prefix>_<secret>`, stored as a SHA-256 hash.

The keys carry 256 bits of randomness, so a fast hash is enough (no password
stretching); the prefix finds the row and the hash is compared in constant time.

Every request names its key, so each process keeps the keys it found for
API_KEY_CACHE_SECONDS (at most a second), by the hash of the key, never the key.
A change to a key or its user in this process drops them at once; in another
process they expire.
"""

import copy
import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import ApiKey, User
from common.expiring_cache import ExpiringCache
from common.http import InvalidRequest

KEY_PATTERN = re.compile(r"^eora_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
MAX_NAME_LENGTH = 100
MAX_ACTIVE_KEYS = 20
LAST_USED_PRECISION = timedelta(minutes=1)

KNOWN_KEYS: ExpiringCache[str, ApiKey] = ExpiringCache(
    lifetime=lambda: settings.API_KEY_CACHE_SECONDS
)


class ApiKeyNotFound(InvalidRequest):
    code = "not_found"
    status_code = 404


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def create_api_key(
    *,
    user: User,
    name: object,
    points_limit: int | None = None,
    limit_period: str = "none",
) -> tuple[ApiKey, str]:
    """Create a key for the user; return it and the full key, which is never stored."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(_("A key needs a name."))
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            _("A key name is at most %(limit)d characters.")
            % {"limit": MAX_NAME_LENGTH}
        )
    with transaction.atomic():
        active = ApiKey.objects.filter(user=user, revoked_at__isnull=True).count()
        if active >= MAX_ACTIVE_KEYS:
            raise InvalidRequest(
                _("You can have at most %(limit)d active keys.")
                % {"limit": MAX_ACTIVE_KEYS}
            )
        prefix = "".join(
            secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12)
        )
        raw_key = f"eora_{prefix}_{secrets.token_urlsafe(32)}"
        key = ApiKey.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            key_hash=hash_key(raw_key),
            points_limit=points_limit,
            limit_period=limit_period,
        )
    return key, raw_key


def revoke_api_key(*, user: User, key_id: int) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().filter(user=user, pk=key_id).first()
        if key is None:
            raise ApiKeyNotFound(_("API key not found."))
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
    return key


def key_for(raw_key: str) -> ApiKey | None:
    """Return the active key matching `raw_key`, its user loaded; else None.

    A key this process found in the last API_KEY_CACHE_SECONDS is not looked up
    again. Each caller gets its own copy of the key and the user to change.
    """
    digest = hash_key(raw_key)
    known = KNOWN_KEYS.get(digest)
    if known is not None:
        return _copy_of(known)
    generation = KNOWN_KEYS.generation
    key = _active_key(raw_key)
    if key is not None:
        KNOWN_KEYS.put(digest, _copy_of(key), read_in=generation)
    return key


def _copy_of(key: ApiKey) -> ApiKey:
    copied = copy.copy(key)
    copied.user = copy.copy(key.user)
    return copied


def _active_key(raw_key: str) -> ApiKey | None:
    """Return the active key matching `raw_key`, recording its use; else None."""
    match = KEY_PATTERN.match(raw_key)
    if match is None:
        return None
    key = (
        ApiKey.objects.select_related("user")
        # The user's points account id, which never changes: a turn holds its
        # points by it without reading the account first.
        .annotate(account_id=F("user__points_account__id"))
        .filter(prefix=match.group(1))
        .first()
    )
    expected = key.key_hash if key is not None else hash_key("eora_missing")
    if not hmac.compare_digest(expected, hash_key(raw_key)) or key is None:
        return None
    if key.revoked_at is not None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        # At most one write a minute per key, not one per request.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def forget_key(key_id: int) -> None:
    KNOWN_KEYS.discard_where(lambda known: known.pk == key_id)


def forget_keys_of(user_id: int) -> None:
    KNOWN_KEYS.discard_where(lambda known: known.user_id == user_id)


def _forget_now_and_after_commit(forget: partial[None]) -> None:
    # Now, for this process's next request; after commit too, since a request
    # in between may still read, and keep, the row as it was before the commit.
    forget()
    transaction.on_commit(forget)


def on_key_changed(sender: type[ApiKey], instance: ApiKey, **kwargs: Any) -> None:
    """Drop the cached key when it is saved (revoked, renamed) or deleted."""
    _forget_now_and_after_commit(partial(forget_key, instance.pk))


def on_user_changed(sender: type[User], instance: User, **kwargs: Any) -> None:
    """Drop the user's cached keys when the user is saved (deactivated) or deleted."""
    _forget_now_and_after_commit(partial(forget_keys_of, instance.pk))
