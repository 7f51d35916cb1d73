"""Encoded PNGs of project layers, remembered by a digest of their pixels.

Autosave writes the whole project every time it runs, and encoding a 12 MP photo and its relit layer
as PNG takes seconds of both cores (4.5 s on the development VM) while the user keeps working. Most
layers have not changed since the last save: a digest of their samples (blake2b, ~0.3 s for 12 MP)
finds their PNG bytes from then. The digest is of the pixels themselves, not of the array's
identity, so a layer painted in place is encoded again, never saved stale.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

BUDGET_BYTES = 256 * 2**20  # encoded PNGs kept (a 12 MP photo + relit layer is ~90 MB); the oldest go first


def digest(*arrays: np.ndarray | None, size: int = 16) -> str:
    """A digest of the arrays' dtypes, shapes and samples (None arrays are skipped).

    Also the digest the carried-landmarks record stores (``imaging.carried_landmarks``): keep its
    format, or files written before no longer match their own pixels.
    """
    h = hashlib.blake2b(digest_size=size)
    for a in arrays:
        if a is not None:
            c = np.ascontiguousarray(a)
            h.update(f"{c.dtype.str}{c.shape}".encode())
            h.update(memoryview(c).cast("B"))
    return h.hexdigest()


class PngCache:
    """A small LRU of encoded bytes keyed by (what, settings, pixel digest); thread-safe."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._budget = budget
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, encode: Callable[[], bytes]) -> bytes:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return data
            self.misses += 1
        data = encode()  # outside the lock: encoding is the slow part
        if len(data) <= self._budget:
            with self._lock:
                if key not in self._items:
                    self._items[key] = data
                    self._size += len(data)
                while self._size > self._budget:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
        return data

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


PNG_CACHE = PngCache()
