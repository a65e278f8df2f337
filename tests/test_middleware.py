from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client

from eora.middleware import StaticFilesMiddleware


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_static_middleware_stays_on_the_event_loop_under_asgi() -> None:
    assert iscoroutinefunction(StaticFilesMiddleware(async_view))


def test_static_middleware_serves_files_under_asgi_and_wsgi(db: None) -> None:
    async def fetch() -> int:
        return (await AsyncClient().get("/static/css/app.css")).status_code

    assert async_to_sync(fetch)() == 200
    assert Client().get("/static/css/app.css").status_code == 200


def test_static_middleware_passes_other_paths_on(db: None) -> None:
    async def fetch() -> int:
        return (await AsyncClient().get("/accounts/login/")).status_code

    assert async_to_sync(fetch)() == 200
