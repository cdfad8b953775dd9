"""Make moto as atomic as the services it emulates.

DynamoDB applies each request atomically (a conditional write either wins or fails), but moto
handles concurrent requests in Python without a lock, so two threads can both pass the same
condition. The local stack and the tests serialize requests to the emulator, one request at a
time: code under test still interleaves *between* its requests exactly as it would on AWS, so a
read-modify-write bug still loses updates, while the emulator stops inventing races AWS can't have.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.RLock()


@contextmanager
def atomic_requests() -> Iterator[None]:
    """Serialize requests handled by in-process moto (`mock_aws`) and by moto's server."""
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    stub_call = BotocoreStubber.process_request
    app_call = DomainDispatcherApplication.__call__

    def process_request(self: Any, request: Any) -> Any:
        with _lock:
            return stub_call(self, request)

    def app(self: Any, environ: Any, start_response: Any) -> Any:
        with _lock:
            return list(app_call(self, environ, start_response))

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    DomainDispatcherApplication.__call__ = app  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = stub_call  # type: ignore[method-assign]
        DomainDispatcherApplication.__call__ = app_call  # type: ignore[method-assign]
