"""Redemption codes: made, stored hashed, redeemed once per user, throttled."""

import hashlib
import re
from collections.abc import Callable
from datetime import date, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from accounts.models import User
from billing import codes
from billing.exceptions import (
    CodeAlreadyRedeemed,
    CodeDisabled,
    CodeExpired,
    CodeUsedUp,
    InvalidCode,
)
from billing.models import RedemptionCode
from common.http import Throttled
from points.audit import audit_accounts
from points.models import Account, TransactionType

pytestmark = pytest.mark.django_db

CODE_PATTERN = re.compile(
    r"^([23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}-){3}[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}$"
)
ADDRESS = "203.0.113.7"


def balance_of(user: User) -> int:
    return Account.objects.get(user=user).balance


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def few_guesses(settings: Settings) -> None:
    settings.REDEMPTION_GUESS_RATES = {"user": "3/hour", "address": "5/hour"}


def test_codes_are_grouped_from_an_unambiguous_alphabet_and_unique() -> None:
    made = codes.create_codes(points=100, count=200)

    assert all(CODE_PATTERN.match(code) for code in made)
    assert len(set(made)) == 200
    assert not set("01ILO") & set("".join(made))


def test_codes_are_stored_as_hashes_and_their_last_characters_only() -> None:
    [code] = codes.create_codes(points=100, count=1)

    stored = RedemptionCode.objects.get()
    digest = hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    assert stored.code_hash == digest
    assert stored.last_characters == code[-4:]
    assert code.replace("-", "") not in str(list(RedemptionCode.objects.values()))


def test_redeeming_credits_the_points_as_a_redemption_row(user: User) -> None:
    [code] = codes.create_codes(points=1_500, count=1)
    before = balance_of(user)

    redemption = codes.redeem_code(user=user, code=code, address=ADDRESS)

    assert redemption.transaction.type == TransactionType.REDEMPTION
    assert redemption.transaction.amount == 1_500
    assert balance_of(user) == before + 1_500
    assert RedemptionCode.objects.get().uses == 1
    assert audit_accounts() == []


def test_redeeming_forgives_case_spaces_and_missing_dashes(user: User) -> None:
    [code] = codes.create_codes(points=10, count=1)
    typed = f"  {code.replace('-', ' ').lower()} "

    assert codes.redeem_code(user=user, code=typed, address=ADDRESS).code.points == 10


def test_wrong_code_is_refused_as_invalid(user: User) -> None:
    codes.create_codes(points=10, count=1)

    with pytest.raises(InvalidCode):
        codes.redeem_code(user=user, code="2222-3333-4444-5555", address=ADDRESS)


def test_expired_code_is_refused_after_its_last_day(user: User) -> None:
    today = timezone.localdate()
    [code] = codes.create_codes(points=10, count=1, expires_at=codes.end_of_day(today))

    with (
        time_machine.travel(timezone.now() + timedelta(days=1, hours=1)),
        pytest.raises(CodeExpired),
    ):
        codes.redeem_code(user=user, code=code, address=ADDRESS)


def test_used_up_code_is_refused(make_user: Callable[..., User]) -> None:
    [code] = codes.create_codes(points=10, count=1, uses=2)
    for _ in range(2):
        codes.redeem_code(user=make_user(), code=code, address=ADDRESS)

    with pytest.raises(CodeUsedUp):
        codes.redeem_code(user=make_user(), code=code, address=ADDRESS)


def test_disabled_code_is_refused(user: User) -> None:
    [code] = codes.create_codes(points=10, count=1)
    codes.disable_codes(code_ids=[RedemptionCode.objects.get().pk])

    with pytest.raises(CodeDisabled):
        codes.redeem_code(user=user, code=code, address=ADDRESS)


def test_a_code_credits_each_user_once(user: User) -> None:
    [code] = codes.create_codes(points=10, count=1, uses=5)
    codes.redeem_code(user=user, code=code, address=ADDRESS)

    with pytest.raises(CodeAlreadyRedeemed):
        codes.redeem_code(user=user, code=code, address=ADDRESS)
    assert RedemptionCode.objects.get().uses == 1


def test_wrong_codes_lock_the_user_out_until_the_window_closes(
    few_guesses: None, make_user: Callable[..., User]
) -> None:
    user, neighbour = make_user(), make_user()
    [code] = codes.create_codes(points=10, count=1, uses=2)
    for index in range(3):
        with pytest.raises(InvalidCode):
            codes.redeem_code(user=user, code="WRONG", address=f"10.0.0.{index}")

    # then even the right code is refused, from any address, but not to others
    with pytest.raises(Throttled):
        codes.redeem_code(user=user, code=code, address="10.0.1.1")
    codes.redeem_code(user=neighbour, code=code, address="10.0.0.1")
    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
        codes.redeem_code(user=user, code=code, address="10.0.1.1")


def test_wrong_codes_from_one_address_lock_that_address_out(
    few_guesses: None, make_user: Callable[..., User]
) -> None:
    [code] = codes.create_codes(points=10, count=1, uses=3)
    for _ in range(5):
        with pytest.raises(InvalidCode):
            codes.redeem_code(user=make_user(), code="WRONG", address=ADDRESS)

    with pytest.raises(Throttled) as refused:
        codes.redeem_code(user=make_user(), code=code, address=ADDRESS)
    codes.redeem_code(user=make_user(), code=code, address="198.51.100.1")
    assert refused.value.retry_after > 0


def test_code_errors_are_distinct_in_the_api(
    api: APIClient, user: User, make_user: Callable[..., User]
) -> None:
    [used_up, disabled, mine] = codes.create_codes(points=10, count=3)
    codes.redeem_code(user=make_user(), code=used_up, address=ADDRESS)
    codes.disable_codes(
        code_ids=[RedemptionCode.objects.get(last_characters=disabled[-4:]).pk]
    )
    codes.redeem_code(user=user, code=mine, address=ADDRESS)

    answers = [
        api.post("/api/points/redeem", {"code": typed}, format="json")
        for typed in ("WRONG-CODE", used_up, disabled, mine)
    ]

    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (400, InvalidCode.code),
        (409, CodeUsedUp.code),
        (410, CodeDisabled.code),
        (409, CodeAlreadyRedeemed.code),
    ]
    assert all(a.json()["success"] is False and a.json()["error"] for a in answers)


def test_api_redeem_returns_the_points_and_the_new_balance(
    api: APIClient, user: User
) -> None:
    [code] = codes.create_codes(points=2_000, count=1)
    before = balance_of(user)

    body = api.post("/api/points/redeem", {"code": code}, format="json").json()

    assert body == {
        "success": True,
        "points": 2_000,
        "balance": before + 2_000,
        "available": before + 2_000,
    }


def test_api_throttled_redeem_answers_429_with_retry_after(
    few_guesses: None, api: APIClient
) -> None:
    for _ in range(3):
        api.post("/api/points/redeem", {"code": "WRONG"}, format="json")

    response = api.post("/api/points/redeem", {"code": "WRONG"}, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == Throttled.code
    assert int(response["Retry-After"]) > 0


def test_command_prints_each_code_in_full_one_a_line(user: User) -> None:
    out = StringIO()

    call_command(
        "redemption_codes",
        "--points=300",
        "--count=3",
        "--uses=2",
        "--expires=2099-12-31",
        "--note=launch",
        stdout=out,
    )

    printed = out.getvalue().split()
    stored = RedemptionCode.objects.all()
    assert len(printed) == 3 and all(CODE_PATTERN.match(code) for code in printed)
    assert {(c.points, c.max_uses, c.note) for c in stored} == {(300, 2, "launch")}
    assert timezone.localtime(stored[0].expires_at).date() == date(2100, 1, 1)
    assert codes.redeem_code(user=user, code=printed[0], address=ADDRESS)


def test_command_refuses_a_bad_date() -> None:
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        call_command("redemption_codes", "--points=1", "--count=1", "--expires=soon")
