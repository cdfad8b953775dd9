"""Item sizes as DynamoDB counts them toward its 400 KB limit: what bounds every item the product
writes (see `profiles.worst_case_item`), and what the test emulator enforces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeSerializer

MAX_ITEM_BYTES = 409_600  # 400 KB, names and values


def item_size(item: Mapping[str, Any]) -> int:
    """The size of an item as DynamoDB counts it toward its 400 KB limit (`MAX_ITEM_BYTES`).

    `item` holds Python values as the boto3 Table resource takes them (str, int/Decimal, bytes or
    Binary, bool, None, list, dict, set). DynamoDB's documented rules ("Item sizes and formats" in
    the developer guide): each attribute counts its name's UTF-8 bytes plus its value; a string its
    UTF-8 bytes; a number 1 byte per two significant digits (leading and trailing zeros trimmed)
    plus 1; binary its raw bytes; a boolean or null 1 byte; a list or map 3 bytes plus, per
    element, 1 byte and the element (a map key counts like a name); a set the sum of its elements.
    The number rule is documented as approximate: measured numbers can cost a byte more.
    """
    serialize = TypeSerializer().serialize
    return sum(utf8_size(name) + value_size(serialize(value)) for name, value in item.items())


def wire_item_size(item: Mapping[str, Any]) -> int:
    """`item_size` of an item in DynamoDB's wire form (`{"name": {"S": "..."}}`, binary base64)."""
    return sum(utf8_size(name) + value_size(value) for name, value in item.items())


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _number_size(text: str) -> int:
    mantissa = text.lower().partition("e")[0]
    digits = mantissa.lstrip("+-").replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, str):  # base64, as it travels in JSON and as moto keeps it
        return len(value) * 3 // 4 - value[-2:].count("=")
    return len(bytes(value))


def value_size(value: Any) -> int:
    """Size of one value: a wire-form dict (`{"S": "x"}`) or moto's DynamoType (same type codes)."""
    kind = getattr(value, "type", None)
    if kind is None:
        ((kind, inner),) = value.items()
    else:
        inner = value.value
    if kind == "S":
        return utf8_size(inner)
    if kind == "N":
        return _number_size(inner)
    if kind == "M":
        return 3 + sum(1 + utf8_size(k) + value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "SS":
        return sum(utf8_size(v) for v in inner)
    if kind == "NS":
        return sum(_number_size(v) for v in inner)
    if kind == "B":
        return _binary_size(inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    return 1  # BOOL, NULL
