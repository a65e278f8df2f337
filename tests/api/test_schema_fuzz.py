"""Fuzz every API operation against the OpenAPI schema we serve at /api/schema/.

Schemathesis loads the schema through the WSGI app, generates requests for each
operation (valid and invalid ones) and sends them through the same app with a real
API key. Every answer must be free of server errors and match the schema: a
documented status code, the documented content type and body.
"""

from collections.abc import Callable

import pytest
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pytest_django.fixtures import Settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from eora.asgi import application

SCHEMA_PATH = "/api/schema/"
EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def load_served_schema() -> schemathesis.BaseSchema:
    """Return the schema as GET /api/schema/ serves it.

    It is read while pytest collects the tests, before the test environment allows
    the test client's host and while the database is closed; without throttle rates
    the anonymous request needs no throttle cache.
    """
    with override_settings(API_THROTTLE_RATES={}, ALLOWED_HOSTS=["testserver"]):
        return schemathesis.openapi.from_asgi(SCHEMA_PATH, application)


schema = load_served_schema()


@pytest.fixture(autouse=True)
def instant_demo_model(settings: Settings) -> None:
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = ["eora-demo"]
    settings.DEMO_STREAM_DELAY_MS = 0
    # A few hundred requests per run stay far below these.
    settings.API_THROTTLE_RATES = {"user": "100000/min", "api_key": "100000/min"}


@pytest.fixture
def bearer(user: User) -> Callable[[], dict[str, str]]:
    """Return a function giving the headers of a key of `user` that is still active.

    DELETE /api/keys/{key_id} may revoke the key in use; the next case then gets a
    fresh one, created as a user would.
    """
    key, secret = create_api_key(user=user, name="fuzz")
    current = {"key": key, "secret": secret}

    def headers() -> dict[str, str]:
        if ApiKey.objects.filter(
            pk=current["key"].pk, revoked_at__isnull=True
        ).exists():
            return {"Authorization": f"Bearer {current['secret']}"}
        current["key"], current["secret"] = create_api_key(user=user, name="fuzz")
        return {"Authorization": f"Bearer {current['secret']}"}

    return headers


# Each request goes through the full WSGI stack, which closes the connection when
# it finishes (close_old_connections); that needs real transactions, not a
# test-wide atomic block.
@pytest.mark.django_db(transaction=True)
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_api_answers_match_the_schema(
    case: schemathesis.Case, bearer: Callable[[], dict[str, str]]
) -> None:
    r = case.call_and_validate(headers=bearer(), checks=CHECKS)
    with open("/tmp/h6/statuses.txt", "a") as f:
        f.write(f"{case.operation.label} {r.status_code} {r.headers.get('content-type')}\n")
