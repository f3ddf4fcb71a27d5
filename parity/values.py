"""Canonical Python values: what every driver's values are turned into before they are written or compared.

| kind                        | canonical value                                 |
|-----------------------------|-------------------------------------------------|
| boolean                     | bool                                            |
| smallint, integer, bigint   | int                                             |
| decimal                     | decimal.Decimal (exact, never through float)    |
| float, double               | float                                           |
| varchar, char, text         | str (CHAR padding stripped on the right)        |
| date / time                 | datetime.date / datetime.time                   |
| timestamp                   | naive datetime.datetime                         |
| timestamptz                 | aware datetime.datetime in UTC                  |
| binary                      | bytes                                           |
| uuid                        | uuid.UUID                                       |
| json                        | the parsed JSON value (dict, list, str, ...)    |

Decoders are chosen once per column (a list of functions or None), so converting a batch is a tight
loop that skips columns needing no work.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from parity.schema.types import CanonicalType, Kind

Decoder = Callable[[Any], Any]


SINGLE_LOW, SINGLE_HIGH = 2.0**-150, 2.0**128 - 2.0**103
"""A double strictly between these (in magnitude) rounds to a 4-byte float neither zero nor infinite:
half the least 4-byte float above zero, and the largest plus half its last bit's worth."""


def nearest_single(d: float) -> float:
    """``Dialect.as_single`` in Python: the nearest 4-byte float to a double, where one holds it."""
    if not SINGLE_LOW < abs(d) < SINGLE_HIGH:  # (NaN too)
        return d
    return float(struct.unpack("<f", struct.pack("<f", d))[0])


BOOLEAN_TEXT = {"t": True, "true": True, "y": True, "yes": True, "on": True}
BOOLEAN_TEXT.update({"f": False, "false": False, "n": False, "no": False, "off": False})
"""Booleans held as text, case aside: old Rails' SQLite files hold 't' and 'f' (as PostgreSQL reads)."""


def boolean_text(text: str) -> bool | None:
    """The boolean a text spells (``BOOLEAN_TEXT``), or None."""
    return BOOLEAN_TEXT.get(text.strip().lower())


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and (spelled := boolean_text(v)) is not None:
        return spelled
    number = whole_number(v)
    if number not in (0, 1):  # (SQLite's and MySQL's booleans are integers: 2 is no boolean)
        raise ValueError(f"{v!r} is not a boolean (0 or 1)")
    return bool(number)


def _decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    try:
        return Decimal(str(v))
    except ArithmeticError:  # (decimal.InvalidOperation)
        raise ValueError(f"{v!r} is not a number") from None


def whole_number(v: Any) -> int:
    """An integer's value; ValueError for a number that is not whole (SQLite's 2.7 in an INTEGER column,
    which int() would cut to 2)."""
    if isinstance(v, int):
        return v
    try:
        number = Decimal(str(v))
    except ArithmeticError:  # (decimal.InvalidOperation)
        raise ValueError(f"{v!r} is not a number") from None
    if number != number.to_integral_value():  # (SQLite keeps 2.7 in an INTEGER column)
        raise ValueError(f"{v!r} is not a whole number")
    return int(number)


def _float(v: Any) -> float:
    return v if isinstance(v, float) else float(v)


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8")
    return str(v)


def _char(v: Any) -> str:
    return _text(v).rstrip(" ")


def _no_number(v: Any, what: str) -> None:
    """A number is no date or time (an SQLite file's numbers are read through ``?numeric_dates=``):
    Python's ISO parser took the integer 20230101 for 2023-01-01."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(
            f"a number is no {what}; with ?numeric_dates= on an SQLite file's URL, a number of whole "
            "milliseconds within the years 0 to 9999 is"
        )


def _date(v: Any) -> date:
    _no_number(v, "date")
    if isinstance(v, datetime):
        if v.time() != time(0):
            raise ValueError(f"{v.isoformat(' ')!r} is a date and a time of day")
        return v.date()
    if isinstance(v, date):
        return v
    text = str(v)
    if len(text) > 10:  # (a date and a time: midnight only, else its time would be lost; ' BC' is no
        return _date(_timestamp(text))  # date of the Christian era, which Python's are)
    return date.fromisoformat(text)


_FRACTION = re.compile(r"[T ]\d\d:\d\d:\d\d\.(\d{7,})|^\d\d:\d\d:\d\d\.(\d{7,})")


def _microseconds_at_most(text: str, longest: int) -> str:
    """The text of a time, refused where it holds a part of a second finer than a microsecond (Python's
    ``fromisoformat`` cuts it off: '10:00:00.123456789' is 10:00:00.123456); ``longest``: the length of
    such a text with six digits and no offset, which needs no search."""
    match = _FRACTION.search(text) if len(text) > longest else None
    if match and (match.group(1) or match.group(2))[6:].strip("0"):
        raise ValueError(f"{text!r} holds a part of a second finer than a microsecond")
    return text


def duration_text(value: timedelta) -> str:
    """A duration as MySQL writes a TIME: ``838:59:59``, ``-12:30:00``, ``01:02:03.500000`` (Python's
    own text is '34 days, 22:59:59' and '-1 day, 11:30:00')."""
    sign = "-" if value < timedelta(0) else ""
    micro = abs(value) // timedelta(microseconds=1)
    seconds, micro = divmod(micro, 1_000_000)
    text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{text}.{micro:06d}" if micro else text


def _time(v: Any) -> time:
    if isinstance(v, time):
        return v
    if isinstance(v, timedelta):  # MySQL TIME arrives as a duration (from -838:59:59 to 838:59:59)
        if not timedelta(0) <= v < timedelta(days=1):
            raise ValueError(f"TIME value {duration_text(v)} is not a time of day")
        seconds, micro = v.seconds, v.microseconds
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
    moment = time.fromisoformat(_microseconds_at_most(str(v), 15))
    if moment.tzinfo is not None:  # ('12:00:00+01:00' in SQLite: a time of day holds no offset)
        raise ValueError(f"{v!r} is a time with an offset")
    return moment


def _timestamp(v: Any) -> datetime:
    _no_number(v, "timestamp")
    if not isinstance(v, datetime):
        v = datetime.fromisoformat(_microseconds_at_most(str(v), 26))
    return v.replace(tzinfo=None) if v.tzinfo is None else v.astimezone(timezone.utc).replace(tzinfo=None)


def _timestamptz(v: Any) -> datetime:
    _no_number(v, "timestamp")
    if not isinstance(v, datetime):
        v = datetime.fromisoformat(_microseconds_at_most(str(v), 26))
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def _binary(v: Any) -> bytes:
    return v if isinstance(v, bytes) else bytes(v)


def hex_bytes(text: str) -> bytes:
    """Bytes from their hex digits, as diff writes a binary value (``0x`` or ``\\x`` before them too)."""
    digits = text.strip()
    for prefix in ("0x", "0X", "\\x"):
        digits = digits.removeprefix(prefix)
    return bytes.fromhex(digits)


def _uuid(v: Any) -> uuid.UUID:
    if isinstance(v, uuid.UUID):
        return v
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return uuid.UUID(bytes=bytes(v))
    return uuid.UUID(str(v).strip().lower())  # (spaces around, 'URN:UUID:': as diff compares it)


class JsonText(str):
    """A JSON value as the text the source holds (checked to be JSON): its numbers exact, and its
    ``null`` JSON's null, which a parsed value would turn into SQL's NULL (``None``)."""

    __slots__ = ()


def _json(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8")
    if isinstance(v, str):
        try:
            json.loads(v)  # (JSON it must be)
        except json.JSONDecodeError as exc:
            shown = v if len(v) <= 40 else v[:40] + "..."
            raise ValueError(f"{shown!r} is no JSON ({exc.msg} at character {exc.pos})") from None
        return v if isinstance(v, JsonText) else JsonText(v)
    return v


DECODERS: dict[Kind, Decoder] = {
    Kind.BOOLEAN: _bool,
    Kind.SMALLINT: whole_number,
    Kind.INTEGER: whole_number,
    Kind.BIGINT: whole_number,
    Kind.DECIMAL: _decimal,
    Kind.FLOAT: _float,
    Kind.DOUBLE: _float,
    Kind.VARCHAR: _text,
    Kind.CHAR: _char,
    Kind.TEXT: _text,
    Kind.DATE: _date,
    Kind.TIME: _time,
    Kind.TIMESTAMP: _timestamp,
    Kind.TIMESTAMPTZ: _timestamptz,
    Kind.BINARY: _binary,
    Kind.UUID: _uuid,
    Kind.JSON: _json,
}

_NATIVE: dict[Kind, tuple[type, ...]] = {
    Kind.BOOLEAN: (bool,),
    Kind.SMALLINT: (int,),
    Kind.INTEGER: (int,),
    Kind.BIGINT: (int,),
    Kind.DECIMAL: (Decimal,),
    Kind.FLOAT: (float,),
    Kind.DOUBLE: (float,),
    Kind.VARCHAR: (str,),
    Kind.TEXT: (str,),
    Kind.DATE: (date,),
    Kind.BINARY: (bytes,),
    Kind.UUID: (uuid.UUID,),
}


DECODE_ERRORS = (ValueError, TypeError, ArithmeticError)
"""What a decoder raises for a value its kind cannot take."""


def decode_value(kind: Kind, value: Any) -> Any:
    """One value to canonical; None stays None."""
    if value is None:
        return None
    native = _NATIVE.get(kind)
    if native and type(value) in native:
        return value
    return DECODERS[kind](value)


def decode_rows(types: Sequence[CanonicalType], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Turn a batch of driver rows into canonical tuples."""
    kinds = [t.kind for t in types]
    return [tuple(decode_value(k, v) for k, v in zip(kinds, row, strict=True)) for row in rows]


UUID_SPELLINGS = 6


def uuid_spellings(value: Any) -> list[str]:
    """The texts a UUID is held as where a text column holds it (``UUID_SPELLINGS`` of them): lower
    and upper case, with and without dashes, in braces, and a text given in another spelling itself;
    text that is no UUID, as it is."""
    try:
        u = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value).strip())
    except ValueError:
        return [str(value)] * UUID_SPELLINGS
    text = str(u)
    spelled = [text, text.upper(), u.hex, u.hex.upper(), "{" + text + "}", "{" + text.upper() + "}"]
    if isinstance(value, str) and value not in spelled:  # (a text as the target holds it, in a
        spelled[-1] = value  # spelling of its own: 'urn:uuid:...', mixed case, spaces around)
    return spelled


def canonical_json(value: Any) -> str:
    """JSON text that is the same for equal JSON values, whatever key order, spacing or spelling of a
    number they came with (``1.50`` and ``1.5``, ``1e2`` and ``100`` are one number, as jsonb compares
    them), every digit of a number kept (parsed as a float, 0.30000000000000001 was 0.3)."""
    if isinstance(value, JsonText):
        value = json.loads(value, parse_float=Decimal)
    parts: list[str] = []
    _jsonb(value, parts, canonical=True)
    return "".join(parts)


def jsonb_text(value: Any) -> str:
    """JSON text as PostgreSQL's jsonb writes it, the form diff hashes JSON in on every database: object
    keys shorter first, then by their UTF-8 bytes (the last of a key given twice), ``", "`` and
    ``": "`` between items, numbers as its numeric writes them (``100`` for ``1e2``, ``1.50`` kept,
    ``0`` for ``-0``), strings escaped as it escapes them."""
    if isinstance(value, JsonText):
        value = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    parts: list[str] = []
    _jsonb(value, parts)
    return "".join(parts)


def _jsonb(value: Any, out: list[str], canonical: bool = False) -> None:
    """jsonb's text; ``canonical``: compact, keys in Python's order, numbers without trailing zeros."""
    if isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))  # (escapes what jsonb escapes, the same way)
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, int):
        # (below 10**100 an int's own text is its canonical one: the Decimal's costs twice as much)
        out.append(_canonical_number(Decimal(value)) if canonical and abs(value) >= 10**100 else str(value))
    elif isinstance(value, (Decimal, float)):
        number = value if isinstance(value, Decimal) else Decimal(repr(value))
        if canonical:
            out.append(_canonical_number(number))
            return
        out.append(format(number.copy_abs() if number.is_zero() else number, "f"))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value) if canonical else sorted(value, key=_jsonb_order)):
            out.append(("," if canonical else ", ") if i else "")
            out.append(json.dumps(key, ensure_ascii=False) + (":" if canonical else ": "))
            _jsonb(value[key], out, canonical)
        out.append("}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if canonical else ", ") if i else "")
            _jsonb(item, out, canonical)
        out.append("]")


def _canonical_number(number: Decimal) -> str:
    """A JSON number's exact value as one text, whatever its spelling: trailing zeros dropped (no
    rounding, no context's limits), positional unless its exponent is far out (``1E+1000000`` is not
    written as a million digits)."""
    if not number.is_finite():
        return str(number)
    if number.is_zero():
        return "0"
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    kept = len(digits)
    while digits[kept - 1] == 0:
        kept -= 1
    exact = Decimal((sign, digits[:kept], exponent + len(digits) - kept))
    return format(exact, "f") if abs(exact.adjusted()) < 100 else str(exact)


def _jsonb_order(key: str) -> tuple[int, bytes]:
    utf8 = key.encode("utf-8", "surrogatepass")
    return len(utf8), utf8


def json_text(value: Any) -> str:
    """The JSON text to write: the source's own where parity has it (exact), else in jsonb's form (the
    one diff hashes)."""
    return value if isinstance(value, JsonText) else jsonb_text(value)


def no_nan(column: str, value: float, backend: str) -> str:
    """Why a row is refused: a float the target database cannot hold (MySQL and MariaDB have no NaN and
    no infinity; their drivers refuse the row without naming it)."""
    return f"{column}: {value} is no number {backend} holds (no NaN, no infinity)"
