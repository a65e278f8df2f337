import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from points.exceptions import InvalidArgument
from points.models import ModelRate
from points.pricing import Rates, completion_tokens_affordable, cost_of, rates_for

TWO = Rates(prompt=Decimal(2), completion=Decimal(2))


@pytest.mark.parametrize(
    ("prompt", "completion", "points"), [(3, 33, 72), (16, 33, 98), (44, 33, 154)]
)
def test_cost_of_matches_seed_examples_with_default_rates(
    db: None, prompt: int, completion: int, points: int
) -> None:
    assert (
        cost_of(
            prompt_tokens=prompt,
            completion_tokens=completion,
            rates=rates_for("gpt-4o"),
        )
        == points
    )


def test_cost_of_rounds_down() -> None:
    rates = Rates(prompt=Decimal("0.3"), completion=Decimal("0.7"))
    assert cost_of(prompt_tokens=3, completion_tokens=3, rates=rates) == 3


def test_cost_of_charges_at_least_one_point() -> None:
    rates = Rates(prompt=Decimal("0.001"), completion=Decimal("0.001"))
    assert cost_of(prompt_tokens=1, completion_tokens=0, rates=rates) == 1


@pytest.mark.parametrize("tokens", [-1, 1.0, True, "3", None])
def test_cost_of_rejects_bad_token_counts(tokens: object) -> None:
    with pytest.raises(InvalidArgument):
        cost_of(prompt_tokens=tokens, completion_tokens=0, rates=TWO)


def test_rates_for_uses_admin_table(db: None) -> None:
    ModelRate.objects.create(
        model="gpt-4o", prompt_rate=Decimal("1.5"), completion_rate=Decimal("4")
    )
    assert rates_for("gpt-4o") == Rates(prompt=Decimal("1.5"), completion=Decimal("4"))
    assert rates_for("other") == TWO


def test_rates_for_falls_back_to_points_per_token(db: None, settings) -> None:
    settings.POINTS_PER_TOKEN = Decimal("3")
    assert rates_for("gpt-4o") == Rates(prompt=Decimal(3), completion=Decimal(3))


@pytest.mark.parametrize("rate", [Decimal(0), Decimal("-1")])
def test_model_rate_rejects_non_positive_rate_in_validation(
    db: None, rate: Decimal
) -> None:
    with pytest.raises(ValidationError):
        ModelRate(model="m", prompt_rate=rate, completion_rate=Decimal(1)).full_clean()


def test_model_rate_rejects_non_positive_rate_in_database(db: None) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelRate.objects.create(
            model="m", prompt_rate=Decimal(0), completion_rate=Decimal(1)
        )


def test_completion_tokens_affordable_after_prompt() -> None:
    assert completion_tokens_affordable(points=100, prompt_tokens=10, rates=TWO) == 40
    assert completion_tokens_affordable(points=10, prompt_tokens=10, rates=TWO) == 0


def test_rate_edited_in_the_admin_is_used_by_the_next_turn(
    client: Client, user, staff_user, settings
) -> None:
    # given a rate that a turn has just read (and this process kept)
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = ["eora-demo"]
    settings.DEMO_STREAM_DELAY_MS = 0
    rate = ModelRate.objects.create(
        model="eora-demo", prompt_rate="1", completion_rate="1"
    )
    client.force_login(user)
    ask(client)

    # when staff double it in the admin
    admin = Client()
    admin.force_login(staff_user)
    response = admin.post(
        reverse("admin:points_modelrate_change", args=[rate.pk]),
        {"model": "eora-demo", "prompt_rate": "2", "completion_rate": "2"},
    )
    assert response.status_code == 302

    # then the next turn is charged at the new rate
    info = ask(client)["points_info"]
    tokens = info["token_usage"]
    assert info["deducted"] == cost_of(
        prompt_tokens=tokens["prompt_tokens"],
        completion_tokens=tokens["completion_tokens"],
        rates=TWO,
    )


def ask(client: Client) -> dict:
    response = client.post(
        "/api/chat",
        json.dumps({"message": "hello", "model": "eora-demo"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()
