"""Foreign-key order: parents before children; FKs inside a cycle (self-references too) come last."""

from __future__ import annotations

from collections.abc import Sequence

from parity.schema.model import ForeignKey, Table


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components come out children-first (reverse topological)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def fk_order(tables: Sequence[Table]) -> tuple[list[str], set[tuple[str, ForeignKey]]]:
    """Tables in load order (referenced tables first) and the FKs that close a cycle.

    Only FKs between the given tables count; an FK whose two tables share a strongly connected
    component (a self-reference or a cycle) is returned as deferred: it is added after the tables.
    """
    names = {t.name for t in tables}
    graph = {
        t.name: {fk.ref_table for fk in t.foreign_keys if fk.ref_table in names and fk.ref_schema is None}
        for t in tables
    }
    components = strongly_connected(graph)
    component_of = {name: i for i, comp in enumerate(components) for name in comp}
    deferred = {
        (t.name, fk)
        for t in tables
        for fk in t.foreign_keys
        if fk.ref_table in names
        and fk.ref_schema is None
        and component_of[fk.ref_table] == component_of[t.name]
    }
    order = [name for comp in components for name in comp]
    return order, deferred
