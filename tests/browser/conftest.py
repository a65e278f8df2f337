"""Run the production ASGI server on a throwaway database and drive it in Chromium.

One Chromium serves the whole package; each module gets its own server, set up
by its `server_settings` fixture (the demo model unless a module says otherwise).
Screenshots go to BROWSER_ARTIFACTS (default /tmp/eora-browser-artifacts).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.browser.pages import OpenVisitor, Visitor
from tests.live_server import LiveServer, live_server

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download cannot be fetched here: use Debian's Chromium.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_ARTIFACTS = "/tmp/eora-browser-artifacts"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false"}


@pytest.fixture(scope="package", autouse=True)
def chromium_executable() -> Path:
    """Return Debian's Chromium; skip without it, except in CI, where it must exist."""
    if not CHROMIUM.exists():
        message = (
            f"{CHROMIUM} is missing: install Debian's Chromium with "
            "`apt-get install chromium` to run the browser tests"
        )
        if running_in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Return the directory for screenshots (not committed; CI may keep it)."""
    path = Path(os.environ.get("BROWSER_ARTIFACTS") or DEFAULT_ARTIFACTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server_settings() -> dict[str, str]:
    """Return the settings of this module's server; modules override it."""
    return {
        "LLM_PROVIDER": "demo",
        "LLM_MODELS": "eora-demo",
        # Slow enough that the answer visibly arrives in pieces.
        "DEMO_STREAM_DELAY_MS": "60",
    }


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, server_settings: dict[str, str]
) -> Iterator[LiveServer]:
    """Serve the app as `make serve` does, on its own SQLite database."""
    with live_server(
        tmp_path_factory.mktemp("server"),
        # Every sign-up and login of the suite comes from 127.0.0.1.
        SIGNUP_RATE_PER_HOUR="1000",
        LOGIN_RATE_PER_HOUR="1000",
        **server_settings,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def server_url(live: LiveServer) -> str:
    return live.url


@pytest.fixture(scope="package")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    # Package scope: the sync API's event loop must be gone before the Django tests
    # in other packages run, or Django refuses ORM calls as "async unsafe". So no
    # test here uses the ORM: they go through the pages, the API or `manage.py`.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_executable),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        yield browser
        browser.close()


@pytest.fixture
def open_visitor(browser: Browser, server_url: str) -> Iterator[OpenVisitor]:
    """Open a fresh browser context (a new person) with a viewport and Korean locale."""
    contexts: list[BrowserContext] = []

    def open_context(
        viewport: dict[str, int],
        *,
        is_mobile: bool = False,
        storage_state: object = None,
        locale: str = "ko-KR",
    ) -> Visitor:
        context = browser.new_context(
            base_url=server_url,
            viewport=viewport,
            is_mobile=is_mobile,
            has_touch=is_mobile,
            device_scale_factor=2 if is_mobile else 1,
            locale=locale,
            storage_state=storage_state,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Visitor.watching(context.new_page())

    yield open_context
    for context in contexts:
        context.close()
