import pytest
from django.test import Client
from django.urls import reverse

from points.admin import DEDUCTION_ABOVE_AVAILABLE_MESSAGE
from points.exceptions import INSUFFICIENT_POINTS_MESSAGE
from points.models import Account, Transaction, TransactionType
from points.services import adjust


@pytest.fixture
def admin_client(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


def test_admin_adjustment_goes_through_ledger_and_records_staff(
    admin_client: Client, account: Account, staff_user
) -> None:
    url = reverse("admin:points_account_adjust", args=[account.pk])

    response = admin_client.post(url, {"delta": "-250", "reason": "Refund reversal"})

    assert response.status_code == 302
    entry = Transaction.objects.get(
        account=account, type=TransactionType.ADMIN_ADJUSTMENT
    )
    assert (entry.amount, entry.balance_after, entry.created_by, entry.reason) == (
        -250,
        99_750,
        staff_user,
        "Refund reversal",
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"delta": "0", "reason": "x"},
        {"delta": "5", "reason": "  "},
        {"delta": "x", "reason": "y"},
    ],
)
def test_admin_adjustment_rejects_bad_input(
    admin_client: Client, account: Account, payload
) -> None:
    url = reverse("admin:points_account_adjust", args=[account.pk])

    response = admin_client.post(url, payload)

    assert response.status_code == 200
    assert response.context["form"].errors
    assert account.transactions.count() == 1


def test_admin_adjustment_beyond_available_shows_error(
    admin_client: Client, account: Account
) -> None:
    url = reverse("admin:points_account_adjust", args=[account.pk])

    response = admin_client.post(url, {"delta": "-100001", "reason": "too much"})

    assert response.status_code == 200
    assert response.context["form"].errors["delta"]
    assert account.transactions.count() == 1


def test_admin_adjustment_needs_staff(client: Client, account: Account, user) -> None:
    client.force_login(user)
    url = reverse("admin:points_account_adjust", args=[account.pk])
    response = client.post(url, {"delta": "5", "reason": "self-service"})
    assert response.status_code == 302
    assert account.transactions.count() == 1


def test_admin_account_pages_show_figures_read_only(
    admin_client: Client, account: Account
) -> None:
    listing = admin_client.get(
        reverse("admin:points_account_changelist"), {"q": account.user.email}
    )
    page = admin_client.get(reverse("admin:points_account_change", args=[account.pk]))

    assert listing.status_code == 200
    assert account.user.email in listing.content.decode()
    assert page.status_code == 200
    assert 'name="balance"' not in page.content.decode()


def test_admin_zero_balance_filter(admin_client: Client, account: Account) -> None:
    response = admin_client.get(
        reverse("admin:points_account_changelist"), {"balance": "zero"}
    )
    assert list(response.context["cl"].queryset) == []


def test_admin_transactions_cannot_be_changed_or_deleted(
    admin_client: Client, account: Account
) -> None:
    row = account.transactions.get()
    change = admin_client.post(
        reverse("admin:points_transaction_change", args=[row.pk]), {"amount": "1"}
    )
    delete = admin_client.post(
        reverse("admin:points_transaction_delete", args=[row.pk]), {"post": "yes"}
    )
    assert change.status_code == 403
    assert delete.status_code == 403
    row.refresh_from_db()
    assert row.amount == 100_000


def test_admin_account_page_lists_recent_transactions(
    admin_client: Client, account: Account, staff_user
) -> None:
    adjust(account=account, delta=-250, reason="Refund reversal", by_user=staff_user)

    page = admin_client.get(reverse("admin:points_account_change", args=[account.pk]))

    html = page.content.decode()
    assert "<td>+100,000</td><td>100,000</td>" in html
    assert "<td>-250</td><td>99,750</td>" in html
    assert "Refund reversal" in html


@pytest.mark.parametrize("object_id", ["999999", "1/change", "not-a-number"])
def test_admin_adjustment_of_a_missing_account_is_404(
    admin_client: Client, object_id: str
) -> None:
    response = admin_client.get(f"/admin/points/account/{object_id}/adjust/")

    assert response.status_code == 404


def test_admin_deduction_above_available_says_what_the_account_has(
    admin_client: Client, account: Account
) -> None:
    url = reverse("admin:points_account_adjust", args=[account.pk])

    response = admin_client.post(url, {"delta": "-100001", "reason": "too much"})

    errors = response.context["form"].errors["delta"]
    assert errors == [DEDUCTION_ABOVE_AVAILABLE_MESSAGE % {"available": "100,000"}]
    assert str(INSUFFICIENT_POINTS_MESSAGE) not in errors


def test_admin_ledger_rows_show_their_own_balance_not_the_accounts(
    admin_client: Client, account: Account, staff_user
) -> None:
    # Given a grant after the sign-up bonus: the account's balance moved on
    adjust(account=account, delta=500, reason="Goodwill", by_user=staff_user)

    listing = admin_client.get(reverse("admin:points_transaction_changelist"))

    html = listing.content.decode()
    assert account.user.email in html
    # The account's own text carries its current balance (100500): not shown per row
    assert str(account.__class__.objects.get(pk=account.pk)) not in html
    rows = [
        row.balance_after
        for row in listing.context["cl"].result_list
        if row.account_id == account.pk
    ]
    assert rows == [100_500, 100_000]
