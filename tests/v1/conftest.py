"""A live uvicorn server in this process, and the official openai SDK pointed at it.

The server runs in a background thread and reads the same settings and test
database as the test, so tests that use it need `django_db(transaction=True)`:
the server's connections only see committed rows.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import pytest
from pytest_django.fixtures import Settings

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from points.models import Account, Transaction, TransactionType
from tests.live_server import threaded_server

DEMO_MODEL = "eora-demo"
CLIENT_TIMEOUT_SECONDS = 15


@pytest.fixture(autouse=True)
def instant_demo_model(settings: Settings) -> None:
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = [DEMO_MODEL]
    settings.DEMO_STREAM_DELAY_MS = 0


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    """Serve `eora.asgi.application` with uvicorn from a thread; yield its URL."""
    from eora.asgi import application

    with threaded_server(application) as url:
        yield url


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
