"""A turn's ledger writes are sent with the COMMIT, on PostgreSQL (`points.pipeline`).

`reserve` and `settle` lock the account with a statement whose answer they
wait for; the writes after it are pipelined, so that the account stays locked
for one round trip more, not one a write.
"""

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg.pq import PipelineStatus

from points import services
from points.models import Account, Hold, HoldStatus, Transaction
from points.services import TokenCount
from tests.points.turns import reserve_turn as reserve

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def pipelined_statements():
    """Record each statement's first word and whether it was sent pipelined."""
    sent: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        status = connection.connection.pgconn.pipeline_status
        sent.append((sql.split()[0], status != PipelineStatus.OFF))
        return execute(sql, params, many, context)

    return sent, connection.execute_wrapper(record)


def test_reserve_sends_its_writes_with_the_commit(account: Account) -> None:
    sent, recording = pipelined_statements()
    with recording:
        reservation = reserve(account)

    assert sent == [("SELECT", False), ("INSERT", True), ("UPDATE", True)]
    # The hold learnt its id when the answers came back; the connection is back
    # to one statement at a time.
    assert Hold.objects.get(pk=reservation.hold.pk).amount == 84
    assert connection.connection.pgconn.pipeline_status == PipelineStatus.OFF
    assert Account.objects.get(pk=account.pk).held == 84


def test_settle_sends_its_writes_with_the_commit(account: Account) -> None:
    reservation = reserve(account)
    before = Account.objects.get(pk=account.pk).balance
    sent, recording = pipelined_statements()
    with recording:
        settlement = services.settle(
            reservation=reservation, counted=TokenCount(26, 10)
        )

    assert sent == [
        ("SELECT", False),
        ("UPDATE", True),
        ("INSERT", True),
        ("UPDATE", True),
    ]
    entry = Transaction.objects.get(pk=settlement.entry.pk)
    assert (entry.amount, entry.hold_id) == (-72, reservation.hold.pk)
    account = Account.objects.get(pk=account.pk)
    assert (account.held, account.balance) == (0, before - 72)


def test_a_keyed_reserve_records_the_hold_it_made(account: Account) -> None:
    first = reserve(account, idempotency_key="k-1", request_fingerprint="same")
    again = reserve(account, idempotency_key="k-1", request_fingerprint="same")

    assert again.replayed
    assert again.hold.pk == first.hold.pk is not None


@pytest.fixture
def failing_ledger_insert():
    """Make every insert of a ledger row fail, as a full disk or a bug would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pipeline_test_fail() RETURNS trigger AS $$"
            " BEGIN RAISE EXCEPTION 'ledger row refused'; END $$ LANGUAGE plpgsql;"
            " CREATE TRIGGER pipeline_test_fail BEFORE INSERT ON points_transaction"
            " FOR EACH ROW EXECUTE FUNCTION pipeline_test_fail();"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER pipeline_test_fail ON points_transaction;"
                " DROP FUNCTION pipeline_test_fail();"
            )


def test_a_pipelined_write_that_fails_rolls_the_whole_settlement_back(
    account: Account, failing_ledger_insert
) -> None:
    reservation = reserve(account)
    before = Account.objects.get(pk=account.pk).balance

    with pytest.raises(DatabaseError, match="ledger row refused"):
        services.settle(reservation=reservation, counted=TokenCount(26, 10))

    # Nothing of it stayed: the hold is open, the balance and `held` untouched,
    # and the connection answers the next statement in the ordinary way.
    hold = Hold.objects.get(pk=reservation.hold.pk)
    assert (hold.status, hold.captured_amount) == (HoldStatus.OPEN, 0)
    account = Account.objects.get(pk=account.pk)
    assert (account.balance, account.held) == (before, 84)
    assert connection.connection.pgconn.pipeline_status == PipelineStatus.OFF
    assert reservation.hold.pk is not None


def test_a_failing_pipelined_write_in_an_outer_transaction_stays_in_its_savepoint(
    account: Account, failing_ledger_insert
) -> None:
    reservation = reserve(account)

    with transaction.atomic():
        # Here `settle` ends in a savepoint, not a COMMIT: its writes are synced
        # before the savepoint ends, so their error is raised inside it.
        with pytest.raises(DatabaseError, match="ledger row refused"):
            services.settle(reservation=reservation, counted=TokenCount(26, 10))
        # The outer transaction goes on, in the ordinary way.
        hold = Hold.objects.get(pk=reservation.hold.pk)
        assert connection.connection.pgconn.pipeline_status == PipelineStatus.OFF

    assert hold.status == HoldStatus.OPEN
    assert Account.objects.get(pk=account.pk).held == 84


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


def test_the_lock_statement_reads_only_the_open_holds_of_a_busy_account(
    account: Account,
) -> None:
    # given an account whose turns ended many holds since the statistics were
    # last gathered (a new deployment's, or a burst's before autovacuum's next
    # ANALYZE); released holds charged nothing, so the ledger stays as it was
    def end_holds(count: int) -> None:
        now = timezone.now()
        Hold.objects.bulk_create(
            Hold(
                account=account,
                amount=84,
                status=HoldStatus.RELEASED,
                expires_at=now,
                created_at=now,
                ended_at=now,
            )
            for _ in range(count)
        )

    # (gathered in a burst, when most holds were open)
    open_ones = [reserve(account, completion_tokens=1) for _ in range(40)]
    end_holds(10)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE points_hold")
    for reservation in open_ones:
        services.release_hold(hold=reservation.hold)
    end_holds(5_000)

    # when a turn takes the account's lock
    sent: list[tuple[str, object]] = []

    def record(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        reserve(account)

    # then its look for an overdue hold goes through the open holds alone
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = sent[0]
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        nodes = plan_nodes(cursor.fetchone()[0][0]["Plan"])
    hold_scans = [node for node in nodes if node.get("Relation Name") == "points_hold"]
    # Both indexes hold the open holds alone.
    assert len(hold_scans) == 1
    assert hold_scans[0].get("Index Name") in {
        "points_hold_open_account_idx",
        "points_hold_open_expiry_idx",
    }
    assert all(node.get("Rows Removed by Filter", 0) == 0 for node in hold_scans)
