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
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

_lock = threading.RLock()


@contextmanager
def atomic_requests() -> Iterator[None]:
    """Serialize requests handled by in-process moto (`mock_aws`), run on the emulator's own
    thread, and by moto's server."""
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
