import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import User
from accounts.services import register_user
from points import ledger_guard

TEST_PASSWORD = "correct-horse-battery-staple"
_emails = itertools.count(1)


def on_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_configure(config: pytest.Config) -> None:
    # The test runner empties the tables between transactional tests with
    # `flush`; the append-only guard stands aside for the suite's connections.
    # Tests of the guard itself enforce it (`ledger_guard.enforced`).
    ledger_guard.lift_for_tests()


BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if BROWSER_TESTS in item.path.parents:
            item.add_marker(pytest.mark.own_server)
    if on_postgresql():
        if os.environ.get("SKIP_OWN_SERVER_TESTS"):
            # Their servers run on SQLite files of their own whatever DATABASE_URL
            # says: .ci/run runs them once, in the SQLite pass.
            kept = [item for item in items if "own_server" not in item.keywords]
            config.hook.pytest_deselected(
                items=[item for item in items if "own_server" in item.keywords]
            )
            items[:] = kept
        return
    # Row locks only exist on PostgreSQL; .ci/run runs these there (REQUIRE_POSTGRES).
    if os.environ.get("REQUIRE_POSTGRES"):
        raise pytest.UsageError(
            "REQUIRE_POSTGRES is set but DATABASE_URL is not PostgreSQL"
        )
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (see README)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def ledger_audited(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the database, the ledger still audits clean.

    Tests marked `skip_ledger_audit` say why it cannot run after them (most
    corrupt a ledger on purpose, to show that the audit finds it).
    """
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if not ({"db", "transactional_db"} & names or marker) or (
        request.node.get_closest_marker("skip_ledger_audit")
    ):
        yield
        return
    transactional = "transactional_db" in names or (
        marker is not None and marker.kwargs.get("transaction", False)
    )
    # Set the database up from here, so that it is torn down after the audit.
    request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    from points.audit import audit_accounts

    problems = [str(problem) for problem in audit_accounts()]
    assert problems == [], "the ledger does not audit clean after this test"


class FakeClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def cache_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Age the in-process caches (API keys, model rates) by this clock only.

    A slow machine must not let an entry expire between two requests of a test
    that counts queries; a test that needs an entry expired moves this clock.
    """
    from accounts.api_keys import KNOWN_KEYS
    from points.pricing import TABLE_RATES

    clock = FakeClock()
    monkeypatch.setattr(KNOWN_KEYS, "clock", clock)
    monkeypatch.setattr(TABLE_RATES, "clock", clock)
    return clock


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    # The throttles count in the cache; each test starts with none spent. The
    # in-process caches hold rows a rolled-back test made.
    from django.core.cache import cache

    from accounts.api_keys import KNOWN_KEYS
    from points.pricing import TABLE_RATES

    cache.clear()
    KNOWN_KEYS.clear()
    TABLE_RATES.clear()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(email: str | None = None, **extra: object) -> User:
        return register_user(
            email=email or f"user{next(_emails)}@example.com",
            password=TEST_PASSWORD,
            **extra,
        )

    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user()


@pytest.fixture
def staff_user(make_user: Callable[..., User]) -> User:
    return make_user(is_staff=True, is_superuser=True)
