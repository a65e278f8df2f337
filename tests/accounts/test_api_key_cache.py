"""A process keeps the API keys it found for at most API_KEY_CACHE_SECONDS."""

import pytest
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from tests.conftest import FakeClock


def models(secret: str) -> HttpResponseBase:
    """Return the answer to a /v1 call made with the key."""
    return Client().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def key(user: User) -> tuple[ApiKey, str]:
    return create_api_key(user=user, name="cached")


def revoked_in_another_process(key: ApiKey) -> None:
    # A write this process sends no signal for, as another process's would be.
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())


def test_key_revoked_through_the_api_is_refused_at_once(
    key: tuple[ApiKey, str], user: User
) -> None:
    # given a key this process has just found (and kept)
    api_key, secret = key
    assert models(secret).status_code == 200

    # when its owner revokes it
    owner = Client()
    owner.force_login(user)
    assert owner.delete(f"/api/keys/{api_key.pk}").status_code == 200

    # then the very next request with it is refused
    assert models(secret).status_code == 401


def test_key_revoked_in_another_process_is_refused_within_a_second(
    key: tuple[ApiKey, str], cache_clock: FakeClock
) -> None:
    # given a key this process has just found, revoked by another process
    api_key, secret = key
    assert models(secret).status_code == 200
    revoked_in_another_process(api_key)
    assert models(secret).status_code == 200

    # when a second has passed
    cache_clock.advance(1)

    # then it is refused
    assert models(secret).status_code == 401


def test_cache_seconds_zero_looks_every_key_up(
    key: tuple[ApiKey, str], settings
) -> None:
    settings.API_KEY_CACHE_SECONDS = 0
    api_key, secret = key
    assert models(secret).status_code == 200

    revoked_in_another_process(api_key)

    assert models(secret).status_code == 401


def test_key_of_a_deactivated_user_is_refused_at_once(
    key: tuple[ApiKey, str], user: User
) -> None:
    _api_key, secret = key
    assert models(secret).status_code == 200

    # The admin's change form saves the user.
    user.is_active = False
    user.save()

    assert models(secret).status_code == 401


def test_each_request_gets_its_own_copy_of_the_key(
    key: tuple[ApiKey, str],
) -> None:
    _api_key, secret = key
    first = Client().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    second = Client().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})

    # A request that changes its key or user must not change another's.
    assert first.wsgi_request.auth is not second.wsgi_request.auth
    assert first.wsgi_request.user is not second.wsgi_request.user
