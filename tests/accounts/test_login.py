import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import TEST_PASSWORD


@pytest.mark.django_db
def test_login_with_email_and_password(client: Client, user) -> None:
    response = client.post(
        reverse("accounts:login"),
        {"username": user.email.upper(), "password": TEST_PASSWORD},
    )
    assert response.status_code == 302
    assert client.get(reverse("points:overview")).status_code == 200


@pytest.mark.django_db
def test_login_with_wrong_password_shows_message(client: Client, user) -> None:
    response = client.post(
        reverse("accounts:login"),
        {"username": user.email, "password": "wrong-password"},
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logout_needs_post(client: Client, user) -> None:
    client.force_login(user)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_change_uses_new_password(client: Client, user) -> None:
    client.force_login(user)
    response = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "a-brand-new-passphrase-9",
            "new_password2": "a-brand-new-passphrase-9",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-brand-new-passphrase-9")


@pytest.mark.django_db
def test_pages_need_login(client: Client) -> None:
    response = client.get(reverse("points:overview"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))
