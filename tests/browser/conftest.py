"""Run the production ASGI server on a throwaway database and drive it in Chromium."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.live_server import manage, server_environment, uvicorn_server

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


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false"}


@pytest.fixture(scope="module", autouse=True)
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


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app as `make serve` does, on its own SQLite database; yield its URL."""
    data_dir = tmp_path_factory.mktemp("server")
    env = server_environment(
        data_dir,
        LLM_PROVIDER="demo",
        LLM_MODELS="eora-demo",
        # Slow enough that the answer visibly arrives in pieces.
        DEMO_STREAM_DELAY_MS="60",
    )
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    with uvicorn_server(env, data_dir / "uvicorn.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    # Module scope: the sync API's event loop must be gone before the Django tests
    # in other modules run, or Django refuses ORM calls as "async unsafe".
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_executable),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        yield browser
        browser.close()
