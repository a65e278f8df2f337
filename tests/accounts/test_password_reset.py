"""Forgotten passwords: Django's reset views, by email, in the site's language."""

import re

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.views import PASSWORD_RESET_THROTTLED_MESSAGE
from tests.conftest import TEST_PASSWORD

NEW_PASSWORD = "a-brand-new-passphrase-42"
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/password/reset/[^\s]+/)")


def request_reset(client: Client, email: str):
    return client.post(reverse("accounts:password_reset"), {"email": email})


def test_reset_by_email_sets_a_new_password(client: Client, user: User) -> None:
    # Given a person who forgot their password asks for a link
    response = request_reset(client, user.email.upper())

    # Then one email in Korean carries a link
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [user.email]
    assert email.subject == "EORA points 비밀번호 재설정"
    link = RESET_LINK.search(email.body)
    assert link, email.body

    # When they follow it and choose a new password
    form = client.get(link.group(1), follow=True)
    assert form.context["validlink"] is True
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    # Then the new password works and the old one does not
    assert done["Location"] == reverse("accounts:password_reset_complete")
    assert authenticate(username=user.email, password=NEW_PASSWORD) == user
    assert authenticate(username=user.email, password=TEST_PASSWORD) is None
    # And the link works once
    again = client.get(link.group(1), follow=True)
    assert again.context["validlink"] is False


def test_reset_of_an_unknown_address_looks_the_same_and_sends_nothing(
    client: Client, db: None
) -> None:
    response = request_reset(client, "nobody@example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert mail.outbox == []


def test_login_page_links_to_the_reset(client: Client, db: None) -> None:
    page = client.get(reverse("accounts:login")).content.decode()
    assert f'href="{reverse("accounts:password_reset")}"' in page


def input_tag(page: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert tag, f"no input {name}"
    return tag.group(0)


@pytest.mark.parametrize(
    ("url_name", "fields"),
    [
        ("accounts:login", {"username": "email", "password": "current-password"}),
        (
            "accounts:signup",
            {
                "email": "email",
                "password1": "new-password",
                "password2": "new-password",
            },
        ),
        ("accounts:password_reset", {"email": "email"}),
    ],
)
def test_forms_tell_password_managers_what_each_field_is(
    client: Client, db: None, url_name: str, fields: dict[str, str]
) -> None:
    page = client.get(reverse(url_name)).content.decode()

    for name, autocomplete in fields.items():
        assert f'autocomplete="{autocomplete}"' in input_tag(page, name)


def test_signed_in_forms_tell_password_managers_what_each_field_is(
    client: Client, user: User
) -> None:
    client.force_login(user)
    change = client.get(reverse("accounts:password_change")).content.decode()
    keys = client.get(reverse("api-keys-page")).content.decode()

    assert 'autocomplete="current-password"' in input_tag(change, "old_password")
    assert 'autocomplete="new-password"' in input_tag(change, "new_password1")
    assert 'autocomplete="off"' in input_tag(keys, "name")


@pytest.mark.usefixtures("mid_hour")
def test_reset_requests_are_throttled_per_email_across_addresses(
    user: User, settings
) -> None:
    settings.PASSWORD_RESET_RATE_PER_HOUR = 2
    for number in range(2):
        sender = Client(REMOTE_ADDR=f"192.0.2.{number + 1}")
        assert request_reset(sender, user.email).status_code == 302

    # A third network asks for the same mailbox: refused, and nothing is sent.
    response = request_reset(Client(REMOTE_ADDR="198.51.100.9"), user.email.upper())

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert str(PASSWORD_RESET_THROTTLED_MESSAGE) in response.content.decode()
    assert len(mail.outbox) == 2


@pytest.mark.usefixtures("mid_hour")
def test_reset_requests_are_throttled_per_address(
    client: Client, user: User, settings
) -> None:
    settings.PASSWORD_RESET_RATE_PER_HOUR = 2
    for number in range(2):
        assert request_reset(client, f"other{number}@example.com").status_code == 302

    response = request_reset(client, user.email)

    assert response.status_code == 429
    assert response.context["form"]["email"].value() == user.email
    assert mail.outbox == []


@pytest.mark.usefixtures("mid_hour")
def test_throttled_reset_is_refused_in_korean(
    client: Client, user: User, settings
) -> None:
    settings.PASSWORD_RESET_RATE_PER_HOUR = 1
    request_reset(client, user.email)

    page = request_reset(client, user.email).content.decode()

    assert "비밀번호 재설정 요청이 너무 많습니다" in page
