"""/metrics: served only with METRICS_TOKEN, to its bearer, in the text format."""

from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from pytest_django.fixtures import Settings

from common.metrics import PrometheusAfterMiddleware, PrometheusBeforeMiddleware
from points.models import Hold, HoldStatus
from points.services import account_of, place_hold, release_hold
from tests.prometheus import TOKEN, parse, scrape, value

URL = "/metrics"


@pytest.fixture
def metrics_on(settings: Settings) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


def test_metrics_do_not_exist_without_metrics_token(
    client: Client, settings: Settings, db: None
) -> None:
    settings.METRICS_TOKEN = ""

    response = client.get(URL, headers={"Authorization": "Bearer "})

    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN],
)
def test_metrics_refuse_a_missing_or_wrong_token(
    client: Client, metrics_on: None, authorization: str | None, db: None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get(URL, headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"eora_" not in response.content


def test_metrics_answer_the_token_in_the_text_format(
    client: Client, metrics_on: None, db: None
) -> None:
    # given one request seen by django-prometheus's middleware
    client.get("/accounts/login/")

    response = client.get(URL, headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    samples = parse(response.content.decode())
    assert (
        value(
            samples,
            "django_http_requests_total_by_view_transport_method_total",
            view="accounts:login",
            transport="http",
            method="GET",
        )
        >= 1
    )
    assert ("eora_points_holds_open", ()) in samples
    assert ("eora_billing_orders", (("status", "paid"),)) in samples


def test_metrics_need_no_session_or_csrf_token(metrics_on: None, db: None) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_metrics_answer_only_get(client: Client, metrics_on: None, db: None) -> None:
    response = client.post(URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 405


def test_metrics_do_not_exist_for_an_address_outside_the_allowed_ones(
    client: Client, metrics_on: None, settings: Settings, db: None
) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    headers = {"Authorization": f"Bearer {TOKEN}"}

    outside = client.get(URL, headers=headers, REMOTE_ADDR="192.0.2.1")
    inside = client.get(URL, headers=headers, REMOTE_ADDR="10.1.2.3")

    assert (outside.status_code, inside.status_code) == (404, 200)


def hold_counts() -> tuple[int, int]:
    open_holds = Hold.objects.filter(status=HoldStatus.OPEN)
    return (
        open_holds.count(),
        open_holds.filter(expires_at__lte=timezone.now()).count(),
    )


def test_hold_gauges_equal_the_hold_table(metrics_on: None, make_user) -> None:
    # given two open holds past their expiry, one open in time, one released
    first, second = account_of(user=make_user()), account_of(user=make_user())
    with time_machine.travel(timezone.now() - timedelta(hours=1)):
        place_hold(account=first, amount=10, ttl_seconds=60)
        place_hold(account=second, amount=20, ttl_seconds=60)
        place_hold(account=first, amount=30, ttl_seconds=7200)
        release_hold(hold=place_hold(account=second, amount=40))

    samples = scrape()

    assert hold_counts() == (3, 2)
    assert (
        value(samples, "eora_points_holds_open"),
        value(samples, "eora_points_holds_expired"),
    ) == hold_counts()


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_request_metrics_stay_on_the_event_loop_under_asgi() -> None:
    before = PrometheusBeforeMiddleware(async_view)
    after = PrometheusAfterMiddleware(async_view)

    assert iscoroutinefunction(before) and iscoroutinefunction(after)
    assert iscoroutinefunction(after.process_view)
    assert iscoroutinefunction(after.process_template_response)
