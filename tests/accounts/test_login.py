import pytest
from django.test import Client
from django.urls import reverse

from accounts.views import LOGIN_THROTTLED_MESSAGE
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


def log_in(client: Client, email: str, password: str = "wrong-password"):
    return client.post(
        reverse("accounts:login"), {"username": email, "password": password}
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("mid_hour")
def test_login_posts_are_throttled_per_address(client: Client, user, settings) -> None:
    settings.LOGIN_RATE_PER_HOUR = 3
    for number in range(3):
        assert log_in(client, f"guess{number}@example.com").status_code == 200

    # Even the right password is not checked once the address is over its rate.
    response = log_in(client, user.email, TEST_PASSWORD)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert str(LOGIN_THROTTLED_MESSAGE) in response.content.decode()
    assert response.context["form"]["username"].value() == user.email
    assert not response.context["form"].is_bound
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.usefixtures("mid_hour")
def test_login_posts_are_throttled_per_email_across_addresses(user, settings) -> None:
    settings.LOGIN_RATE_PER_HOUR = 2
    for number, spelling in enumerate((user.email.upper(), user.email.title())):
        guesser = Client(REMOTE_ADDR=f"192.0.2.{number + 1}")
        assert log_in(guesser, spelling).status_code == 200

    # A third network, the same account (its address as it was registered).
    response = log_in(Client(REMOTE_ADDR="198.51.100.9"), f" {user.email} ")

    assert response.status_code == 429
    # Another account from that network is still let in.
    other = Client(REMOTE_ADDR="198.51.100.9")
    assert log_in(other, "someone-else@example.com").status_code == 200


@pytest.mark.postgres
@pytest.mark.usefixtures("mid_hour")
def test_login_throttle_counts_every_spelling_the_lookup_matches(
    make_user, settings
) -> None:
    # PostgreSQL's UPPER() makes the dotless ı an I: "alıce" logs in as "alice".
    alice = make_user(email="alice@example.com")
    settings.LOGIN_RATE_PER_HOUR = 1
    assert (
        log_in(Client(REMOTE_ADDR="192.0.2.1"), "alıce@example.com").status_code == 200
    )

    response = log_in(Client(REMOTE_ADDR="192.0.2.2"), alice.email, TEST_PASSWORD)

    assert response.status_code == 429


@pytest.mark.django_db
@pytest.mark.usefixtures("mid_hour")
def test_login_posts_for_no_account_are_counted_by_the_email(settings) -> None:
    settings.LOGIN_RATE_PER_HOUR = 1
    log_in(Client(REMOTE_ADDR="192.0.2.1"), "Nobody@Example.com")

    assert (
        log_in(Client(REMOTE_ADDR="192.0.2.2"), "nobody@example.com").status_code == 429
    )
    assert (
        log_in(Client(REMOTE_ADDR="192.0.2.3"), "other@example.com").status_code == 200
    )


@pytest.mark.django_db
def test_login_page_views_are_not_throttled(client: Client, settings) -> None:
    settings.LOGIN_RATE_PER_HOUR = 1
    for _attempt in range(3):
        assert client.get(reverse("accounts:login")).status_code == 200
