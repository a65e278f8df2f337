"""The seed's Korean texts are a contract that clients already parse."""

from decimal import Decimal

from django.utils import translation

from points import services
from points.exceptions import INSUFFICIENT_POINTS_MESSAGE
from points.models import Account
from points.pricing import Rates, Usage

SEED_INSUFFICIENT = "포인트가 부족합니다. 포인트를 충전해주세요."


def test_signup_bonus_row_uses_seed_wording(account: Account) -> None:
    assert (
        account.transactions.get().description
        == "신규 회원가입 보너스 (100,000 포인트)"
    )


def test_chat_usage_row_uses_seed_wording(account: Account) -> None:
    usage = Usage(44, 33, "gpt-4o", Rates(Decimal(2), Decimal(2)))
    hold = services.place_hold(account=account, amount=1_000)

    entry = services.capture_hold(hold=hold, actual_cost=usage.cost, usage=usage)

    assert entry.description == "채팅 사용 (토큰: 77, 입력: 44, 출력: 33)"


def test_ledger_rows_are_written_in_default_language_whatever_is_active(
    account: Account,
) -> None:
    with translation.override("en"):
        entry = services.grant(account=account, amount=1_000)
    assert entry.description == "포인트 충전 (1,000 포인트)"


def test_insufficient_points_message_is_korean_by_default_and_english_on_request() -> (
    None
):
    with translation.override("ko"):
        assert str(INSUFFICIENT_POINTS_MESSAGE) == SEED_INSUFFICIENT
    with translation.override("en"):
        assert str(INSUFFICIENT_POINTS_MESSAGE) != SEED_INSUFFICIENT
