"""`item_size` counts an item the way DynamoDB's developer guide says ("Item sizes and formats")."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary

from leadscore.repository.sizes import MAX_ITEM_BYTES, item_size, wire_item_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("item", "size"),
    [
        # A string: name bytes + UTF-8 bytes (names count in UTF-8 too).
        ({"name": "abc"}, 4 + 3),
        ({"é": "日本"}, 2 + 6),
        ({"s": ""}, 1),
        # A number: 1 byte per two significant digits, leading and trailing zeros trimmed, + 1.
        ({"n": 7}, 1 + 1 + 1),
        ({"n": 12}, 1 + 1 + 1),
        ({"n": 123}, 1 + 2 + 1),
        ({"n": Decimal("123.45")}, 1 + 3 + 1),
        ({"n": Decimal("-0.0012")}, 1 + 1 + 1),
        ({"n": 1200000}, 1 + 1 + 1),
        ({"n": 0}, 1 + 0 + 1),
        ({"n": Decimal("1" * 38)}, 1 + 19 + 1),
        # Binary: raw bytes, not the base64 that travels.
        ({"b": b"\x00\x01\x02\x03\x04"}, 1 + 5),
        ({"b": Binary(b"xyz")}, 1 + 3),
        # Boolean and null: 1 byte.
        ({"flag": True}, 4 + 1),
        ({"none": None}, 4 + 1),
        # List and map: 3 bytes, plus 1 byte and the size of each element; map keys count as names.
        ({"l": []}, 1 + 3),
        ({"m": {}}, 1 + 3),
        ({"l": ["ab", 12, True]}, 1 + 3 + (1 + 2) + (1 + 2) + (1 + 1)),
        ({"m": {"key": "v", "n": 5}}, 1 + 3 + (1 + 3 + 1) + (1 + 1 + 2)),
        ({"m": {"inner": {"l": [None]}}}, 1 + 3 + (1 + 5 + 3 + (1 + 1 + 3 + (1 + 1)))),
        # Sets: the sum of their elements.
        ({"ss": {"ab", "cde"}}, 2 + 5),
        ({"ns": {1, 234, Decimal("0.5")}}, 2 + 2 + 3 + 2),
        ({"bs": {b"ab", b"c"}}, 2 + 3),
        # An item: the sum of its attributes.
        ({"lead_id": "ld_1", "score": 40, "tags": {"a"}}, (7 + 4) + (5 + 2) + (4 + 1)),
    ],
)
def test_item_size_follows_the_documented_rules(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_wire_form_measures_the_same_as_python_values() -> None:
    blob = bytes(range(256)) * 3 + b"x"
    python = {"id": "ld_1", "n": Decimal("-12.50"), "b": blob, "l": [{"k": {"a", "b"}}, None, False]}
    wire = {
        "id": {"S": "ld_1"},
        "n": {"N": "-12.50"},
        "b": {"B": base64.b64encode(blob).decode()},
        "l": {"L": [{"M": {"k": {"SS": ["a", "b"]}}}, {"NULL": True}, {"BOOL": False}]},
    }
    assert (
        wire_item_size(wire)
        == item_size(python)
        == 2 + 4 + 1 + 3 + 1 + len(blob) + 1 + 3 + (1 + 3 + 1 + 1 + 2) + (1 + 1) + (1 + 1)
    )


def test_the_limit_is_400_kib() -> None:
    assert MAX_ITEM_BYTES == 400 * 1024
    assert item_size({"lead_id": "x" * (MAX_ITEM_BYTES - 7)}) == MAX_ITEM_BYTES
