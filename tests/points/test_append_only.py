import pytest
from django.db import IntegrityError, InternalError, connection, transaction

from points.ledger_guard import APPEND_ONLY_MESSAGE, enforced
from points.models import Account, Transaction
from points.services import grant

# PostgreSQL reports a RAISE EXCEPTION with an integrity errcode as IntegrityError;
# SQLite's RAISE(ABORT) arrives as IntegrityError too. InternalError covers drivers
# that classify it differently.
REJECTED = (IntegrityError, InternalError)


def attempt(statement: str, params: list[object]) -> None:
    with transaction.atomic(), enforced(connection), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_raw_update_of_ledger_row_is_rejected(account: Account) -> None:
    row = account.transactions.get()
    with pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE):
        attempt("UPDATE points_transaction SET amount = 1 WHERE id = %s", [row.pk])
    row.refresh_from_db()
    assert row.amount == 100_000


def test_raw_delete_of_ledger_row_is_rejected(account: Account) -> None:
    row = account.transactions.get()
    with pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE):
        attempt("DELETE FROM points_transaction WHERE id = %s", [row.pk])
    assert Transaction.objects.filter(pk=row.pk).exists()


def test_orm_update_of_ledger_row_is_rejected(account: Account) -> None:
    with (
        pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE),
        transaction.atomic(),
        enforced(connection),
    ):
        Transaction.objects.filter(account=account).update(description="rewritten")
    assert account.transactions.get().description != "rewritten"


def test_orm_delete_of_ledger_row_is_rejected(account: Account) -> None:
    # A row nothing else refers to, so that Django's collector reaches the DELETE.
    entry = grant(account=account, amount=5)
    with (
        pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE),
        transaction.atomic(),
        enforced(connection),
    ):
        Transaction.objects.filter(pk=entry.pk).delete()
    assert Transaction.objects.filter(pk=entry.pk).exists()


def test_model_save_of_existing_ledger_row_is_rejected(account: Account) -> None:
    row = account.transactions.get()
    row.amount = 5
    with (
        pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE),
        transaction.atomic(),
        enforced(connection),
    ):
        row.save()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_truncate_of_ledger_table_is_rejected(account: Account) -> None:
    # Committed rows: inside a test transaction PostgreSQL refuses TRUNCATE for
    # its pending foreign-key checks before the guard is reached.
    with pytest.raises(REJECTED, match=APPEND_ONLY_MESSAGE):
        attempt("TRUNCATE points_transaction CASCADE", [])
    assert account.transactions.count() == 1
