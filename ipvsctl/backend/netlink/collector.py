"""Pausing Python's cyclic garbage collector while a large netlink answer is decoded.

A fresh read of 10,000 virtual services x 3 real servers makes about 300,000 objects that all live on (the
records, their real servers, the memos). Each few hundred new objects start a collection, and the older
generations' passes walk the whole heap again and again: half of a fresh read's time on the host (0.76 →
0.38 s, ``docs/performance.md``), more in a command that holds the manifests. Decoding makes no reference
cycles, so nothing is lost by collecting once afterwards, when the collector's own thresholds say so.

The pause is process-wide (the collector is), counted so that overlapping pauses (a read in a worker thread
while another runs) end together, and it never turns on a collector that someone else turned off.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

_lock = threading.Lock()
_pauses = 0
_resume = False  # whether the collector was on when the first of the current pauses began


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (nor in other threads meanwhile); as before after it."""
    global _pauses, _resume  # noqa: PLW0603  the collector is process-wide: so is its pause count
    with _lock:
        if not _pauses:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if not _pauses and _resume:
                gc.enable()
