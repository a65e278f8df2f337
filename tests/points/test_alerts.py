"""The alert threshold: one notice and one email per crossing below it."""

from collections.abc import Callable

from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from points import services
from points.models import Account

START = 100_000  # the sign-up bonus


def spend(account: Account, amount: int, capture: Callable) -> None:
    with capture(execute=True):
        services.debit(account=account, amount=amount)


def test_debit_crossing_below_the_alert_sends_one_email_and_sets_the_flag(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )

    spend(account, START - 999, django_capture_on_commit_callbacks)

    account.refresh_from_db()
    assert account.alert is True
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [account.user.email]


def test_no_further_email_while_staying_below(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )
    spend(account, START - 999, django_capture_on_commit_callbacks)

    spend(account, 100, django_capture_on_commit_callbacks)
    spend(account, 100, django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1


def test_no_email_above_the_threshold(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )

    spend(account, START - 1_000, django_capture_on_commit_callbacks)

    account.refresh_from_db()
    assert (account.alert, len(mail.outbox)) == (False, 0)


def test_top_up_back_to_the_threshold_rearms_the_alert(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )
    spend(account, START - 500, django_capture_on_commit_callbacks)

    services.grant(account=account, amount=500)
    account.refresh_from_db()
    assert account.alert is False
    spend(account, 1, django_capture_on_commit_callbacks)

    account.refresh_from_db()
    assert account.alert is True
    assert len(mail.outbox) == 2


def test_capture_of_a_hold_crossing_below_sends_the_email(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )
    hold = services.place_hold(account=account, amount=START - 500)

    with django_capture_on_commit_callbacks(execute=True):
        services.capture_hold(hold=hold, actual_cost=START - 500)

    account.refresh_from_db()
    assert (account.alert, len(mail.outbox)) == (True, 1)


def test_setting_a_threshold_above_the_points_shows_the_notice_without_email(
    account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.set_spending_limits(
            account=account, daily=None, monthly=None, alert_below=START + 1
        )

    account.refresh_from_db()
    assert (account.alert, len(mail.outbox)) == (True, 0)


def test_header_shows_the_alert_notice(
    client: Client, account: Account, django_capture_on_commit_callbacks: Callable
) -> None:
    services.set_spending_limits(
        account=account, daily=None, monthly=None, alert_below=1_000
    )
    client.force_login(account.user)
    assert 'id="points-alert"' not in client.get(reverse("points:overview")).text

    spend(account, START - 999, django_capture_on_commit_callbacks)

    assert 'id="points-alert"' in client.get(reverse("points:overview")).text


def test_limits_api_reads_and_sets_the_alert_threshold(user: User) -> None:
    client = APIClient()
    client.force_login(user)

    put = client.put(
        "/api/user/limits",
        {"daily": None, "monthly": None, "alert_below": 500},
        format="json",
    )
    got = client.get("/api/user/limits").json()

    assert put.status_code == 200
    assert (got["alert_below"], got["alert"]) == (500, False)


def test_limits_api_rejects_an_alert_below_one(user: User) -> None:
    client = APIClient()
    client.force_login(user)

    response = client.put(
        "/api/user/limits",
        {"daily": None, "monthly": None, "alert_below": 0},
        format="json",
    )

    assert response.status_code == 400
