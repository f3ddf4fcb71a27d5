"""The parent maps a copy holds in memory (``IdMaps.parent``): whole numbers as two arrays, other IDs
in a dict, neither past the room given, on each database parity writes its map into."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from parity.remap import PAIR_BYTES, TEXT_PAIR_BYTES, HeldIds, IdMaps
from parity.state import State
from tests.conftest import BACKENDS, Database

NUMBERS = {str(i): i + 1000 for i in range(1, 300)}
"""1 to 299: their texts ("10" before "9") are not in their numbers' order."""


@pytest.mark.parametrize("backend", BACKENDS)
def test_held_maps_of_whole_numbers_are_arrays_and_others_dicts(
    make_db: Callable[[str], Database], backend: str
) -> None:
    endpoint = make_db(backend).endpoint("target")
    state = State(endpoint)
    state.ensure()
    maps = IdMaps(state)
    with endpoint.begin() as conn:
        maps.record_many(conn, "numbers", NUMBERS)
        maps.record_many(conn, "texts", {"a": 1, "b": 2})
        maps.record_many(conn, "signed", {"-5": 1, "3": 2})
        maps.record_many(conn, "padded", {"007": 1, "8": 2})
    with endpoint.connect() as conn:
        numbers = maps.parent(conn, "numbers")
        assert isinstance(numbers, HeldIds)
        assert dict(numbers) == NUMBERS
        found = [numbers.get(old) for old in ("10", "299", "300", "010")]
        assert found == [1010, 1299, None, None]
        assert "1" in numbers and "0" not in numbers and "x" not in numbers  # fmt: skip
        assert maps.parent(conn, "texts") == {"a": 1, "b": 2}
        assert maps.parent(conn, "signed") == {"-5": 1, "3": 2}  # (a negative ID: no numbers' order)
        assert maps.parent(conn, "padded") == {"007": 1, "8": 2}
        held = maps.parent(conn, "none")  # (a table the map holds none of: held, empty)
        assert held is not None and len(held) == 0
        assert maps.room == IdMaps(state).room - 299 * PAIR_BYTES - 6 * TEXT_PAIR_BYTES
    small = IdMaps(state, room=PAIR_BYTES * 100)
    with endpoint.connect() as conn:
        assert small.parent(conn, "numbers") is None  # (299 pairs do not fit in 100)
        assert small.parent(conn, "texts") == {"a": 1, "b": 2}  # (room for 13 of them)
