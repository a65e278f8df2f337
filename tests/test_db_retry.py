"""Read-only requests run once more when their database connection was lost.

The views here lose the connection on purpose (PostgreSQL really terminating
connections is in tests/test_database_pool.py).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.urls import path

FAILURES_BEFORE_SUCCESS: list[int] = []
CALLS: list[str] = []


def flaky(request: HttpRequest) -> HttpResponse:
    CALLS.append(request.method)
    if len(CALLS) <= FAILURES_BEFORE_SUCCESS[0]:
        raise OperationalError("terminating connection due to administrator command")
    return HttpResponse("ok")


async def flaky_async(request: HttpRequest) -> HttpResponse:
    CALLS.append(request.method)
    if len(CALLS) <= FAILURES_BEFORE_SUCCESS[0]:
        raise InterfaceError("connection already closed")
    return HttpResponse("ok")


def broken_query(request: HttpRequest) -> HttpResponse:
    CALLS.append(request.method)
    raise ValueError("not a database error")


urlpatterns = [
    path("flaky/", flaky),
    path("flaky-async/", flaky_async),
    path("broken/", broken_query),
]


@pytest.fixture(autouse=True)
def flaky_views(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = __name__
    CALLS.clear()
    FAILURES_BEFORE_SUCCESS[:] = [1]
    yield
    CALLS.clear()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("method", ["get", "head", "options"])
def test_read_is_run_again_after_a_lost_connection(client: Client, method: str) -> None:
    response = getattr(client, method)("/flaky/")

    assert response.status_code == 200
    assert len(CALLS) == 2


def test_write_is_not_run_again_after_a_lost_connection(client: Client) -> None:
    response = client.post("/flaky/")

    assert response.status_code == 500
    assert CALLS == ["POST"]


def test_read_is_run_again_only_once(client: Client) -> None:
    FAILURES_BEFORE_SUCCESS[:] = [2]

    response = client.get("/flaky/")

    assert response.status_code == 500
    assert CALLS == ["GET", "GET"]


def test_other_errors_are_not_retried(client: Client) -> None:
    response = client.get("/broken/")

    assert response.status_code == 500
    assert CALLS == ["GET"]


def test_async_read_is_run_again_after_a_lost_connection() -> None:
    async def fetch() -> int:
        client = AsyncClient(raise_request_exception=False)
        return (await client.get("/flaky-async/")).status_code

    assert async_to_sync(fetch)() == 200
    assert CALLS == ["GET", "GET"]
