import pytest


@pytest.fixture(autouse=True)
def instant_demo_model(settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 0
    settings.LLM_PROVIDER = "demo"
    settings.LLM_MODELS = ["eora-demo"]
