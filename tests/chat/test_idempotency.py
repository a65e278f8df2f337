"""Idempotency keys on every entry point that charges: /api/chat, /v1, the form."""

import json

import pytest
from django.test import Client

from accounts.api_keys import create_api_key
from accounts.models import User
from points.models import Hold, Transaction, TransactionType
from points.services import MAX_IDEMPOTENCY_KEY_LENGTH


def usage_rows(user: User) -> int:
    return Transaction.objects.filter(
        account__user=user, type=TransactionType.CHAT_USAGE
    ).count()


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def chat(client: Client, message: str, **headers: str):
    return client.post(
        "/api/chat",
        json.dumps({"message": message}),
        content_type="application/json",
        headers=headers,
    )


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_idempotency_key_is_no_key(
    signed_in: Client, user: User, empty: str
) -> None:
    first = chat(signed_in, "hello", **{"Idempotency-Key": empty})
    second = chat(signed_in, "another question", **{"Idempotency-Key": empty})

    assert (first.status_code, second.status_code) == (200, 200)
    assert usage_rows(user) == 2
    assert not Hold.objects.exclude(idempotency_key=None).exists()


def test_key_of_the_documented_maximum_length_is_accepted(
    signed_in: Client, user: User
) -> None:
    key = "k" * MAX_IDEMPOTENCY_KEY_LENGTH

    first = chat(signed_in, "hello", **{"Idempotency-Key": key})
    again = chat(signed_in, "hello", **{"Idempotency-Key": key})

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert usage_rows(user) == 1


def test_key_longer_than_the_maximum_is_refused_before_anything_is_held(
    signed_in: Client,
) -> None:
    response = chat(
        signed_in,
        "hello",
        **{"Idempotency-Key": "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert not Hold.objects.exists()


def completion(secret: str, key: str, content: str = "hello", **fields: object):
    return Client().post(
        "/v1/chat/completions",
        json.dumps(
            {
                "model": "eora-demo",
                "messages": [{"role": "user", "content": content}],
                **fields,
            }
        ),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
    )


def test_v1_repeated_key_is_charged_once_and_answers_the_same(user: User) -> None:
    _key, secret = create_api_key(user=user, name="sdk")

    answers = [completion(secret, "retry-1", store=True) for _ in range(5)]

    assert {response.status_code for response in answers} == {200}
    texts = {r.json()["choices"][0]["message"]["content"] for r in answers}
    charges = {r["X-Points-Charged"] for r in answers}
    assert (len(texts), len(charges)) == (1, 1)
    assert usage_rows(user) == 1


def test_v1_repeated_key_without_store_is_charged_once_and_says_so(
    user: User,
) -> None:
    _key, secret = create_api_key(user=user, name="sdk")
    first = completion(secret, "retry-2")

    again = completion(secret, "retry-2")

    error = again.json()["error"]
    assert first.status_code == 200
    assert (again.status_code, error["code"]) == (409, "request_already_completed")
    assert error["deducted"] == int(first["X-Points-Charged"])
    assert usage_rows(user) == 1


def test_v1_same_key_for_another_request_conflicts(user: User) -> None:
    _key, secret = create_api_key(user=user, name="sdk")
    completion(secret, "retry-3", content="hello")

    other = completion(secret, "retry-3", content="something else")

    assert (other.status_code, other.json()["error"]["code"]) == (
        409,
        "idempotency_conflict",
    )
    assert usage_rows(user) == 1


def test_double_submitted_chat_form_is_charged_once(
    signed_in: Client, user: User
) -> None:
    page = signed_in.get("/chat/new/")
    turn_key = page.context["turn_key"]
    form = {"message": "hello", "turn_key": turn_key}

    first = signed_in.post("/chat/send/", form)
    second = signed_in.post("/chat/send/", form)

    assert (first.status_code, second.status_code) == (302, 302)
    assert first["Location"] == second["Location"]
    assert usage_rows(user) == 1
