import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.forms import EMAIL_UNAVAILABLE_MESSAGE
from accounts.services import register_user
from accounts.views import SIGNUP_THROTTLED_MESSAGE
from points.exceptions import InvalidAmount
from points.models import Account, Transaction, TransactionType
from tests.conftest import TEST_PASSWORD

User = get_user_model()


def signup(
    client: Client, email: str, password: str = TEST_PASSWORD, again: str | None = None
):
    return client.post(
        reverse("accounts:signup"),
        {"email": email, "password1": password, "password2": again or password},
    )


@pytest.mark.django_db
def test_signup_creates_user_account_and_bonus_and_signs_in(client: Client) -> None:
    response = signup(client, "New@Example.com")

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.points_account.balance == 100_000
    assert list(user.points_account.transactions.values_list("type", flat=True)) == [
        TransactionType.SIGNUP_BONUS
    ]
    assert client.get(reverse("points:overview")).status_code == 200


@pytest.mark.django_db
def test_signup_with_taken_email_shows_message_and_adds_nothing(
    client: Client, user
) -> None:
    response = signup(client, user.email.upper())

    assert response.status_code == 200
    assert str(EMAIL_UNAVAILABLE_MESSAGE) in response.content.decode()
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_signup_applies_password_validators(client: Client) -> None:
    response = signup(client, "weak@example.com", password="12345")

    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.filter(email="weak@example.com").exists()


@pytest.mark.django_db
def test_signup_rejects_mismatched_passwords(client: Client) -> None:
    response = signup(client, "x@example.com", again="another-long-password-1")
    assert response.status_code == 200
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_requires_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert signup(client, "csrf@example.com").status_code == 403
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_failure_after_user_row_leaves_nothing(settings) -> None:
    # An impossible bonus makes the ledger refuse after the user row is written.
    settings.SIGNUP_BONUS_POINTS = 10**18

    with pytest.raises(InvalidAmount):
        register_user(email="half@example.com", password=TEST_PASSWORD)

    assert not User.objects.exists()
    assert not Account.objects.exists()
    assert not Transaction.objects.exists()


@pytest.mark.django_db
def test_createsuperuser_gets_account_and_bonus_once() -> None:
    call_command(
        "createsuperuser", email="root@example.com", interactive=False, verbosity=0
    )
    user = User.objects.get(email="root@example.com")
    assert user.is_superuser
    assert user.points_account.transactions.count() == 1
    assert user.points_account.balance == 100_000


@pytest.mark.django_db
def test_admin_created_user_gets_account_and_bonus_once(
    client: Client, staff_user
) -> None:
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "made@example.com",
            "password1": TEST_PASSWORD,
            "password2": TEST_PASSWORD,
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="made@example.com")
    assert user.points_account.transactions.count() == 1
    assert user.points_account.balance == 100_000


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["ko", "en"])
def test_signup_with_taken_email_does_not_say_it_is_registered(
    client: Client, user, language: str, settings
) -> None:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    page = signup(client, user.email).content.decode()

    with translation.override(language):
        assert str(EMAIL_UNAVAILABLE_MESSAGE) in page
    for wording in ("already registered", "already exists", "이미 등록", "이미 가입"):
        assert wording not in page


@pytest.mark.django_db
def test_signup_posts_are_throttled_per_address(client: Client, settings) -> None:
    settings.SIGNUP_RATE_PER_HOUR = 3
    for _attempt in range(3):
        assert signup(client, "x@example.com", again="mismatch").status_code == 200

    response = signup(client, "late@example.com")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert str(SIGNUP_THROTTLED_MESSAGE) in response.content.decode()
    assert not User.objects.filter(email="late@example.com").exists()


@pytest.mark.django_db
def test_throttled_signup_does_not_look_the_address_up(
    client: Client, user, settings
) -> None:
    settings.SIGNUP_RATE_PER_HOUR = 1
    signup(client, "first@example.com", again="mismatch")

    page = signup(client, user.email).content.decode()

    assert str(EMAIL_UNAVAILABLE_MESSAGE) not in page


@pytest.mark.django_db
def test_signup_throttle_counts_each_address_apart(client: Client, settings) -> None:
    settings.SIGNUP_RATE_PER_HOUR = 1
    signup(client, "a@example.com", again="mismatch")

    other = Client(REMOTE_ADDR="192.0.2.7")
    assert signup(other, "b@example.com").status_code == 302


@pytest.mark.django_db
def test_signup_page_views_are_not_throttled(client: Client, settings) -> None:
    settings.SIGNUP_RATE_PER_HOUR = 1
    for _attempt in range(3):
        assert client.get(reverse("accounts:signup")).status_code == 200
