"""Python's cyclic garbage collector, run less while parity moves or compares rows.

A batch's rows are thousands of tuples and dicts, and each counts toward the collector's next run:
with its default thresholds (a collection every 700 new objects, a full one when the objects that
survived grew by a quarter), a copy of 250,000 rows with --remap-ids ran 2,950 collections, 0.84 s of
a 5 s copy, the full ones going over every object made so far (the modules, the schema, the ID maps)
again and again. ``collected_less`` sets the objects made before a run aside from the collections
(``gc.freeze``) and collects after 10,000 new objects: 340 collections, 0.2 s. The collector still
runs, so cycles left behind are still freed; memory stays bounded by the batches.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 10_000
"""New objects between collections while a run is in progress (Python's default: 700)."""

_lock = threading.Lock()
_runs = 0
_thresholds: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def collected_less() -> Iterator[None]:
    """The collector run less for the block (as a decorator: for the call), as it was after the last
    of the blocks in progress ends (runs nest: sync's copy, calls from several threads)."""
    global _runs, _thresholds
    with _lock:
        if _runs == 0:
            _thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(_thresholds[0], YOUNG), *_thresholds[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                gc.set_threshold(*_thresholds)
                gc.unfreeze()
