"""The in-process cache of API keys and model rates."""

from common.expiring_cache import ExpiringCache
from tests.conftest import FakeClock


def make_cache(
    clock: FakeClock, *, lifetime: float = 1, max_entries: int = 10
) -> ExpiringCache[str, int]:
    return ExpiringCache(
        lifetime=lambda: lifetime, max_entries=max_entries, clock=clock
    )


def test_entry_expires_after_its_lifetime() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    cache.put("a", 1, read_in=cache.generation)

    clock.advance(0.999)
    assert cache.get("a") == 1
    clock.advance(0.001)
    assert cache.get("a") is None


def test_lifetime_zero_keeps_nothing() -> None:
    cache = make_cache(FakeClock(), lifetime=0)

    cache.put("a", 1, read_in=cache.generation)

    assert cache.get("a") is None


def test_least_recently_used_entry_goes_first_when_full() -> None:
    cache = make_cache(FakeClock(), max_entries=2)
    cache.put("a", 1, read_in=cache.generation)
    cache.put("b", 2, read_in=cache.generation)
    cache.get("a")

    cache.put("c", 3, read_in=cache.generation)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_value_read_before_a_drop_is_not_kept() -> None:
    # given a value read from the database, then a change that drops entries
    cache = make_cache(FakeClock())
    generation = cache.generation
    cache.discard_where(lambda value: True)

    # when the old value is stored
    cache.put("a", 1, read_in=generation)

    # then it is not served
    assert cache.get("a") is None
