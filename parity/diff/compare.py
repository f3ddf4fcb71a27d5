"""Compare downloaded rows in Python, exactly (or within the column's tolerance).

Rows arrive as driver values, become canonical values (``parity.values.decode_rows``), and each column
pair is then brought to one comparable form by its ``Compare``: a CHAR's padding dropped, a
timestamptz turned into UTC wall-clock time, a UUID held as text parsed, JSON rendered canonically.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

from parity.dialects.base import Dialect
from parity.diff.plan import FLOAT_KINDS, TIME_KINDS, ColumnPair, Compare, TablePlan
from parity.diff.result import RowDiff
from parity.errors import DataError
from parity.schema.types import STRING_KINDS, CanonicalType, Kind
from parity.values import JsonText, canonical_json, decode_value, nearest_single, whole_number

Normalize = Callable[[Any], Any]
Equal = Callable[[Any, Any], bool]


def _utc_naive(v: datetime) -> datetime:
    return v if v.tzinfo is None else v.astimezone(timezone.utc).replace(tzinfo=None)


def _maybe_uuid(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return uuid.UUID(v.strip().lower())  # ('URN:UUID:...': as SQL reads it, Dialect.uuid_digits)
        except ValueError:
            return v
    return v


def _json_text(v: Any) -> str:
    """JSON held in a string column: parsed, then canonical (text that is not JSON stays as it is)."""
    try:
        return canonical_json(JsonText(v))
    except ValueError:
        return str(v)


def _identity(v: Any) -> Any:
    return v


def normalizer(compare: Compare, native: CanonicalType) -> Normalize:
    """The function that brings one side's canonical value to the pair's comparable form."""
    kind = compare.kind
    if kind in (Kind.BIGINT, Kind.BOOLEAN):
        return whole_number  # (2.7 is no 2, nor 1.5 true: such a value stays itself, ``_lenient``)
    if kind is Kind.DOUBLE:
        return _single if compare.single else float
    if kind is Kind.DECIMAL and native.kind is Kind.DECIMAL:
        return _identity
    if kind is Kind.TEXT:
        return (lambda v: v.rstrip(" ")) if compare.strip else _identity
    if kind is Kind.UUID:
        return _maybe_uuid if native.kind in STRING_KINDS else _identity
    if compare.fraction is not None:  # (times and timestamps compared at fewer digits of a second)
        whole = normalizer(replace(compare, fraction=None), native)
        return functools.partial(_cut, whole, 10 ** (6 - compare.fraction))
    if kind is Kind.TIMESTAMP:
        return _utc_naive
    if kind is Kind.JSON:
        return _json_value if native.kind is Kind.JSON else _json_text
    return _identity


def _json_value(v: Any) -> Any:
    """A JSON column's value, canonical; text in it that is no JSON (SQLite keeps any), which decoding
    left as it is, stays apart from every JSON value: taken for a JSON string, 'abc' equalled the
    "abc" a sync had written for it, and diff found the two tables identical."""
    if isinstance(v, str) and not isinstance(v, JsonText):
        return ("no JSON", v)
    return canonical_json(v)


def _single(v: Any) -> float:
    """A 4-byte float's value, whether the driver gave it exactly or as its shortest text's double
    (psycopg: 123456.8 for the real 123456.796875), or a double's nearest 4-byte float."""
    return nearest_single(float(v))


def _float_equal(digits: int | None) -> Equal:
    """Equal floats: the same, or the same to ``digits`` significant digits."""

    def equal(a: float, b: float) -> bool:
        if a == b:
            return True
        if not (isinstance(a, float) and isinstance(b, float)):  # (SQLite's 'n/a' in a REAL column)
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        if digits is None or not (math.isfinite(a) and math.isfinite(b)):
            return False
        return f"{a:.{digits - 1}e}" == f"{b:.{digits - 1}e}"

    return equal


def _within(tolerance: float, kind: Kind) -> Equal:
    if kind in TIME_KINDS:  # (whole microseconds, rounded down: timedelta would make 0.9 µs one)
        step = timedelta(microseconds=math.floor(tolerance * 1_000_000 + 1e-6))
        return lambda a, b: abs(a - b) <= step
    exact = Decimal(repr(tolerance))

    def equal(a: Any, b: Any) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return abs(float(a) - float(b)) <= tolerance
        return abs(Decimal(a) - Decimal(b)) <= exact

    return equal


def equality(compare: Compare) -> Equal:
    """Equality of two non-null comparable values of a column pair."""
    if compare.tolerance is not None:
        return _within(compare.tolerance, compare.kind)
    if compare.kind in FLOAT_KINDS:
        return _float_equal(compare.digits)
    return lambda a, b: bool(a == b) or (_nan(a) and _nan(b))


def _nan(v: Any) -> bool:
    """A decimal NaN, which equals nothing, itself included."""
    return isinstance(v, Decimal) and v.is_nan()


def _null_safe(equal: Equal) -> Equal:
    def check(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return equal(a, b)

    return check


def _decoder(ctype: CanonicalType, dialect: Dialect) -> Normalize | None:
    """Driver value -> canonical value; None where the driver's value already is canonical."""
    kind = ctype.kind
    if kind in dialect.NATIVE_KINDS and kind is not Kind.JSON:
        return dialect.text_decoder(kind)
    return lambda v: decode_value(kind, v)


def _scaler(ctype: CanonicalType) -> Normalize | None:
    """Decimals shown at their declared scale (SQLite may hold 2 for a decimal(12,2) 2.00)."""
    if ctype.kind is not Kind.DECIMAL or ctype.precision is None:
        return None
    unit = Decimal(1).scaleb(-(ctype.scale or 0))

    def scaled(d: Any) -> Any:
        if isinstance(d, int):  # (MariaDB's BIGINT UNSIGNED, a decimal(20,0), comes as an int)
            d = Decimal(d)
        if not isinstance(d, Decimal) or not d.is_finite():  # (SQLite's 'abc' in a DECIMAL: as it is)
            return d
        exact = d.quantize(unit, context=_WIDE)
        return exact if exact == d else d

    return scaled


_WIDE = Context(prec=2000)


def at_scale(value: Any, ctype: CanonicalType) -> Any:
    """A value as diff shows and records it: a decimal at its column's declared scale (``_scaler``)."""
    scaled = _scaler(ctype)
    return value if scaled is None or value is None else scaled(value)


def _lenient(f: Normalize) -> Normalize:
    """``f``, or the value as the driver gave it where ``f`` cannot take it (a TIME past 24 hours,
    MySQL's zero date, SQLite's text in a DATETIME column): such a value then equals only the same
    value on the other side, and is reported as it is, instead of stopping the diff."""

    if f is _identity:
        return f

    def lenient(v: Any) -> Any:
        try:
            return f(v)
        except (ValueError, TypeError, AttributeError, ArithmeticError):
            return v

    return lenient


def _cut(whole: Normalize, unit: int, v: Any) -> Any:
    """A time or timestamp (normalized by ``whole``) with its microseconds cut to a multiple of ``unit``."""
    v = whole(v)
    return v.replace(microsecond=v.microsecond - v.microsecond % unit)


def _sorted(keys: set[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    first = next(iter(keys), ())
    if any(type(v) is uuid.UUID for v in first):  # (by their numbers, compared in C: UUID's own < is Python)
        with suppress(AttributeError, TypeError):
            return sorted(keys, key=lambda key: tuple(v.int if type(v) is uuid.UUID else v for v in key))
    try:
        return sorted(keys)
    except TypeError:  # mixed types (a NULL-free key cannot hold them, but stay safe)
        return sorted(keys, key=lambda key: tuple((type(v).__name__, v) for v in key))


def column_equality(pair: ColumnPair) -> Callable[[Any, Any], bool]:
    """Whether a source value and a target value (canonical, None for NULL) of a column pair are
    equal as diff compares them (``parity fix`` asks it of rows it read again)."""
    source = _lenient(normalizer(pair.compare, pair.source.type))
    target = _lenient(normalizer(pair.compare, pair.target.type))
    equal = _null_safe(equality(pair.compare))

    def check(a: Any, b: Any) -> bool:
        return equal(None if a is None else source(a), None if b is None else target(b))

    return check


class _Side:
    """How one side's rows are decoded and made comparable."""

    def __init__(
        self,
        pairs: Sequence[ColumnPair],
        dialect: Dialect,
        source: bool,
        references: Collection[str] = (),
        shared: dict[str, dict[int, int]] | None = None,
    ) -> None:
        """``references``: columns of IDs read through the ID map, as text (``Side._rows``); ``shared``:
        the source's references to rows that share a target row, as the least of them
        (``ThroughMap.shared``)."""
        columns = [p.source if source else p.target for p in pairs]
        self.names = [c.name for c in columns]
        decoders = [_id_or_unmapped if c.name in references else _decoder(c.type, dialect) for c in columns]
        for i, c in enumerate(columns):
            if shared and c.name in shared:
                decoders[i] = _least_of(shared[c.name], decoders[i])
        self.decoders = [(i, _lenient(f)) for i, f in enumerate(decoders) if f is not None]
        self.norms = [_lenient(normalizer(p.compare, c.type)) for p, c in zip(pairs, columns, strict=True)]
        self.scalers = [(i, f) for i, f in enumerate(_scaler(c.type) for c in columns) if f is not None]

    def decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.decoders:
            return tuple(row)
        values = list(row)
        for i, f in self.decoders:
            if values[i] is not None:
                values[i] = f(values[i])
        return tuple(values)

    def shown(self, row: Sequence[Any]) -> dict[str, Any]:
        values = list(row)
        for i, f in self.scalers:
            if values[i] is not None:
                values[i] = f(values[i])
        return dict(zip(self.names, values, strict=True))


def _least_of(least: dict[int, int], decode: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    def canonical(value: Any) -> Any:
        value = value if decode is None else decode(value)
        return least.get(value, value) if isinstance(value, int) else value

    return canonical


def _id_or_unmapped(text: Any) -> Any:
    """An ID read through the ID map as text: the integer, or the text of one the map does not hold
    (``unmapped:N``), which equals no source ID."""
    try:
        return int(text)
    except ValueError:
        return text


class RowComparer:
    """Compares batches of rows of one table pair (rows from the same segments on both sides)."""

    def __init__(self, plan: TablePlan, source: Dialect, target: Dialect) -> None:
        pairs: Sequence[ColumnPair] = (*plan.keys, *plan.columns)
        self.table = plan.name
        self.n_keys = len(plan.keys)
        # kinds the driver already returns as canonical values are left alone (as copy does);
        # JSON is always selected as text (Side.rows), so that a JSON string never passes for JSON text
        through = plan.through_map
        references = through.references if through is not None and through.translates else {}
        shared = {  # (by source column name)
            p.source.name: through.shared[p.target.name]
            for p in pairs
            if through is not None and references and p.target.name in through.shared
        }
        self.sides = {
            "source": _Side(pairs, source, True, shared=shared),
            "target": _Side(pairs, target, False, references),
        }
        self.source_names = self.sides["source"].names
        self.target_names = self.sides["target"].names
        self.equal = [_null_safe(equality(p.compare)) for p in pairs]
        # equal Python values are equal columns (so unchanged rows cost one tuple comparison), except
        # for JSON, where True == 1 and 1 == 1.0 must not pass
        self.plain = not any(p.compare.kind is Kind.JSON for p in plan.columns)
        self.names = {p.source.name: p.target.name for p in pairs if p.source.name != p.target.name}
        self.held = [  # (the target's keys it may hold as text in a spelling of their own: SQLite's dates
            (i, p.target.name)  # and UUIDs)
            for i, p in enumerate(plan.keys)
            if target.key_spellings(kind := p.target.type.kind) or (kind is Kind.UUID and target.UUID_AS_TEXT)
        ]

    def decode(self, row: Sequence[Any], role: str) -> tuple[Any, ...]:
        return self.sides[role].decode(row)

    def key_of(self, row: Sequence[Any], role: str) -> tuple[Any, ...]:
        """The comparable key of a driver row (or of key values alone)."""
        side = self.sides[role]
        values = side.decode([*row[: self.n_keys], *([None] * (len(side.names) - self.n_keys))])
        return tuple(f(v) for f, v in zip(side.norms, values[: self.n_keys], strict=False))

    def index(
        self,
        rows: Sequence[Sequence[Any]],
        role: str,
        raws: dict[tuple[Any, ...], Sequence[Any]] | None = None,
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """Decoded rows by comparable key (and into ``raws``, the rows as read); a key seen twice is a
        DataError naming it."""
        side = self.sides[role]
        norms = side.norms[: self.n_keys]
        n = self.n_keys
        out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for raw in rows:
            row = side.decode(raw)
            key = tuple(f(v) for f, v in zip(norms, row[:n], strict=True))
            if key in out:
                shown = dict(zip(side.names[:n], row[:n], strict=True))
                raise DataError(
                    f"table '{self.table}' ({role}) has duplicate key {shown}; diff needs a unique key"
                )
            out[key] = row
            if raws is not None:
                raws[key] = raw
        return out

    def compare(
        self, source_rows: Sequence[Sequence[Any]], target_rows: Sequence[Sequence[Any]]
    ) -> list[RowDiff]:
        """The differences between two batches, in key order."""
        raws: dict[tuple[Any, ...], Sequence[Any]] | None = {} if self.held else None
        source = self.index(source_rows, "source")
        target = self.index(target_rows, "target", raws)
        n = self.n_keys
        out: list[RowDiff] = []
        for key in _sorted(source.keys() | target.keys()):
            s, t = source.get(key), target.get(key)
            if t is None and s is not None:
                out.append(self._diff("missing", s, None, ()))
            elif s is None and t is not None:
                out.append(self._diff("extra", None, t, (), self._held(raws, key)))
            elif s is not None and t is not None and not (self.plain and s[n:] == t[n:]):
                changed = self.changed(s, t)
                if changed:
                    out.append(self._diff("changed", s, t, changed, self._held(raws, key)))
        return out

    def _held(
        self, raws: dict[tuple[Any, ...], Sequence[Any]] | None, key: tuple[Any, ...]
    ) -> dict[str, Any]:
        """The target's key as it holds it, where that is text diff decoded (``RowDiff.held``)."""
        if raws is None:
            return {}
        raw = raws[key]
        return {name: raw[i] for i, name in self.held if isinstance(raw[i], str)}

    def changed(self, s: Sequence[Any], t: Sequence[Any]) -> tuple[str, ...]:
        source_norm, target_norm = self.sides["source"].norms, self.sides["target"].norms
        names = []
        for i in range(self.n_keys, len(s)):
            a, b = s[i], t[i]
            if self.plain and a == b:
                continue
            a = None if a is None else source_norm[i](a)
            b = None if b is None else target_norm[i](b)
            if not self.equal[i](a, b):
                names.append(self.source_names[i])
        return tuple(names)

    def comparable_key(self, row: Sequence[Any], role: str) -> tuple[Any, ...]:
        """The comparable key of a decoded row."""
        norms = self.sides[role].norms
        return tuple(f(v) for f, v in zip(norms[: self.n_keys], row[: self.n_keys], strict=True))

    def moved(self, missing: RowDiff, extra: RowDiff) -> RowDiff | None:
        """A row missing from one partition and extra in another (its partition column changed): the
        changed row it is, or None where the two are equal after all."""
        assert missing.row is not None and extra.row is not None
        changed = self.changed(missing.row, extra.row)
        return self._diff("changed", missing.row, extra.row, changed, extra.held) if changed else None

    def _diff(
        self,
        kind: str,
        s: Sequence[Any] | None,
        t: Sequence[Any] | None,
        columns: tuple[str, ...],
        held: dict[str, Any] | None = None,
    ) -> RowDiff:
        source = None if s is None else self.sides["source"].shown(s)
        target = None if t is None else self.sides["target"].shown(t)
        some = source if source is not None else dict(zip(self.source_names, t or (), strict=True))
        return RowDiff(
            table=self.table,
            key={k: some[k] for k in self.source_names[: self.n_keys]},
            kind=kind,  # type: ignore[arg-type]
            columns=columns,
            source=source,
            target=target,
            names=self.names,
            row=None if columns else tuple(s if s is not None else t or ()),
            held=held or {},
        )
