"""A turn waits for the model without a pooled database connection."""

import pytest
from django.db import connection, transaction

from accounts.models import User
from chat.services import (
    PreparedTurn,
    TurnRequest,
    prepare_turn,
    release_unstarted_turn,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def pooled() -> bool:
    return bool(connection.settings_dict.get("OPTIONS", {}).get("pool"))


def test_prepared_turn_gives_its_connection_back_to_the_pool(
    user: User, instant_demo_model: None
) -> None:
    assert pooled()

    turn = prepare_turn(TurnRequest(user=user, message="Hello", store=False))

    assert isinstance(turn, PreparedTurn)
    assert connection.connection is None
    # The next step takes a connection again and ends the turn.
    release_unstarted_turn(turn)
    turn.hold.refresh_from_db()
    assert turn.hold.status == "released"


def test_inside_a_transaction_the_connection_is_kept(
    user: User, instant_demo_model: None
) -> None:
    with transaction.atomic():
        turn = prepare_turn(TurnRequest(user=user, message="Hello", store=False))

        assert connection.connection is not None
    release_unstarted_turn(turn)
