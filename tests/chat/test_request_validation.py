"""The chat endpoints accept exactly what their schema documents."""

import json

import pytest
from django.test import Client

from accounts.api_keys import create_api_key
from accounts.models import User
from points.models import Hold

VALID = {"model": "eora-demo", "messages": [{"role": "user", "content": "hi"}]}


def completion(user: User, body: object):
    _key, secret = create_api_key(user=user, name="validation")
    return Client().post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": [{"role": {}, "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"top_p": "abc"}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": True}, "temperature"),
        ({"n": True}, "n"),
        ({"n": 2}, "n"),
        ({"stream_options": 0}, "stream_options"),
        ({"stream": "yes"}, "stream"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 50, "max_tokens": "x"}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": 1.5}, "seed"),
        ({"presence_penalty": 3}, "presence_penalty"),
    ],
)
def test_v1_refuses_what_its_schema_forbids(user: User, change: dict, param: str):
    response = completion(user, {**VALID, **change})

    error = response.json()["error"]
    assert (response.status_code, error["type"]) == (400, "invalid_request_error")
    assert error["param"] == param
    assert not Hold.objects.exists()


def test_v1_accepts_the_documented_sampling_options(user: User) -> None:
    response = completion(
        user,
        {
            **VALID,
            "top_p": 0.5,
            "temperature": 1,
            "stop": ["\n"],
            "seed": 7,
            "presence_penalty": -1.5,
            "n": 1,
            "stream_options": None,
        },
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"message": "hi", "session_id": True},
        {"message": "hi", "stream": 1},
        {"message": 5},
        {"message": "hi", "model": 3},
    ],
)
def test_api_chat_refuses_what_its_schema_forbids(
    client: Client, user: User, body: dict
) -> None:
    client.force_login(user)

    response = client.post(
        "/api/chat", json.dumps(body), content_type="application/json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert not Hold.objects.exists()
