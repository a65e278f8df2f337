"""GET /api/user/points/history.csv: the whole filtered history, streamed."""

import csv
import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from common.api import UNKNOWN_PARAMETER_MESSAGE
from points import services
from points.history_csv import CSV_CHUNK_ROWS, CSV_COLUMNS
from points.models import Account, Tier, Transaction, TransactionType
from tests.points.turns import chat_turn, seed_history

URL = "/api/user/points/history.csv"


@pytest.fixture
def account(user) -> Account:
    return user.points_account


@pytest.fixture
def laptop(user) -> ApiKey:
    key, _secret = create_api_key(user=user, name="laptop")
    return key


def download(client: Client, query: dict | None = None, **headers: str) -> bytes:
    response = client.get(URL, query or {}, **headers)
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content)


def read_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def optional(cell: str, kind: type) -> object:
    return None if cell == "" else kind(cell)


def test_csv_rows_equal_the_ledger_rows(
    api: APIClient, account: Account, laptop: ApiKey, staff_user
) -> None:
    # given credits, a turn through a key at a tier's discount, and a web turn
    gold = Tier.objects.create(code="gold", name="Gold", discount_bps=1_050)
    services.set_tier(account=account, tier=gold, reason="test", by_user=staff_user)
    services.grant(account=account, amount=1234, description="충전 1,234 포인트")
    chat_turn(account, model="gpt-4o-mini", api_key=laptop)
    chat_turn(account, prompt_tokens=100, completion_tokens=7)

    rows = read_csv(download(api))

    ledger = Transaction.objects.filter(account=account).select_related("api_key")
    ledger = list(ledger.order_by("-version"))
    assert len(rows) == len(ledger) == 4
    for cells, row in zip(rows, ledger, strict=True):
        assert cells["type"] == row.type
        assert int(cells["amount"]) == row.amount
        assert cells["description"] == row.description
        assert datetime.fromisoformat(cells["timestamp"]) == row.created_at
        assert cells["timestamp"].endswith("+09:00")
        assert int(cells["balance_after"]) == row.balance_after
        assert optional(cells["prompt_tokens"], int) == row.prompt_tokens
        assert optional(cells["completion_tokens"], int) == row.completion_tokens
        assert optional(cells["total_tokens"], int) == row.total_tokens
        assert cells["model"] == row.model
        assert optional(cells["prompt_rate"], Decimal) == row.prompt_rate
        assert optional(cells["completion_rate"], Decimal) == row.completion_rate
        assert optional(cells["list_cost"], int) == row.list_cost
        assert int(cells["discount"]) == row.discount
        assert cells["tier"] == row.tier
        assert int(cells["uncharged_points"]) == row.uncharged_points
        assert int(cells["free_amount"]) == row.free_amount
        assert cells["api_key"] == (row.api_key.name if row.api_key else "")
        assert int(cells["version"]) == row.version
    # and the figures that make the row a discounted turn through the key
    turn = rows[1]
    assert (turn["tier"], turn["api_key"], turn["prompt_rate"]) == (
        "gold",
        "laptop",
        "2.0000",
    )
    assert int(turn["discount"]) > 0


def test_csv_starts_with_a_byte_order_mark_and_the_header(api: APIClient) -> None:
    body = download(api)

    assert body.startswith(b"\xef\xbb\xbf")
    assert next(csv.reader(io.StringIO(body.decode("utf-8-sig")))) == list(CSV_COLUMNS)


def test_csv_is_an_attachment_named_for_the_seoul_date(api: APIClient) -> None:
    # 16:30 UTC on the 1st is 01:30 on the 2nd in Seoul
    with time_machine.travel(datetime(2025, 3, 1, 16, 30, tzinfo=UTC), tick=False):
        response = api.get(URL)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="eora-points-history-2025-03-02.csv"'
    )


@pytest.mark.parametrize("text", ["=SUM(A1)", "+1", "-2+3", "@cmd", "\tx", "\rx"])
def test_csv_guards_text_cells_against_formulas(
    api: APIClient, user, account: Account, text: str
) -> None:
    services.grant(account=account, amount=5, description=text)
    key, _secret = create_api_key(user=user, name="=HYPERLINK(1)")
    chat_turn(account, model=text, api_key=key)

    turn, grant = read_csv(download(api))[:2]

    assert grant["description"] == f"'{text}"
    assert turn["model"] == f"'{text}"
    assert turn["api_key"] == "'=HYPERLINK(1)"


def test_csv_leaves_numbers_as_numbers(api: APIClient, account: Account) -> None:
    row = chat_turn(account)

    turn = read_csv(download(api))[0]

    assert turn["amount"] == str(row.amount)
    assert turn["amount"].startswith("-")


def test_csv_applies_the_filters(
    api: APIClient, account: Account, laptop: ApiKey
) -> None:
    wanted = chat_turn(account, model="gpt-4o-mini", api_key=laptop)
    chat_turn(account, model="gpt-4o-mini")
    chat_turn(account, model="gpt-4o", api_key=laptop)
    services.grant(account=account, amount=5, type=TransactionType.REFUND)
    query = {
        "type": "chat_usage",
        "model": "gpt-4o-mini",
        "api_key": laptop.pk,
        "since": (wanted.created_at - timedelta(seconds=1)).isoformat(),
        "until": (timezone.now() + timedelta(minutes=1)).isoformat(),
    }

    rows = read_csv(download(api, query))

    assert [int(row["version"]) for row in rows] == [wanted.version]


def test_csv_web_pages_filter_takes_rows_without_a_key(
    api: APIClient, account: Account, laptop: ApiKey
) -> None:
    chat_turn(account, api_key=laptop)
    services.grant(account=account, amount=5, type=TransactionType.REFUND)

    rows = read_csv(download(api, {"api_key": "web"}))

    assert [row["type"] for row in rows] == ["refund", "signup_bonus"]


def test_csv_comes_whole_across_chunks(api: APIClient, account: Account) -> None:
    for _ in range(CSV_CHUNK_ROWS + 1):
        services.grant(account=account, amount=1)

    rows = read_csv(download(api))

    versions = [int(row["version"]) for row in rows]
    assert versions == list(range(CSV_CHUNK_ROWS + 2, 0, -1))


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 10},
        {"cursor": "cD0x"},
        {"api_key": "nope"},
        {"type": "nope"},
        {"since": "yesterday"},
    ],
)
def test_csv_refuses_bad_query_in_the_json_envelope(
    api: APIClient, query: dict
) -> None:
    response = api.get(URL, query, HTTP_ACCEPT="text/csv")

    body = response.json()
    assert response.status_code == 400
    assert (body["success"], body["code"]) == (False, "invalid_request")


def test_csv_names_the_unknown_parameter(api: APIClient) -> None:
    body = api.get(URL, {"limit": 10}).json()

    assert body["errors"] == {"limit": [str(UNKNOWN_PARAMETER_MESSAGE)]}


def test_csv_needs_a_caller(client: Client) -> None:
    response = client.get(URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_csv_shows_only_the_callers_rows(api: APIClient, make_user) -> None:
    other = make_user()
    services.grant(account=other.points_account, amount=777)

    rows = read_csv(download(api))

    assert [row["amount"] for row in rows] == ["100000"]


def test_csv_streams_asynchronously_under_asgi(
    user, account: Account, api_key: str
) -> None:
    for _ in range(CSV_CHUNK_ROWS + 1):
        services.grant(account=account, amount=1)

    async def scenario() -> tuple[bool, bytes]:
        response = await AsyncClient().get(
            URL, headers={"Authorization": f"Bearer {api_key}"}
        )
        return response.is_async, b"".join(
            [piece async for piece in response.streaming_content]
        )

    is_async, body = async_to_sync(scenario)()

    assert is_async
    assert len(read_csv(body)) == CSV_CHUNK_ROWS + 2


HUGE_HISTORY = 100_000


def test_csv_of_a_huge_history_streams_in_constant_memory(
    api: APIClient, account: Account
) -> None:
    seed_history(account, HUGE_HISTORY)
    response = api.get(URL)

    produced, lines = 0, 0
    tracemalloc.start()
    try:
        for piece in response.streaming_content:
            produced += len(piece)
            lines += piece.count(b"\n")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The header and every row, the sign-up bonus among them.
    assert lines == 1 + HUGE_HISTORY + 1
    assert peak < produced / 10, (peak, produced)
