"""``parity demo``: a realistic sample SQLite database, migrated into a new target, with no server."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

DEMO_DDL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    email VARCHAR(200) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    external_id UUID
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku VARCHAR(40) NOT NULL UNIQUE,
    title TEXT NOT NULL,
    price DECIMAL(12,2) NOT NULL,
    weight_kg DOUBLE,
    attributes JSON,
    image BLOB
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    ordered_at TIMESTAMPTZ NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'new',
    total DECIMAL(14,2) NOT NULL,
    note TEXT
);
CREATE INDEX ix_orders_customer ON orders (customer_id);
CREATE INDEX ix_orders_ordered_at ON orders (ordered_at);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    line_no INTEGER NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price DECIMAL(12,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    manager_id INTEGER REFERENCES employees(id),
    hired_on DATE NOT NULL
);
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name VARCHAR(60) NOT NULL UNIQUE,
    lead_member_id INTEGER REFERENCES members(id)
);
CREATE TABLE members (
    id INTEGER PRIMARY KEY,
    team_id INTEGER NOT NULL REFERENCES teams(id),
    employee_id INTEGER NOT NULL REFERENCES employees(id)
);
CREATE TABLE "order history" (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    "select" VARCHAR(30) NOT NULL,
    "Changed At" TIMESTAMP NOT NULL
);
CREATE INDEX "ix order history select" ON "order history" ("select");
"""

_NAMES = [
    "Ana",
    "Björn",
    "Chloé",
    "Dmitri",
    "Eun-ji",
    "Fatima",
    "Göran",
    "Hiroshi",
    "Inès",
    "José",
    "Kwame",
    "Łucja",
]
_STATUSES = ["new", "paid", "shipped", "delivered", "cancelled"]


def build_source(path: Path, scale: int = 1, seed: int = 42) -> dict[str, int]:
    """Write the demo database at ``path`` (replacing a previous demo file) and return row counts."""
    rng = random.Random(seed)
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.executescript(DEMO_DDL)
    rows = _rows(rng, scale)
    with conn:
        for table, data in rows.items():
            if not data:
                continue
            marks = ", ".join("?" * len(data[0]))
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', data)
    conn.close()
    return {table: len(data) for table, data in rows.items()}


def _rows(rng: random.Random, scale: int) -> dict[str, list[tuple[Any, ...]]]:
    start = datetime(2019, 1, 1, tzinfo=timezone.utc)
    customers = [
        (
            i,
            f"user{i}@example.com",
            f"{rng.choice(_NAMES)} {'🦄' if i % 17 == 0 else ''}{i}".strip(),
            (
                datetime(1965, 3, 1)
                + timedelta(days=rng.randint(0, 30000), microseconds=rng.randint(0, 999999))
            ).isoformat(" "),
            i % 7 != 0,
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) if i % 5 else None,
        )
        for i in range(1, 200 * scale + 1)
    ]
    products = [
        (
            i,
            f"SKU-{i:05d}",
            f"Product {i} " + ("long description " * (i % 4)),
            str(Decimal(rng.randint(100, 999999)) / 100),
            round(rng.uniform(0.1, 40), 3) if i % 9 else None,
            json.dumps({"color": rng.choice(["red", "blue", "grün"]), "tags": [i % 3, i % 5]}),
            bytes(rng.getrandbits(8) for _ in range(i % 16)) if i % 4 else None,
        )
        for i in range(1, 50 * scale + 1)
    ]
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for i in range(1, 1000 * scale + 1):
        when = start + timedelta(seconds=rng.randint(0, 7 * 365 * 86400), microseconds=rng.randint(0, 999999))
        lines = [
            (i, n, rng.randint(1, len(products)), rng.randint(1, 5)) for n in range(1, rng.randint(1, 5) + 1)
        ]
        priced = [(*line, products[line[2] - 1][3]) for line in lines]
        total = sum(Decimal(p[4]) * p[3] for p in priced)
        orders.append(
            (
                i,
                rng.randint(1, len(customers)),
                when.isoformat(" "),
                rng.choice(_STATUSES),
                str(total),
                None if i % 3 else "leave at the door",
            )
        )
        items.extend(priced)
        if i % 4 == 0:
            history.append(
                (
                    len(history) + 1,
                    i,
                    rng.choice(_STATUSES),
                    (when + timedelta(days=1)).replace(tzinfo=None).isoformat(" "),
                )
            )
    employees = [
        (
            i,
            f"{rng.choice(_NAMES)} E{i}",
            None if i <= 3 else rng.randint(1, i - 1),
            (date(1962, 1, 1) + timedelta(days=rng.randint(0, 30000))).isoformat(),
        )
        for i in range(1, 31)
    ]
    members = [(i, (i % 5) + 1, i) for i in range(1, 31)]
    teams = [(t, f"team {t}", next(m[0] for m in members if m[1] == t)) for t in range(1, 6)]
    return {
        "customers": customers,
        "products": products,
        "orders": orders,
        "order_items": items,
        "employees": employees,
        "teams": teams,
        "members": members,
        "order history": history,
    }


def prepare(directory: str, target_url: str | None) -> tuple[Path, str, dict[str, int]]:
    """Write the demo source in ``directory``; return its path, the target URL and the row counts.

    Without a target URL the target is a new SQLite file beside the source (a previous demo's
    files in that folder are replaced; they are parity's own).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source.sqlite"
    counts = build_source(source)
    if target_url is None:
        target = folder / "target.sqlite"
        if target.exists():
            target.unlink()
        target_url = f"sqlite:///{target}"
    return source, target_url, counts


def plant_differences(target: Any) -> list[str]:
    """Change the copied target the way drift does: an edited name, a changed price, a lost line, a
    stray customer. ``target`` is a parity Endpoint. Returns what was done, for the demo to print."""
    import sqlalchemy as sa

    customers = sa.table(
        "customers",
        sa.column("id"),
        sa.column("name"),
        sa.column("email"),
        sa.column("is_active"),
        schema=target.schema,
    )
    products = sa.table("products", sa.column("id"), sa.column("price"), schema=target.schema)
    items = sa.table("order_items", sa.column("order_id"), sa.column("line_no"), schema=target.schema)
    with target.begin() as conn:
        conn.execute(sa.update(customers).where(customers.c.id == 3).values(name="Someone Else"))
        conn.execute(sa.update(products).where(products.c.id == 5).values(price="0.99"))
        conn.execute(sa.delete(items).where(items.c.order_id == 7, items.c.line_no == 1))
        conn.execute(
            sa.insert(customers).values(id=9999, name="stray", email="stray@example.com", is_active=True)
        )
    return [
        "customers 3: name edited",
        "products 5: price changed to 0.99",
        "order_items (7, 1): deleted",
        "customers 9999: inserted (not in the source)",
    ]
