"""The memory of a process tree, as /proc tells it: the benchmarks' measure of a run's memory.

A run's largest resident set from ``wait4`` counts, on Linux, the image of the process that forked it
(kept across ``exec``): a benchmark that held a million rows when it started a run reported them as
the run's. The proportional set size of every process of the run (parity's reader processes
included), sampled as it goes, counts only theirs, and a page two of them share once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence


def descendants(roots: Sequence[int]) -> list[int]:
    """The processes under ``roots`` (and the roots), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_pss_kb(roots: Sequence[int]) -> int:
    total = 0
    for pid in descendants(roots):
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class TreeSampler(threading.Thread):
    """Samples ``tree_pss_kb`` of the processes every 0.2 s until stopped; keeps the greatest."""

    def __init__(self, roots: Sequence[int]) -> None:
        super().__init__(daemon=True)
        self.roots, self.peak_kb, self.done = list(roots), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak_kb = max(self.peak_kb, tree_pss_kb(self.roots))
