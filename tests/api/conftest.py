import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key


@pytest.fixture
def api_key(user):
    key, secret = create_api_key(user=user, name="test")
    return secret


@pytest.fixture
def api(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client
