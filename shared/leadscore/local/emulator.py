"""Make moto as atomic as the services it emulates, and make its Query cost what DynamoDB's does.

DynamoDB applies each request atomically (a conditional write either wins or fails), but moto
handles concurrent requests in Python without a lock, so two threads can both pass the same
condition. The local stack and the tests serialize requests to the emulator, one request at a
time: code under test still interleaves *between* its requests exactly as it would on AWS, so a
read-modify-write bug still loses updates, while the emulator stops inventing races AWS can't have.

In-process moto answers on its own thread, as a server would, rather than on the caller's stack.
That costs a thread hand-off per request and saves far more: moto parses and validates update and
condition expressions recursively, and CPython 3.11 allocates the frame stack in 16 KiB chunks that
it maps on entry and unmaps as soon as their frames return. Called from deep inside a handler
invocation, that recursion can straddle a chunk boundary and mmap/munmap a chunk at every step:
the same UpdateItem took 10 to 38 ms depending only on the caller's stack depth, and a quarter
of the rescore test's time was system time. On a thread of its own moto always starts shallow.

A DynamoDB Query on a table reads one partition. moto (5.2.5) answers it by sorting *every* item of
the table and then keeping those of the queried partition, so code that queries once per lead (the
rescore job replaying each lead's ledger) costs time quadratic in the table size. `partition_queries`
hands moto's own Query only the queried partition; everything else (key conditions, order, limits,
pagination, filters, projections, the response) is still moto's code.

DynamoDB refuses what it cannot store, and a refused write changes nothing; moto 5.2 does neither
reliably. `dynamodb_limits` (entered by `atomic_requests`, so active wherever it is) makes it:
- an item is at most 400 KB measured with DynamoDB's documented rules (`repository.sizes.item_size`), on every
  write: PutItem, BatchWriteItem (checked for the whole batch before anything is written),
  TransactWriteItems and UpdateItem (the item as it would be after the update, string-set and
  number-set ADDs included). moto checks only top-level assignments, with other rules, at 405,000;
- an UpdateItem is all or nothing: moto applies the clauses of an update expression one by one,
  so a later failure (an ADD to a value of the wrong type, a size or number limit) left the earlier
  ones applied. The item (and its stream) are restored from a snapshot on any error;
- arithmetic (`ADD`, `SET a = a + :x`) is exact and its result must fit DynamoDB's numbers (38
  significant digits, magnitude between 1e-130 and 1e126); moto rounded to 28 digits and stored
  anything. Numbers sent in an update's ExpressionAttributeValues are range-checked too, as moto
  already does for items put (boto3 itself refuses such `Decimal`s client-side, with `decimal`
  errors: that is real behaviour, left alone);
- an update or condition expression is at most 4 KB (moto takes any length), so a catalog whose
  rescoring write is too long fails in the tests as it would in AWS;
- inside TransactWriteItems these failures cancel the transaction with a `ValidationError`
  reason for the item at fault, as DynamoDB does, instead of failing the whole request;
- an UpdateItem that creates an item streams one INSERT (moto also streamed a key-only one).

DynamoDB Streams' GetRecords is how the local runner (and the tests) play stream event source
mappings, several times per event. moto (5.2.5) stores each stream record already in the wire's
JSON shape, then re-serializes it through its generic, botocore-model-driven serializer, which
walks every attribute of both item images: 5 ms per read of a lead profile's records, half of
moto's time per webhook in the local stack. `fast_stream_reads` answers GetRecords with the same
JSON written directly (`tests/integration/test_emulator.py` checks botocore parses both the same).

moto parses an UpdateItem's update expression twice per request (and once more per update of a
TransactWriteItems), although its validator works on a deep copy of the parsed tree and never
changes it. A lead profile's update expressions are long and the same for every lead of a model:
`parsed_once` keeps the parsed trees of recent expressions.

SNS refuses a publish it cannot deliver as asked; moto (5.2.5) accepts several. `sns_limits` (entered
by `atomic_requests` too) makes it refuse, with SNS's own `InvalidParameter` messages:
- a message over 256 KB counted as SNS counts it: UTF-8 bytes of the body plus every message
  attribute's name, type and value (moto counted the body's characters only);
- a `MessageStructure="json"` message that is not a JSON object of strings with a `default` entry
  (moto checks nothing at publish time; at delivery it fell back to `default` or failed, only when a
  subscription of a protocol without its own entry existed);
- a subject that is empty, 100 characters or longer, or holds a line break or control character
  (moto refused only lengths over 100, with a server error).
Per-protocol delivery of a structured message (each subscription gets its protocol's entry, else
`default`) is moto's own and right for sqs and http(s); `tests/integration/test_alerts_sns.py`
checks it.

`python -m leadscore.local.emulator -H 127.0.0.1 -p PORT` runs moto's server with all of this on.
"""

from __future__ import annotations

import base64
import calendar
import copy
import inspect
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any
from unittest.mock import patch

from leadscore.repository.sizes import MAX_ITEM_BYTES, utf8_size, value_size, wire_item_size

_lock = threading.RLock()


@contextmanager
def atomic_requests() -> Iterator[None]:
    """Serialize requests handled by in-process moto (`mock_aws`), run on the emulator's own
    thread, and by moto's server; and hold DynamoDB's limits (`dynamodb_limits`)."""
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    stub_call = BotocoreStubber.process_request
    app_call = DomainDispatcherApplication.__call__
    emulator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moto")
    handling = threading.local()

    def handle(stub: Any, request: Any) -> Any:
        handling.active = True
        try:
            return stub_call(stub, request)
        finally:
            handling.active = False

    def process_request(self: Any, request: Any) -> Any:
        if getattr(handling, "active", False):  # moto calling itself while it handles a request
            return stub_call(self, request)
        with _lock:
            return emulator.submit(handle, self, request).result()

    def app(self: Any, environ: Any, start_response: Any) -> Any:
        with _lock:
            return list(app_call(self, environ, start_response))

    with (
        patch.object(BotocoreStubber, "process_request", process_request),
        patch.object(DomainDispatcherApplication, "__call__", app),
        dynamodb_limits(),
        sns_limits(),
    ):
        try:
            yield
        finally:
            emulator.shutdown()


_narrowed = threading.local()


@contextmanager
def partition_queries() -> Iterator[None]:
    """Let moto's table Query look only at the queried partition instead of sorting the table.

    This patches moto internals (`Table.query`, `Table.all_items`), because moto offers no other
    way: its table Query is `[item for item in self.all_items() if item.hash_key == hash_key]`,
    sorted by range key, where `all_items()` sorts the whole table. Here `all_items()` returns just
    that partition's items while moto runs a table Query, so the result is the same list at the cost
    of the partition, as on DynamoDB. Index queries and scans are untouched. The narrowing is per
    thread, so concurrent requests (without `atomic_requests`) cannot see each other's partition.
    `tests/integration/test_emulator.py` checks that answers are identical with and without it.
    """
    from moto.dynamodb.models.table import Table

    table_query = Table.query
    table_all_items = Table.all_items
    signature = inspect.signature(table_query)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = signature.bind(self, hash_key, *args, **kwargs).arguments.get("index_name")
        if index_name or hash_key is None:
            return table_query(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key)  # `items` is a defaultdict: .get adds nothing
        if partition is None:
            only: list[Any] = []
        elif self.range_key_attr:
            only = sorted(partition.values(), key=lambda item: item.range_key)
        else:
            only = [partition]
        outer = getattr(_narrowed, "partition", None)
        _narrowed.partition = (self, only)
        try:
            return table_query(self, hash_key, *args, **kwargs)
        finally:
            _narrowed.partition = outer

    def all_items(self: Any) -> Any:
        narrowed = getattr(_narrowed, "partition", None)
        if narrowed is not None and narrowed[0] is self:
            return narrowed[1]
        return table_all_items(self)

    with patch.object(Table, "query", query), patch.object(Table, "all_items", all_items):
        yield


@contextmanager
def fast_stream_reads() -> Iterator[None]:
    """Answer DynamoDB Streams GetRecords with the records' JSON written directly (see the module
    docstring); every other streams request, and what GetRecords returns, are moto's own."""
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    def get_records(self: Any) -> tuple[str, dict[str, str]]:
        limit = self._get_param("Limit")
        result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
        return json.dumps(result, default=_wire_value), {"Content-Type": "application/x-amz-json-1.0"}

    with patch.object(DynamoDBStreamsHandler, "get_records", get_records):
        yield


@contextmanager
def parsed_once(cached: int = 1024) -> Iterator[None]:
    """Parse each distinct update expression once (the last `cached` of them), see the module
    docstring. moto only reads the tree it gets (its validator deep-copies it before resolving
    names and values), so a shared tree answers exactly as a fresh one."""
    from functools import lru_cache

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        UpdateExpressionValidator,
    )

    make = UpdateExpressionParser.make
    processors = UpdateExpressionValidator.get_ast_processors

    @lru_cache(maxsize=cached)
    def parse(expression: str) -> Any:
        tree = make(expression)
        # The clause count depends on the expression alone: checked once here (it raises as the
        # validator would), not on every write (moto walks the whole tree at every node: most
        # of its CPU for a profile's long update expressions).
        ActionCountValidator().traverse(deepcopy(tree))
        return tree

    def without_count(validator: Any) -> list[Any]:
        return [p for p in processors(validator) if not isinstance(p, ActionCountValidator)]

    with (
        patch.object(UpdateExpressionParser, "make", staticmethod(parse)),
        patch.object(UpdateExpressionValidator, "get_ast_processors", without_count),
    ):
        yield


@contextmanager
def modules_listed_once() -> Iterator[None]:
    """moto's server finds each request's service by listing its own package folder (a directory
    scan per request, twice); the folder does not change while it runs, so list it once."""
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())
    with patch.object(backends, "list_of_moto_modules", lambda: listed):
        yield


def _wire_value(value: Any) -> int | float | str:
    """What JSON cannot hold in a stream record, as moto's serializer writes it: a time as epoch
    seconds (to the millisecond), a binary value in base64."""
    if isinstance(value, datetime):
        seconds = calendar.timegm(value.utctimetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# -- DynamoDB's limits ----------------------------------------------------------------------------

_TOO_LARGE = "Item size has exceeded the maximum allowed size"
_OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
_UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"
_TOO_PRECISE = "Attempting to store more than 38 significant digits in a Number"
_TOO_LONG = "Invalid {part}: Expression size has exceeded the maximum allowed size; expression size: {size}"
MAX_EXPRESSION_CHARS = 4096  # DynamoDB's limit on any expression string
_EXACT = Context(prec=1000, traps=[Inexact, InvalidOperation])  # sums of DynamoDB numbers fit


class ValidationError(Exception):
    """A write refused inside TransactWriteItems. moto reports an item's failure in a transaction
    as a cancellation reason whose code is the exception's class name, with its message."""


_state = threading.local()  # per request thread: inside TransactWriteItems?


def _refusal(message: str, single: type[Exception] | None = None) -> Exception:
    """The error for a write DynamoDB refuses: a cancellation reason inside a transaction, else a
    ValidationException (moto's own class where it has one, for its exact message)."""
    from moto.dynamodb.exceptions import MockValidationException

    if getattr(_state, "transaction", False):
        return ValidationError(message)
    return single() if single is not None else MockValidationException(message)


def _checked_number(total: Decimal | int) -> str:
    number = Decimal(total)
    if number:
        if number.adjusted() > 125:
            raise _refusal(_OVERFLOW)
        if number.adjusted() < -130:
            raise _refusal(_UNDERFLOW)
        if len("".join(map(str, number.as_tuple().digits)).rstrip("0")) > 38:
            raise _refusal(_TOO_PRECISE)
    return f"{total}"


def _check_numbers(value: Any) -> None:
    """Range-check the numbers of a wire-form value sent in a request (as moto does for items)."""
    ((kind, inner),) = value.items()
    if kind in ("N", "NS"):
        for number in [inner] if kind == "N" else inner:
            try:
                parsed = Decimal(number)
            except (InvalidOperation, TypeError):
                continue  # not a number at all: moto's own validation says so
            if parsed.is_finite():
                _checked_number(parsed)
    elif kind == "L":
        for element in inner:
            _check_numbers(element)
    elif kind == "M":
        for element in inner.values():
            _check_numbers(element)


def _attrs_size(attrs: Mapping[str, Any]) -> int:
    return sum(utf8_size(name) + value_size(value) for name, value in attrs.items())


def _exact(left: str, right: str, subtract: bool) -> str:
    """`left + right` (or `-`) on DynamoDB numbers, exactly, refused if DynamoDB can't store it."""
    try:
        total = (_EXACT.subtract if subtract else _EXACT.add)(Decimal(left), Decimal(right))
    except Inexact:
        raise _refusal(_TOO_PRECISE) from None
    return _checked_number(total)


def _restore(table: Any, key: tuple[Any, Any], before: Any, stream_mark: int) -> None:
    """Put an item back as it was (`before`; None: absent) and drop the stream records since."""
    hash_value, range_value = key
    if table.range_key_attr:
        partition = table.items[hash_value]
        if before is None:
            partition.pop(range_value, None)
            if not partition:
                del table.items[hash_value]
        else:
            partition[range_value] = before
    elif before is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = before
    if table.stream_shard is not None:
        del table.stream_shard.items[stream_mark:]


class _NoTableCopies:
    """Stands in for the `copy` module in moto's DynamoDB backend: a whole table is not copied."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _item_snapshot(backend: Any, entry: Mapping[str, Any]) -> tuple[Any, tuple[Any, Any], Any, int] | None:
    """(table, key, a copy of the item or None, stream length) for one transaction item."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    _, operation = next(iter(entry.items()))
    table = backend.tables.get(operation.get("TableName"))
    keys = operation.get("Key") or operation.get("Item") or {}
    if table is None or table.hash_key_attr not in keys:
        return None  # moto refuses it before writing anything
    hash_value = DynamoType(keys[table.hash_key_attr])
    range_value = DynamoType(keys[table.range_key_attr]) if table.range_key_attr in keys else None
    if table.range_key_attr and range_value is None:
        return None
    before = copy.deepcopy(table.get_item(hash_value, range_value))
    stream_mark = len(table.stream_shard.items) if table.stream_shard is not None else 0
    return table, (hash_value, range_value), before, stream_mark


def _one_insert(table: Any, item: Any, stream_mark: int) -> None:
    """An UpdateItem that created `item` streams one INSERT of it, as DynamoDB does. (moto first
    stores a key-only item, and streams that too.)"""
    shard = table.stream_shard
    if shard is not None and len(shard.items) > stream_mark + 1:
        del shard.items[stream_mark:]
        shard.add(None, item)


def _item_backed(transact_write_items: Any, backend_module: Any) -> Any:
    """moto's TransactWriteItems, backing up the transaction's own items rather than its tables.

    moto backs up every table a transaction touches with a deep copy (items, indexes and the
    stream shard) and swaps the copies in on failure: quadratic in the table size, and fatal for
    a test that applies thousands of events one transaction each. This puts back the items (and
    stream records) of a cancelled transaction instead."""

    def transact(self: Any, transact_items: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        snapshots = [_item_snapshot(self, entry) for entry in transact_items]
        outer = getattr(_state, "transaction", False)
        _state.transaction = True
        try:
            with patch.object(backend_module, "copy", _NoTableCopies):
                return transact_write_items(self, transact_items, *args, **kwargs)
        except BaseException:
            for snapshot in reversed([s for s in snapshots if s is not None]):
                _restore(*snapshot)
            raise
        finally:
            _state.transaction = outer

    return transact


@contextmanager
def dynamodb_limits() -> Iterator[None]:
    """Hold DynamoDB's item size and number limits in moto, and make a failed write change nothing
    (see the module docstring). Patches moto internals, the only way to reach them."""
    from moto.dynamodb import models as backend_module
    from moto.dynamodb.exceptions import ItemSizeTooLarge, ItemSizeToUpdateTooLarge
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    table_put_item = Table.put_item
    update_item = DynamoDBBackend.update_item
    update_signature = inspect.signature(update_item)
    transact_write_items = DynamoDBBackend.transact_write_items
    batch_write_item = DynamoHandler.batch_write_item

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Every write of a whole item (PutItem, BatchWriteItem, TransactWriteItems Put) comes here.
        item = args[0] if args else kwargs.get("item_attrs")
        if (_wire_size_or_none(item) or 0) > MAX_ITEM_BYTES:
            raise _refusal(_TOO_LARGE, ItemSizeTooLarge)
        return table_put_item(self, *args, **kwargs)

    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = update_signature.bind(self, *args, **kwargs).arguments
        for part in ("update_expression", "condition_expression"):
            if len(arguments.get(part) or "") > MAX_EXPRESSION_CHARS:
                raise _refusal(_TOO_LONG.format(part=part, size=len(arguments[part])))
        for value in (arguments.get("expression_attribute_values") or {}).values():
            _check_numbers(value)
        try:
            table = self.get_table(arguments["table_name"])
            key = arguments["key"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            before = table.get_item(hash_value, range_value)
        except Exception:  # a bad table or key: moto refuses it before changing anything
            return update_item(self, *args, **kwargs)
        snapshot = copy.deepcopy(before)
        stream_mark = len(table.stream_shard.items) if table.stream_shard is not None else 0
        try:
            item = update_item(self, *args, **kwargs)
            if _attrs_size(item.attrs) > MAX_ITEM_BYTES:
                raise _refusal(
                    ItemSizeToUpdateTooLarge.item_size_to_update_too_large_msg, ItemSizeToUpdateTooLarge
                )
        except BaseException:
            _restore(table, (hash_value, range_value), snapshot, stream_mark)
            raise
        if before is None:
            _one_insert(table, item, stream_mark)
        return item

    def batch(self: Any) -> Any:
        # DynamoDB validates the whole batch before writing any of it; moto writes as it goes.
        if any(size > MAX_ITEM_BYTES for size in _batch_put_sizes(self.body)):
            raise ItemSizeTooLarge()
        return batch_write_item(self)

    with ExitStack() as patches:
        for owner, name, replacement in (
            (Table, "put_item", put),
            (LimitedSizeDict, "__setitem__", dict.__setitem__),  # moto's own O(n) check per attribute
            (DynamoDBBackend, "update_item", update),
            (DynamoDBBackend, "transact_write_items", _item_backed(transact_write_items, backend_module)),
            (DynamoHandler, "batch_write_item", batch),
        ):
            patches.enter_context(patch.object(owner, name, replacement))
        patches.enter_context(_exact_arithmetic())
        yield


SNS_MAX_MESSAGE_BYTES = 262_144  # 256 KB: body and message attributes together
SNS_MAX_SUBJECT_CHARS = 99  # "less than 100 characters", as Java counts them (UTF-16 code units)
_SUBJECT_FORBIDDEN = frozenset(chr(c) for c in (*range(32), *range(127, 160)))


def sns_publish_refusal(
    message: str, subject: str | None, attributes: Mapping[str, Any] | None, structure: str | None
) -> str | None:
    """Why SNS would refuse this publish (its error message), or None when it would take it.
    `attributes` as moto's backend holds them: name -> {"Type", "Value"}."""
    size = utf8_size(message or "")
    for name, attribute in (attributes or {}).items():
        value = attribute.get("Value")
        size += utf8_size(name) + utf8_size(str(attribute.get("Type", "")))
        size += len(value) if isinstance(value, bytes) else utf8_size(str(value))
    if size > SNS_MAX_MESSAGE_BYTES:
        return "Invalid parameter: Message too long"
    if subject is not None and (
        not subject.strip()
        or len(subject.encode("utf-16-le")) // 2 > SNS_MAX_SUBJECT_CHARS
        or any(c in _SUBJECT_FORBIDDEN for c in subject)
    ):
        return "Invalid parameter: Subject"
    if structure == "json":
        try:
            entries = json.loads(message)
        except ValueError:
            return "Invalid parameter: Message Structure - JSON message body failed to parse"
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            return "Invalid parameter: Message Structure - JSON message body failed to parse"
        if "default" not in entries:
            return "Invalid parameter: Message Structure - No default entry in JSON message body"
    return None


@contextmanager
def sns_limits() -> Iterator[None]:
    """Refuse in moto what SNS refuses at publish (see the module docstring)."""
    from moto.sns.exceptions import InvalidParameterValue
    from moto.sns.models import SNSBackend

    publish = SNSBackend.publish
    signature = inspect.signature(publish)

    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("phone_number") is None:  # a topic or endpoint publish
            refusal = sns_publish_refusal(
                arguments.get("message") or "",
                arguments.get("subject"),
                arguments.get("message_attributes"),
                arguments.get("message_structure"),
            )
            if refusal is not None:
                raise InvalidParameterValue(refusal)
        return publish(self, *args, **kwargs)

    with patch.object(SNSBackend, "publish", checked):
        yield


@contextmanager
def _exact_arithmetic() -> Iterator[None]:
    """`+` and `-` on moto's numbers (ADD, SET a = a + :x) exact and within DynamoDB's range."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    dynamo_add, dynamo_sub = DynamoType.__add__, DynamoType.__sub__

    def add(self: Any, other: Any) -> Any:
        if self.type == other.type == "N":
            return DynamoType({"N": _exact(self.value, other.value, subtract=False)})
        return dynamo_add(self, other)

    def sub(self: Any, other: Any) -> Any:
        if self.type == other.type == "N":
            return DynamoType({"N": _exact(self.value, other.value, subtract=True)})
        return dynamo_sub(self, other)

    with patch.object(DynamoType, "__add__", add), patch.object(DynamoType, "__sub__", sub):
        yield


def _batch_put_sizes(body: Mapping[str, Any]) -> Iterator[int]:
    """The size of each item a BatchWriteItem request puts."""
    for requests in (body.get("RequestItems") or {}).values():
        for request in requests:
            put = request.get("PutRequest") if isinstance(request, dict) else None
            if put:
                yield _wire_size_or_none(put.get("Item")) or 0


def _wire_size_or_none(item: Any) -> int | None:
    """`wire_item_size`, or None for something that is not an item (moto's validation says what)."""
    try:
        return wire_item_size(item)
    except (AttributeError, TypeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> None:
    """moto's server (same arguments) with every workaround of this module on."""
    from moto.server import main as moto_main

    with atomic_requests(), partition_queries(), fast_stream_reads(), parsed_once():
        moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
