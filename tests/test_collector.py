"""Python's garbage collector during a run (``parity.collector``): fewer collections, as it was after."""

from __future__ import annotations

import gc
import sqlite3
import threading
from pathlib import Path
from typing import Any

from parity.collector import YOUNG, collected_less
from parity.copy import copy
from parity.job import build


def test_runs_nest_and_the_collector_is_as_it_was_after_the_last() -> None:
    before = gc.get_threshold()
    with collected_less():
        assert gc.get_threshold()[0] == max(before[0], YOUNG)
        assert gc.get_freeze_count() > 0  # (the objects made before, set aside)
        with collected_less():
            pass
        assert gc.get_threshold()[0] == max(before[0], YOUNG)  # (the inner run's end: still in one)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_run_in_another_thread_keeps_it_until_both_end() -> None:
    before = gc.get_threshold()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collected_less():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with collected_less():
        pass
    assert gc.get_threshold()[0] == max(before[0], YOUNG)  # (the other thread's run goes on)
    leave.set()
    thread.join()
    assert gc.get_threshold() == before


def test_a_copy_runs_no_full_collection_over_the_objects_made_before_it(tmp_path: Path) -> None:
    """45,000 rows given new IDs (their dicts and tuples, batch after batch): Python's default thresholds
    ran 4 full collections over everything made so far; the copy, none; and leaves them as they were."""
    source, target = tmp_path / "source.sqlite", tmp_path / "target.sqlite"
    with sqlite3.connect(source) as conn:
        conn.executescript(
            """
            CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT);
            CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id), note TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                INSERT INTO parents SELECT i, 'p' || i FROM n;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
                INSERT INTO children SELECT i, i % 5000 + 1, 'c' || i FROM n;
            """
        )
    conn.close()
    full = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info)

    before = gc.get_threshold()
    job = build(f"sqlite:///{source}", f"sqlite:///{target}")
    gc.collect()
    gc.callbacks.append(count)
    try:
        result = copy(job, remap_ids=True)
    finally:
        gc.callbacks.remove(count)
        job.close()
    assert [(t.table, t.rows_written) for t in result.tables] == [("parents", 5000), ("children", 40000)]
    assert full == []
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
