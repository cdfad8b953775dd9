"""Wake the local stack's poller when something writes, instead of polling on a fixed interval.

Lambda's event source mappings react to new stream records and queue messages within milliseconds.
The local runner plays them with one poller thread that sleeps on a `Wakeup` between rounds and is
woken by every request that can give it work: a DynamoDB write (a stream record), an SQS send or a
message made visible again, an SNS publish (fanned out to subscribed queues). Three sources see
those writes:
- `emulator_writes`: the in-process emulator itself (moto's request dispatch), so any client of a
  `make local` stack wakes it, the AWS CLI included;
- `session_writes`: the writes made through a boto3 session, for a stack whose emulator runs in
  another process (the tests' `emulator="process"`);
- the runner, after each invocation of a function (whatever the handler wrote).
What none of them can see (another process writing to an out-of-process emulator, a message whose
delay or visibility timeout runs out) is picked up by the poller's slow fallback tick.

Reads never wake anyone, so the poller's own GetRecords and ReceiveMessage cannot keep it busy:
an idle stack costs one round per fallback tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

# Requests that can give an event source mapping work, by the service's endpoint prefix.
WRITE_ACTIONS: dict[str, frozenset[str]] = {
    "dynamodb": frozenset(
        {
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchWriteItem",
            "TransactWriteItems",
            "ExecuteStatement",
            "BatchExecuteStatement",
            "ExecuteTransaction",
        }
    ),
    "sqs": frozenset(
        {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
    ),
    "sns": frozenset({"Publish", "PublishBatch"}),
}


def is_write(service: str, action: str) -> bool:
    return action in WRITE_ACTIONS.get(service, ())


class Wakeup:
    """A counter of writes that a poller sleeps on.

    A poller reads `generation` before a round and, if the round found nothing, waits for the
    counter to move past that value: a write that lands during the round is never missed, and a
    round that found nothing is not repeated until something (or the timeout) says to.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._changed:
            return self._generation

    def notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> bool:
        """Block until the generation differs from `seen` (True) or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._generation != seen, timeout)


# -- the in-process emulator ----------------------------------------------------------------------

_listeners: list[Callable[[], None]] = []
_registry = threading.Lock()
_patches: list[Any] = []  # the one patch of moto's dispatch, while anyone listens


def _dispatch_patch() -> Any:
    """A patch of moto's request dispatch (`BaseResponse.call_action`, which every service's request
    goes through, in `mock_aws` and in moto's server alike): moto has no hook of its own for this."""
    from moto.core.responses import BaseResponse

    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        response = original(self)
        if is_write(str(getattr(self, "service_name", "")), self._get_action()):
            for listener in list(_listeners):
                listener()
        return response

    return patch.object(BaseResponse, "call_action", call_action)


@contextmanager
def emulator_writes(listener: Callable[[], None]) -> Iterator[None]:
    """Call `listener` after each write any in-process moto handles (server thread or `mock_aws`).

    The wrapper is installed once for all listeners and removed with the last one, so stacks that
    start and stop in any order never restore each other's patch."""
    with _registry:
        if not _listeners:
            _patches.append(_dispatch_patch())
            _patches[0].start()
        _listeners.append(listener)
    try:
        yield
    finally:
        with _registry:
            _listeners.remove(listener)
            if not _listeners:
                _patches.pop().stop()


# -- a boto3 session --------------------------------------------------------------------------------


def session_writes(session: Any, listener: Callable[[], None]) -> None:
    """Call `listener` after each write a client of the boto3 `session` makes (clients created
    after this call). For an emulator this process does not run, whose requests it cannot see."""

    def after_call(model: Any, event_name: str = "", **_: Any) -> None:
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        if is_write(service, model.name):
            listener()

    session.events.register("after-call", after_call)
