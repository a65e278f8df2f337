"""A live uvicorn server in this process, and the official openai SDK pointed at it.

The server runs in a background thread and reads the same settings and test
database as the test, so tests that use it need `django_db(transaction=True)`:
the server's connections only see committed rows.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import pytest
import uvicorn
from pytest_django.fixtures import Settings

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from points.models import Account, Transaction, TransactionType

DEMO_MODEL = "eora-demo"
STARTUP_SECONDS = 10
SHUTDOWN_SECONDS = 10
CLIENT_TIMEOUT_SECONDS = 15


@pytest.fixture(autouse=True)
def instant_demo_model(settings: Settings) -> None:
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = [DEMO_MODEL]
    settings.DEMO_STREAM_DELAY_MS = 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    """Serve `eora.asgi.application` with uvicorn from a thread; yield its URL."""
    from eora.asgi import application

    config = uvicorn.Config(
        app=application,
        host="127.0.0.1",
        port=_free_port(),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SHUTDOWN_SECONDS + 5)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def make_client(live_url: str) -> Iterator[Callable[[str], openai.OpenAI]]:
    """Return a factory of SDK clients for the live server, closed after the test."""
    clients: list[openai.OpenAI] = []

    def make(api_key: str) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=api_key,
            base_url=f"{live_url}/v1",
            max_retries=0,
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@dataclass(frozen=True)
class KeyHolder:
    user: User
    key: ApiKey
    secret: str

    @property
    def account(self) -> Account:
        return Account.objects.get(user=self.user)


@pytest.fixture
def key_holder(user: User) -> KeyHolder:
    key, secret = create_api_key(user=user, name="sdk")
    return KeyHolder(user=user, key=key, secret=secret)


@pytest.fixture
def client(
    make_client: Callable[[str], openai.OpenAI], key_holder: KeyHolder
) -> openai.OpenAI:
    return make_client(key_holder.secret)


def usage_rows(account: Account) -> list[Transaction]:
    return list(
        Transaction.objects.filter(
            account=account, type=TransactionType.CHAT_USAGE
        ).order_by("version")
    )
