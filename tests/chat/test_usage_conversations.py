"""The costliest conversations of a range: their answers' ledger rows, summed."""

from datetime import date

import pytest

from accounts.models import User
from chat.models import Conversation, Message
from chat.selectors import costliest_conversations
from points.models import Transaction, TransactionType
from tests.points.usage_ledger import (
    SINCE,
    UNTIL,
    SeededLedger,
    ledger_rows,
    seed_ledger,
)


@pytest.fixture
def seeded(settings, user: User) -> SeededLedger:
    return seed_ledger(user, settings)


def spent_by_conversation(seeded: SeededLedger, since: date, until: date) -> dict:
    """Return the points of each conversation's turns of the range, from the ledger."""
    ids = [
        row.pk
        for row in ledger_rows(seeded.account, since, until)
        if row.type == TransactionType.CHAT_USAGE
    ]
    spent: dict[str, int] = {}
    for message in Message.objects.filter(transaction_id__in=ids).select_related(
        "transaction"
    ):
        key = str(message.conversation_id)
        spent[key] = spent.get(key, 0) - message.transaction.amount
    return spent


def test_costliest_conversations_sum_their_turns_of_the_range(
    seeded: SeededLedger,
) -> None:
    top = costliest_conversations(account=seeded.account, since=SINCE, until=UNTIL)

    expected = spent_by_conversation(seeded, SINCE, UNTIL)
    assert {c.conversation_id: c.points for c in top} == expected
    assert [c.points for c in top] == sorted(expected.values(), reverse=True)


def test_a_turn_at_2359_kst_belongs_to_the_day_before(seeded: SeededLedger) -> None:
    first_of_december = date(2026, 12, 1)

    top = costliest_conversations(
        account=seeded.account, since=first_of_december, until=first_of_december
    )

    expected = spent_by_conversation(seeded, first_of_december, first_of_december)
    assert {c.conversation_id: c.points for c in top} == expected
    assert [c.turns for c in top] == [1, 1, 1]


def test_costliest_conversations_are_the_users_own(
    seeded: SeededLedger, make_user
) -> None:
    other = make_user()

    assert (
        costliest_conversations(account=other.points_account, since=SINCE, until=UNTIL)
        == []
    )


def test_costliest_conversations_keep_the_limit(seeded: SeededLedger) -> None:
    top = costliest_conversations(
        account=seeded.account, since=SINCE, until=UNTIL, limit=2
    )

    expected = spent_by_conversation(seeded, SINCE, UNTIL)
    assert [c.points for c in top] == sorted(expected.values(), reverse=True)[:2]


def test_each_turn_row_records_its_conversation(seeded: SeededLedger) -> None:
    answers = Message.objects.filter(
        transaction__isnull=False, transaction__account=seeded.account
    ).select_related("transaction")

    assert answers
    assert all(m.transaction.conversation_id == m.conversation_id for m in answers)


def test_a_deleted_conversation_leaves_the_list_and_the_ledger_as_it_was(
    seeded: SeededLedger,
) -> None:
    top = costliest_conversations(account=seeded.account, since=SINCE, until=UNTIL)
    gone = top[0].conversation_id

    Conversation.objects.filter(pk=gone).delete()

    after = costliest_conversations(account=seeded.account, since=SINCE, until=UNTIL)
    assert [c.conversation_id for c in after] == [c.conversation_id for c in top[1:]]
    # Its rows still carry its id, and the roll-up still sums them (the closing
    # audit checks the roll-up against the ledger).
    assert Transaction.objects.filter(conversation_id=gone).exists()
