"""One object per backend, made on first use: the claims, the state machine registry.

Keyed weakly by the backend, so what was made for a backend goes away with it (tests and servers
make many backends in one process).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerBackend(Generic[T]):
    """Call it with a backend to get that backend's object, made by ``make(backend)`` the first time.

    Args:
        make: Builds the object of one backend (called under a lock, at most once per backend).
    """

    def __init__(self, make: Callable[[Any], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, engine: Any) -> T:
        """The object of ``engine``."""
        with self._lock:
            found = self._made.get(engine)
            if found is None:
                found = self._made[engine] = self._make(engine)
            return found
