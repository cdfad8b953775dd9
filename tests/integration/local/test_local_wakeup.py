"""The local stack's poller reacts to writes instead of waiting for a tick: with the fallback tick
set far beyond the test's deadline, a webhook (or an SES event published by another client) still
reaches its SQL notification (or its lead); and an idle stack does not spin.
Both emulators: in this process (`make local`) and in a subprocess (the other loopback tests)."""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
FALLBACK_TICK = 600.0  # far beyond WAIT: anything delivered within WAIT was woken by a write
WAIT = 30.0
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))


@pytest.fixture(params=["thread", "process"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    emulator: Literal["thread", "process"] = request.param
    options = LocalOptions(
        port=0,
        log=None,
        say=lambda line: None,
        emulator=emulator,
        pump_interval=FALLBACK_TICK,
        prefix=f"w{uuid.uuid4().hex[:6]}-",  # an in-process emulator's state outlives its stack
    )
    with LocalStack(options) as running:
        assert wait_until(lambda: running.polls >= 1, WAIT), "the poller never made its first round"
        yield running


def _received(stack: LocalStack, queue_url: str, email: str) -> list[dict[str, Any]]:
    return [
        body
        for body in (json.loads(message["Body"]) for message in stack.drain(queue_url))
        if body.get("email") == email
    ]


def test_a_webhook_wakes_the_poller_and_its_sql_notification_needs_no_tick(stack: LocalStack) -> None:
    sales, _ = stack.subscribe_queue("SalesTopic", f"local-test-sales-{uuid.uuid4().hex[:8]}")
    email = f"t{uuid.uuid4().hex[:10]}@globex.example"
    payload = {
        "events": [
            {
                "email": email,
                "event": "demo_requested",
                "attributes": {"job_title": "VP Sales", "company_size": 800, "industry": "Software"},
            },
            {"email": email, "event": "page_viewed", "url": "https://www.leadscore.example/pricing"},
        ]
    }
    body = json.dumps(payload).encode()
    headers = signing.standard_webhook_headers(body, SECRETS["generic"]["secret"], f"msg_{uuid.uuid4().hex}")
    client = Client(stack.url)

    status, _ = client.request("POST", "/v1/forms/generic", body, headers)
    found: list[dict[str, Any]] = []
    arrived = wait_until(lambda: found.extend(_received(stack, sales, email)) or found, WAIT)
    client.close()

    assert status == 202
    assert arrived, f"no SQL notification within {WAIT:.0f} s: the poller was not woken"
    assert [message["to_stage"] for message in found] == ["SQL"]


def test_an_event_published_by_another_client_wakes_the_poller(stack: LocalStack) -> None:
    assert stack.session is not None
    email = f"t{uuid.uuid4().hex[:10]}@umbrella.example"
    envelope = json.loads(
        (repo_root() / "events/providers/ses/click_sns_envelope.json").read_text(encoding="utf-8")
    )
    record = json.loads(envelope["Message"])
    record["mail"]["destination"] = [email]
    record["mail"]["messageId"] = f"0100018e{uuid.uuid4().hex}-000000"
    client = Client(stack.url)

    stack.session.client("sns").publish(
        TopicArn=stack.physical.topics["SesEventsTopic"], Message=json.dumps(record)
    )
    status = wait_until(
        lambda: client.signed_get(f"/v1/leads?email={email.replace('@', '%40')}")[0] == 200, WAIT
    )
    client.close()

    assert status, f"the SES event did not reach its lead within {WAIT:.0f} s: the poller was not woken"


def test_an_idle_stack_does_not_poll(stack: LocalStack) -> None:
    assert stack.session is not None
    sqs = stack.session.client("sqs")
    polls, generation = stack.polls, stack.wakeup.generation

    # Reads by anyone (here: this test; in every round: the poller's own) are not writes.
    sqs.receive_message(QueueUrl=stack.physical.queues["SesEventsQueue"][0], WaitTimeSeconds=0)
    stack.session.client("dynamodb").list_tables()
    woken = stack.wakeup.wait_past(generation, timeout=1.0)

    assert not woken
    assert stack.polls == polls


def test_a_stack_that_freezes_gc_survivors_freezes_after_each_full_collection() -> None:
    options = LocalOptions(
        port=0,
        log=None,
        say=lambda line: None,
        emulator="process",
        background=False,
        prefix=f"g{uuid.uuid4().hex[:6]}-",
        freeze_gc_survivors=True,
    )
    with LocalStack(options):
        frozen_at_start = gc.get_freeze_count()
        gc.unfreeze()  # as if the frozen heap had grown since
        gc.collect()
        refrozen = gc.get_freeze_count()
        hooked = sum(callback.__name__ == "_freeze_survivors" for callback in gc.callbacks)

    assert frozen_at_start > 0 and refrozen > 0  # started frozen, and a full collection froze again
    assert hooked == 1
    assert gc.get_freeze_count() == 0  # stopping gives the process its one collectable heap back
    assert not any(callback.__name__ == "_freeze_survivors" for callback in gc.callbacks)
