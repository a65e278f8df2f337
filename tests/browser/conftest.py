"""Run the production ASGI server on a throwaway database and drive it in Chromium."""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
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
SERVER_START_SECONDS = 30
# Variables of the test process that must not leak into the server's settings.
TEST_ONLY_VARIABLES = {
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "TEST_DATABASE_NAME",
    "REQUIRE_POSTGRES",
    "EORA_DATA_DIR",
}


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_VARIABLES}
    return {
        **kept,
        "DJANGO_SETTINGS_MODULE": "eora.settings",
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "EORA_DATA_DIR": str(data_dir),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LLM_PROVIDER": "demo",
        "LLM_MODELS": "eora-demo",
        # Slow enough that the answer visibly arrives in pieces.
        "DEMO_STREAM_DELAY_MS": "60",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args, "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited early:\n{log.read_text()}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer {url}:\n{log.read_text()}", pytrace=False)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app as `make serve` does, on its own SQLite database; yield its URL."""
    data_dir = tmp_path_factory.mktemp("server")
    env = server_environment(data_dir)
    manage(env, "migrate")
    # WhiteNoise serves the hashed files from STATIC_ROOT (git-ignored) when DEBUG
    # is off, exactly as in production.
    manage(env, "collectstatic")
    port = free_port()
    log = data_dir / "uvicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "eora.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-server-header",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/accounts/login/", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
