"""Bulk and row writers' SQL per dialect, compiled without a server (Oracle, SQL Server included)."""

from __future__ import annotations

import re
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from parity import bulk
from parity.dialects import for_name
from parity.schema.types import CanonicalType, Kind
from parity.values import decode_value

URLS = {
    "oracle": "oracle+oracledb://u:p@localhost:1521/?service_name=x",
    "mssql": "mssql+pyodbc://u:p@localhost/db",
    "postgresql": "postgresql+psycopg://u:p@localhost/db",
    "mysql": "mysql+pymysql://u:p@localhost/db",
    "sqlite": "sqlite://",
}
TYPES = [CanonicalType(Kind.INTEGER), CanonicalType(Kind.VARCHAR, length=10), CanonicalType(Kind.UUID)]


def dialect_only(name: str) -> Any:
    """What a writer reads from a connection at construction: only the SQLAlchemy dialect."""
    url = sa.engine.make_url(URLS[name])
    # without its driver imported a dialect assumes "named"; pyodbc itself is qmark
    options = {"paramstyle": "qmark"} if name == "mssql" else {}
    return SimpleNamespace(dialect=url.get_dialect()(**options))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("oracle", 'INSERT INTO "order history" (id, "select", u) VALUES (:1, :2, :3)'),
        ("mssql", "INSERT INTO [order history] (id, [select], u) VALUES (?, ?, ?)"),
        (
            "postgresql",
            'INSERT INTO "order history" (id, "select", u) OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s)',
        ),
        ("mysql", "INSERT INTO `order history` (id, `select`, u) VALUES (%s, %s, %s)"),
        ("sqlite", 'INSERT INTO "order history" (id, "select", u) VALUES (?, ?, ?)'),
    ],
)
def test_row_writer_statement(name: str, expected: str) -> None:
    conn = dialect_only(name)
    table = conn.dialect.identifier_preparer.quote("order history")
    writer = bulk.WRITERS[for_name(name).ROW_WRITER](conn, table, ["id", "select", "u"], TYPES)
    assert writer.sql == expected


def test_oracle_and_sql_server_writers_encode_values_their_drivers_take() -> None:
    import uuid
    from datetime import time

    value = uuid.uuid4()
    oracle = bulk.WRITERS[for_name("oracle").WRITER].ENCODERS
    assert oracle[Kind.UUID](value) == value.bytes  # RAW(16)
    assert oracle[Kind.BOOLEAN](True) == 1  # NUMBER(1)
    assert oracle[Kind.TIME](time(1, 2, 3, 4)).total_seconds() == 3723.000004  # INTERVAL DAY TO SECOND
    assert bulk.WRITERS[for_name("mssql").WRITER].ENCODERS[Kind.UUID](value) == str(value)


def test_postgresql_copy_statement() -> None:
    conn = dialect_only("postgresql")
    writer = bulk.PostgresCopyWriter(conn, '"s"."t"', ["a", "Mixed Case"], TYPES[:2])
    assert writer.sql == 'COPY "s"."t" (a, "Mixed Case") FROM STDIN'


# ---- SQLite's values as COPY text ----------------------------------------------------------------

_TIMESTAMP_TEXT = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).flatmap(
    lambda d: st.sampled_from(
        [d.isoformat(" "), d.isoformat("T"), d.isoformat(" ", "milliseconds"), d.isoformat(" ", "seconds")]
    )
)
SQLITE_VALUES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.BIGINT: st.integers(-(2**63), 2**63 - 1),
    Kind.DECIMAL: st.one_of(
        st.integers(-(10**15), 10**15),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    ),
    Kind.VARCHAR: st.text(),
    Kind.CHAR: st.text(alphabet=" ab\t\n\\"),
    Kind.DATE: st.dates().map(date.isoformat),
    Kind.TIMESTAMP: st.one_of(_TIMESTAMP_TEXT, st.just("2020-01-01 00:00:00\n2020-01-02")),
}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_sqlite_values_as_text_read_back_as_their_canonical_values(data: st.DataObject) -> None:
    """Whatever shortcut ``sqlite_text`` takes per column, its text parses back to the values decoding
    SQLite's values would give (None included)."""
    kinds = data.draw(st.lists(st.sampled_from(sorted(SQLITE_VALUES, key=str)), min_size=1, max_size=4))
    rows = data.draw(
        st.lists(st.tuples(*(st.none() | SQLITE_VALUES[k] for k in kinds)), min_size=1, max_size=8)
    )
    try:
        expected = [tuple(decode_value(k, v) for k, v in zip(kinds, row, strict=True)) for row in rows]
    except ValueError:  # not a value of its kind: never a line broken by it (the target refuses it)
        try:
            text = bulk.sqlite_text(rows, kinds)
        except ValueError:
            return
        assert len(bulk.TextBatch(text, len(rows), bulk.PostgresCopyWriter).rows()) == len(rows)
        return
    text = bulk.sqlite_text(rows, kinds)
    parsed = bulk.TextBatch(text, len(rows), bulk.PostgresCopyWriter).rows()
    assert [tuple(decode_value(k, v) for k, v in zip(kinds, row, strict=True)) for row in parsed] == expected


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.none() | st.text(alphabet="ab\t\n\r\\\0\x1eé"), min_size=1, max_size=8))
def test_a_column_of_strings_is_escaped_as_each_value_alone(values: list[str | None]) -> None:
    """Whatever shortcut a column takes (one translation of the joined column), its text is each
    value's own: LOAD DATA's escapes, or COPY's (NUL left raw), and \\N for NULL."""
    copy = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    load_data = str.maketrans({**copy, "\0": "\\0"})
    expected = ["\\N" if v is None else v.translate(load_data) for v in values]
    assert bulk._mysql_column(values) == expected == [bulk._mysql_field(v) for v in values]
    copy_text = ["\\N" if v is None else v.translate(str.maketrans(copy)) for v in values]
    assert bulk._mysql_column(values, nul_escaped=False) == copy_text


@settings(max_examples=200, deadline=None)
@given(
    plain=st.lists(st.none() | st.sampled_from(["x", "", "é 😀"]), min_size=16, max_size=80),
    odd=st.lists(
        st.tuples(st.integers(0, 79), st.text(alphabet="ab\t\n\r\\\0\x1eé", min_size=1)), max_size=6
    ),
)
def test_a_long_column_with_a_few_strings_to_escape(
    plain: list[str | None], odd: list[tuple[int, str]]
) -> None:
    """A column of many strings where a few hold characters to escape (found by their position in
    the joined column, escaped alone): the same text as each value's own."""
    values = list(plain)
    for at, text in odd:
        values[at % len(values)] = text
    assert bulk._mysql_column(values) == [bulk._mysql_field(v) for v in values]
    copy = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
    assert bulk._mysql_column(values, nul_escaped=False) == [
        "\\N" if v is None else v.translate(copy) for v in values
    ]


def test_only_ascii_digits_make_an_iso_date_or_timestamp() -> None:
    """Other scripts' digits are digits to a Unicode regex, not to the databases: such text is decoded
    (and refused there), never passed on as ISO text."""
    assert bulk._all_iso(["2024-02-29", None, "1969-12-31"], Kind.DATE)
    assert not bulk._all_iso(["\uff12\uff10\uff12\uff14-02-29"], Kind.DATE)  # fullwidth digits
    assert not bulk._all_iso(["2024-02-29 12:00:0\u0663"], Kind.TIMESTAMP)  # an Arabic-Indic three
    assert not bulk._all_iso(["2024-02-29\n2024-03-01"], Kind.DATE)  # one value, two lines
    assert not bulk._all_iso(["0000-00-00"], Kind.DATE)  # MySQL's zero date


_ISO_REFERENCE = {  # what _all_iso accepts, said as a regular expression (ASCII digits, no zero dates)
    Kind.DATE: r"(?!0000)[0-9]{4}-(?!00)[0-9]{2}-(?!00)[0-9]{2}",
    Kind.TIME: r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?",
    Kind.TIMESTAMP: r"(?!0000)[0-9]{4}-(?!00)[0-9]{2}-(?!00)[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?",
}


@st.composite
def near_iso(draw: st.DrawFn, kind: Kind) -> str:
    """An ISO value of the kind, often with one character changed, added or removed, or a field zero."""
    day = draw(st.dates(date(1, 1, 1), date(9999, 12, 31)))
    moment = draw(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)))
    text = {
        Kind.DATE: day.isoformat(),
        Kind.TIME: moment.time().isoformat(),
        Kind.TIMESTAMP: moment.isoformat(" "),
    }[kind]
    if draw(st.booleans()):
        return text
    at = draw(st.integers(0, len(text)))
    other = draw(st.sampled_from(["0", "00", "-", ":", " ", ".", "\n", "x", "\u0663", "0000-", "-00"]))
    how = draw(st.sampled_from(["put", "insert", "delete", "zero"]))
    if how == "zero" and kind is not Kind.TIME:  # a zero year, month or day
        start, end = draw(st.sampled_from([(0, 4), (5, 7), (8, 10)]))
        return text[:start] + "0" * (end - start) + text[end:]
    if how == "put":
        return text[:at] + other + text[at + 1 :]
    return text[:at] + other + text[at:] if how == "insert" else text[:at] + text[at + 1 :]


@pytest.mark.parametrize("kind", [Kind.DATE, Kind.TIME, Kind.TIMESTAMP])
@given(data=st.data())
@settings(max_examples=300)
def test_iso_columns_are_recognised_exactly_as_the_iso_grammar_says(kind: Kind, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.none() | near_iso(kind), max_size=4))
    expected = all(v is None or re.fullmatch(_ISO_REFERENCE[kind], v) for v in values)
    assert bulk._all_iso(values, kind) == expected


def _as_sent(moment: datetime, padded: bool, kind: Kind) -> str:
    """A time or timestamp as a source's text gives it: PostgreSQL trims the fraction's zeros (and
    drops a zero fraction), MySQL's DATETIME(6) always has six digits."""
    whole = moment.time().isoformat("seconds") if kind is Kind.TIME else moment.isoformat(" ", "seconds")
    fraction = f"{moment.microsecond:06d}"
    if not padded:
        fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@pytest.mark.parametrize("kind", [Kind.TIME, Kind.TIMESTAMP])
@settings(max_examples=300)
@given(data=st.data())
def test_times_in_text_are_bound_as_isoformat_writes_them(kind: Kind, data: st.DataObject) -> None:
    """What SQLite is given for a source's text is what it is given for the canonical value: no
    fraction for whole seconds, else six digits, whatever width the source used."""
    micro = st.sampled_from([0, 1, 10, 120_000, 123_456, 999_999, 500_000]) | st.integers(0, 999_999)
    moments = st.builds(
        lambda d, m: d.replace(microsecond=m), st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)), micro
    )
    values = data.draw(st.lists(st.none() | moments, max_size=8))
    padded = data.draw(st.booleans())
    texts = [None if v is None else _as_sent(v, padded, kind) for v in values]
    encode = bulk.SQLiteWriter.ENCODERS[kind]
    expected = [None if v is None else encode(v.time() if kind is Kind.TIME else v) for v in values]
    assert bulk._sqlite_bind_column(texts, kind) == expected


@settings(max_examples=300)
@given(values=st.lists(st.none() | st.text(alphabet="ab\\N\t\n", max_size=5), max_size=8))
def test_copy_text_fields_are_parsed_as_each_field_alone(values: list[str | None]) -> None:
    """NULLs, escapes and a text that is "\\N" itself, however they mix in a column."""
    copy = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n"})
    line = "\t".join("\\N" if v is None else v.translate(copy) for v in values)
    text = "".join(f"{line}\n" if values else "" for _ in range(2)).encode()
    kinds = [Kind.TEXT] * len(values)
    assert bulk._sqlite_binds(text, kinds) == [*values, *values] if values else True
