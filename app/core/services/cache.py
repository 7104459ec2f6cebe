"""A small thread-safe least-recently-used cache, owned by the object whose work it saves."""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class BoundedCache(Generic[Value]):
    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict[Hashable, Value] = OrderedDict()
        self._guard = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Value]) -> Value:
        """The cached value of key, or build() (outside the lock: builds may be slow) kept for next time."""
        with self._guard:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = build()
        with self._guard:
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._guard:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
