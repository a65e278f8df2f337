import pytest

from accounts.models import User
from points.models import Account


@pytest.fixture
def account(user: User) -> Account:
    return user.points_account
