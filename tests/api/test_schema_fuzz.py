"""Fuzz every API operation against the OpenAPI schema we serve at /api/schema/.

Schemathesis reads the schema from the ASGI app that uvicorn serves in production,
generates requests for each operation, valid and invalid, and sends them through
the same app with a real API key. Every answer must be free of server errors and
match the schema: a documented status code, content type and body.
"""

import pytest
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pytest_django.fixtures import Settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys import create_api_key
from accounts.models import User
from eora.asgi import application

SCHEMA_PATH = "/api/schema/"
EXAMPLES_PER_OPERATION = 20
# Read a streamed answer to its end (about 50 deltas) instead of cutting it short.
FUZZ_CONFIG = schemathesis.Config.from_dict({"max-stream-events": 500})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def load_served_schema() -> schemathesis.BaseSchema:
    """Return the schema as GET /api/schema/ serves it.

    It is read while pytest collects the tests: before the test environment allows
    the test client's host, and while the database is closed (without throttle
    rates the anonymous request needs no throttle cache).
    """
    with override_settings(API_THROTTLE_RATES={}, ALLOWED_HOSTS=["testserver"]):
        return schemathesis.openapi.from_asgi(
            SCHEMA_PATH, application, config=FUZZ_CONFIG
        )


schema = load_served_schema()


class ActiveKey:
    """An API key of the user, replaced when the fuzzer revokes it.

    DELETE /api/keys/{key_id} may well revoke the key in use (ids are small); the
    next case then gets a new key, made the way a user makes one.
    """

    def __init__(self, user: User) -> None:
        self.user = user
        self._create()

    def _create(self) -> None:
        self.key, self.secret = create_api_key(user=self.user, name="fuzz")

    def headers(self) -> dict[str, str]:
        self.key.refresh_from_db(fields=["revoked_at"])
        if self.key.revoked_at is not None:
            self._create()
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture(autouse=True)
def instant_demo_model(settings: Settings) -> None:
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = ["eora-demo"]
    settings.DEMO_STREAM_DELAY_MS = 0
    # A run sends a few hundred requests, far below these.
    settings.API_THROTTLE_RATES = {"user": "100000/min", "api_key": "100000/min"}


@pytest.fixture
def active_key(user: User) -> ActiveKey:
    return ActiveKey(user)


# The app runs in schemathesis' event loop thread and Django's sync thread, each
# with its own database connection: the test's data must be committed to be seen.
@pytest.mark.django_db(transaction=True)
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # One key and one account serve every example of an operation, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@schema.parametrize()
def test_api_answers_match_the_schema(
    case: schemathesis.Case, active_key: ActiveKey
) -> None:
    case.call_and_validate(headers=active_key.headers(), checks=CHECKS)


# The DRF views, whose input serializers refuse what the schema forbids. The plain
# views parse their own bodies; /api/chat also takes an empty Idempotency-Key,
# which the schema forbids, as no key.
drf_operations = schema.exclude(path="/api/chat").exclude(path_regex="^/v1/")


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@drf_operations.parametrize()
def test_api_refuses_requests_the_schema_forbids(
    case: schemathesis.Case, active_key: ActiveKey
) -> None:
    case.call_and_validate(
        headers=active_key.headers(), checks=[negative_data_rejection]
    )


def streamed_chat_case(active_key: ActiveKey) -> schemathesis.Case:
    # Random bodies rarely pair a valid message with `stream: true`.
    return schema["/api/chat"]["POST"].Case(
        body={"message": "Hello?", "stream": True},
        headers={**active_key.headers(), "Idempotency-Key": "stream-once"},
    )


@pytest.mark.django_db(transaction=True)
def test_streamed_chat_answer_matches_the_schema(active_key: ActiveKey) -> None:
    response = streamed_chat_case(active_key).call_and_validate(checks=CHECKS)

    assert response.status_code == 200
    assert response.headers["content-type"] == ["text/event-stream"]
    assert "event: done" in response.text


@pytest.mark.django_db(transaction=True)
def test_replayed_streamed_chat_answer_matches_the_schema(
    active_key: ActiveKey,
) -> None:
    # given a streamed turn, answered in full
    case = streamed_chat_case(active_key)
    assert "event: done" in case.call().text

    # when the client retries it with the same idempotency key
    response = case.call_and_validate(checks=CHECKS)

    # then the first answer comes back, not an error
    assert response.status_code == 200
