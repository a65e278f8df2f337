from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from tests.chat.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def instant_demo_model(settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = ["eora-demo"]


@pytest.fixture
def fake_openai(instant_demo_model: None, settings: Settings) -> Iterator[FakeOpenAI]:
    """Start a fake OpenAI-compatible server and point the `openai` provider at it."""
    server = FakeOpenAI().start()
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = server.url
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MODELS = ["gpt-4o-mini"]
    settings.LLM_TIMEOUT = 2
    settings.LLM_MAX_RETRIES = 0
    yield server
    server.stop()
