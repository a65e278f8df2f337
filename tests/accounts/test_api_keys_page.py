"""The API keys page: a new key is shown once, and a reload makes no second key."""

from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, User


def test_creating_a_key_redirects_and_shows_the_key_once(
    client: Client, user: User
) -> None:
    client.force_login(user)
    url = reverse("api-keys-page")

    created = client.post(url, {"name": "배포용 키"})
    first = client.get(url)
    reload = client.get(url)

    assert created.status_code == 302
    assert created["Location"] == url
    assert ApiKey.objects.filter(user=user).count() == 1
    secret = first.context["new_secret"]
    assert secret and secret.startswith("eora_")
    assert secret in first.content.decode()
    assert reload.context["new_secret"] is None
    assert secret not in reload.content.decode()
    assert "no-store" in first["Cache-Control"]


def test_an_invalid_name_shows_the_form_again_and_makes_no_key(
    client: Client, user: User
) -> None:
    client.force_login(user)

    response = client.post(reverse("api-keys-page"), {"name": ""})

    assert response.status_code == 200
    assert response.context["form"].errors["name"]
    assert not ApiKey.objects.exists()


def test_revoking_asks_for_confirmation_on_the_page(client: Client, user: User) -> None:
    client.force_login(user)
    client.post(reverse("api-keys-page"), {"name": "old key"})
    key = ApiKey.objects.get()

    page = client.get(reverse("api-keys-page")).content.decode()
    revoked = client.post(reverse("api-keys-page"), {"revoke": str(key.pk)})

    assert 'data-confirm="“old key” 키를 폐기할까요?' in page
    assert revoked.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
