from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client

from common.middleware import StaticFilesMiddleware


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


def test_pages_are_korean_whatever_the_browser_prefers(
    client: Client, db: None
) -> None:
    page = client.get("/accounts/login/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert page["Content-Language"] == "ko"


def test_pages_follow_the_language_chosen_in_the_menu(client: Client, db: None) -> None:
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert client.get("/accounts/login/")["Content-Language"] == "en"


def test_api_follows_accept_language(client: Client, db: None) -> None:
    english = client.get("/api/user/points", headers={"Accept-Language": "en"})
    default = client.get("/api/user/points")
    assert english.json()["error"] != default.json()["error"]
    assert default["Content-Language"] == "ko"
