"""A small in-process map whose entries expire within a second or so.

For values read on every request that change rarely (API keys, model rates).
Each process keeps its own copy: a change made in this process drops the entry
at once, and a change made in another process is seen when the entry expires,
so the lifetime bounds how long a process may act on an old value.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

DEFAULT_MAX_ENTRIES = 10_000


class ExpiringCache(Generic[K, V]):
    """A thread-safe LRU map; an entry lives `lifetime()` seconds of `clock`.

    `lifetime` is read on every write, so it follows the settings; 0 caches
    nothing. `clock` is monotonic: moving the wall clock does not age entries.

    A value read from the database before a change but stored after the change
    dropped its entry would bring the old value back: take `generation` before
    reading, and `put` refuses a value read before the latest drop.
    """

    def __init__(
        self,
        *,
        lifetime: Callable[[], float],
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: K, default: D = None) -> V | D:
        """Return the live value of `key`, else `default`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            expires_at, value = entry
            if self.clock() >= expires_at:
                del self._entries[key]
                return default
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, *, read_in: int) -> None:
        """Keep `value`, read in generation `read_in`, unless dropped since."""
        lifetime = self.lifetime()
        if lifetime <= 0:
            return
        with self._lock:
            if read_in != self.generation:
                return
            self._entries[key] = (self.clock() + lifetime, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard_where(self, stale: Callable[[V], bool]) -> None:
        """Drop every entry whose value `stale` says has changed."""
        with self._lock:
            self.generation += 1
            for key in [key for key, (_at, v) in self._entries.items() if stale(v)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
