"""Prices under a tier discount on the chat page: the model picker, the estimate
and each answer's cost line show the list price beside the user's own."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Message
from points.models import Hold, ModelRate, Tier
from points.pricing import Rates, discounted, quote
from points.services import set_tier
from tests.chat.test_pages import TWO_MODELS, ask, ask_api, estimate


@pytest.fixture
def gold_user(user, staff_user):
    gold = Tier.objects.create(code="gold", name="Gold", discount_bps=2_500)
    set_tier(account=user.points_account, tier=gold, reason="test", by_user=staff_user)
    return user


@pytest.fixture
def signed_in(client: Client, gold_user) -> Client:
    client.force_login(gold_user)
    return client


def test_quote_discounts_both_ends_as_reserve_does() -> None:
    rates = Rates(prompt=Decimal(1), completion=Decimal(1))

    result = quote(
        prompt_tokens=3,
        completion_limit=10,
        rates=rates,
        available=100,
        discount_bps=3_333,
    )

    assert (result.list_minimum_points, result.list_maximum_points) == (3, 13)
    assert result.minimum_points == discounted(3, 3_333)[1] == 3 - 0
    assert result.maximum_points == discounted(13, 3_333)[1] == 13 - 4


def test_quote_without_a_discount_charges_the_list_price() -> None:
    result = quote(
        prompt_tokens=3,
        completion_limit=10,
        rates=Rates(prompt=Decimal(1), completion=Decimal(1)),
        available=100,
    )

    assert result.minimum_points == result.list_minimum_points == 3
    assert result.maximum_points == result.list_maximum_points == 13
    assert result.discount_bps == 0


def test_model_picker_shows_the_users_price_beside_the_list_price(
    signed_in: Client, settings
) -> None:
    settings.LLM_MODELS = TWO_MODELS
    ModelRate.objects.create(
        model="eora-large", prompt_rate="0.5", completion_rate="1.25"
    )

    page = signed_in.get(reverse("chat:new")).content.decode()

    assert "eora-demo · 1,000토큰당 2,000 포인트 (내 가격: 1,500)" in page
    assert (
        "eora-large · 1,000토큰당 입력 500 / 출력 1,250 포인트 "
        "(내 가격: 입력 375 / 출력 937.5)"
    ) in page


def test_model_picker_shows_only_the_list_price_without_a_tier(
    client: Client, user
) -> None:
    client.force_login(user)

    page = client.get(reverse("chat:new")).content.decode()

    assert "eora-demo · 1,000토큰당 2,000 포인트" in page
    assert "(내 가격:" not in page


def test_estimate_gives_the_list_range_and_the_users_range(signed_in: Client) -> None:
    body = {"message": "포인트는 어떻게 쓰나요?"}

    result = estimate(signed_in, body).json()
    assert ask_api(signed_in, body).status_code == 200

    hold = Hold.objects.get()
    assert result["discount_bps"] == 2_500
    assert (
        result["minimum_points"] == discounted(result["list_minimum_points"], 2_500)[1]
    )
    assert (
        result["maximum_points"] == discounted(result["list_maximum_points"], 2_500)[1]
    )
    assert result["maximum_points"] < result["list_maximum_points"]
    # The turn held exactly the user's maximum
    assert hold.amount == result["maximum_points"]


def test_answer_cost_line_strikes_the_list_cost_through(signed_in: Client) -> None:
    ask(signed_in, "안녕하세요!")
    answer = Message.objects.get(role="assistant")
    list_cost = answer.transaction.list_cost
    assert list_cost > answer.points_charged

    page = signed_in.get(reverse("chat:conversation", args=[answer.conversation_id]))

    text = page.content.decode()
    assert f'· {answer.points_charged:,} 포인트 <s class="list-cost"' in text
    assert f">{list_cost:,} 포인트</s>" in text


def test_answer_cost_line_has_no_list_cost_without_a_tier(client: Client, user) -> None:
    client.force_login(user)
    ask(client, "안녕하세요!")
    answer = Message.objects.get(role="assistant")

    page = client.get(reverse("chat:conversation", args=[answer.conversation_id]))

    assert "list-cost" not in page.content.decode()
