"""The poller's wake-up: a write between reading the generation and waiting is never lost, and only
requests that can give an event source mapping work count as writes."""

from __future__ import annotations

import threading

import pytest

from leadscore.local.wakeup import Wakeup, is_write

pytestmark = pytest.mark.unit


def test_a_write_during_the_round_ends_the_wait_at_once() -> None:
    wakeup = Wakeup()
    seen = wakeup.generation

    wakeup.notify()  # lands while the poller is still busy with its round

    assert wakeup.wait_past(seen, timeout=600) is True  # a lost wake-up would block for 10 minutes


def test_a_wait_with_no_write_times_out() -> None:
    wakeup = Wakeup()

    assert wakeup.wait_past(wakeup.generation, timeout=0) is False


def test_a_write_from_another_thread_wakes_the_waiter() -> None:
    wakeup = Wakeup()
    seen = wakeup.generation
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(wakeup.wait_past(seen, timeout=600)))
    waiter.start()

    wakeup.notify()
    waiter.join(timeout=600)

    assert woken == [True]


@pytest.mark.parametrize(
    ("service", "action"),
    [
        ("dynamodb", "PutItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "DeleteItem"),
        ("dynamodb", "BatchWriteItem"),
        ("dynamodb", "TransactWriteItems"),
        ("sqs", "SendMessage"),
        ("sqs", "SendMessageBatch"),
        ("sqs", "ChangeMessageVisibility"),
        ("sns", "Publish"),
        ("sns", "PublishBatch"),
    ],
)
def test_writes_that_give_a_mapping_work_wake_it(service: str, action: str) -> None:
    assert is_write(service, action)


@pytest.mark.parametrize(
    ("service", "action"),
    [
        ("dynamodbstreams", "GetRecords"),
        ("dynamodbstreams", "DescribeStream"),
        ("dynamodb", "GetItem"),
        ("dynamodb", "Query"),
        ("sqs", "ReceiveMessage"),
        ("sqs", "DeleteMessage"),
        ("sns", "Subscribe"),
        ("s3", "PutObject"),
    ],
)
def test_reads_never_wake_it(service: str, action: str) -> None:
    assert not is_write(service, action)
