"""A rescore page's reads, batched: one GetItem of the segment's progress, one BatchGetItem for the
page's profiles (keys DynamoDB leaves unprocessed asked again), the ledgers queried concurrently,
segments sized to the table; and a page stays exact and counted once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from leadscore import pipeline, rescore
from leadscore.bench.pipeline import RequestCounter
from leadscore.config import Settings
from leadscore.errors import StorageUnavailable
from leadscore.repository import EventLedger, codec
from leadscore.rescore import JobCommand, StartRescore, WorkItem, run_command

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration


def _settings(stack: Stack, **environment: str) -> Settings:
    return Settings.from_env({**stack.runner.environments["RescoreFunction"], **environment})


def _seed(stack: Stack, leads: int, prefix: str) -> list[str]:
    """Leads with two or three applied events each (ingested and scored as in production)."""
    emails = [f"{prefix}{i}@globex{i}.com" for i in range(leads)]
    for i, email in enumerate(emails):
        stack.post_generic(
            {"email": email, "event": "form_submitted", "attributes": {"job_title": "Analyst"}}
        )
        stack.post_generic({"email": email, "event": "email_opened"})
        if i % 2:
            stack.post_generic({"email": email, "event": "demo_requested"})
    stack.settle()
    return [lead_id_for(email) for email in emails]


def _work_item(stack: Stack) -> WorkItem:
    """The one work item a one-segment job put on the rescore queue."""
    sqs = stack.session.client("sqs")
    url = stack.physical.queues["RescoreQueue"][0]
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return WorkItem.model_validate_json(message["Body"])


@contextmanager
def _unprocessed(client: Any, table: str, rounds: int) -> Iterator[list[dict[str, Any]]]:
    """Make DynamoDB's partial answers happen (moto answers every key): for the first `rounds`
    BatchGetItem responses, the second half of the items found is handed back as UnprocessedKeys
    instead, in the wire format DynamoDB uses. Yields the requests sent, as sent."""
    sent: list[dict[str, Any]] = []
    left = [rounds]

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["RequestItems"][table])

    def drop(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] <= 0:
            return
        left[0] -= 1
        items = parsed["Responses"][table]
        kept, dropped = items[: len(items) // 2], items[len(items) // 2 :]
        parsed["Responses"][table] = kept
        keys = [{"lead_id": item["lead_id"]} for item in dropped]
        parsed["UnprocessedKeys"] = {table: {"Keys": keys, "ConsistentRead": True}}

    events = client.meta.events
    events.register_first("before-parameter-build.dynamodb.BatchGetItem", record)
    events.register_first("after-call.dynamodb.BatchGetItem", drop)
    try:
        yield sent
    finally:
        events.unregister("before-parameter-build.dynamodb.BatchGetItem", record)
        events.unregister("after-call.dynamodb.BatchGetItem", drop)


def test_unprocessed_keys_are_asked_again_after_a_backoff(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_ids = _seed(stack, 6, "batch")
    profiles = pipeline.services(_settings(stack)).profiles
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)

    with _unprocessed(profiles.table.meta.client, profiles.table.name, rounds=2) as sent:
        found = profiles.get_page([*lead_ids, "no-such-lead"])

    assert set(found) == set(lead_ids)
    assert all(found[i] == profiles.get(i) for i in lead_ids)  # as consistent reads one by one give
    assert [len(request["Keys"]) for request in sent] == [7, 3, 2]  # 6 found: 3 back, then 1 of 3
    assert all(request["ConsistentRead"] for request in sent)
    assert len(waits) == 2 and all(0 <= wait <= 0.025 * 2**2 for wait in waits)


def test_keys_left_unprocessed_round_after_round_are_a_retryable_storage_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_ids = _seed(stack, 2, "stuck")
    profiles = pipeline.services(_settings(stack)).profiles
    monkeypatch.setattr(time, "sleep", lambda _: None)

    with (
        _unprocessed(profiles.table.meta.client, profiles.table.name, rounds=1000) as sent,
        pytest.raises(StorageUnavailable, match="unprocessed"),
    ):
        profiles.get_page(lead_ids)

    assert len(sent) == codec.BATCH_GET_ROUNDS


def test_a_pages_ledgers_are_queried_concurrently_and_read_as_one_by_one(stack: Stack) -> None:
    lead_ids = _seed(stack, 12, "ledger")
    resource = stack.session.resource("dynamodb")
    ledger = EventLedger(stack.physical.tables["EventLedgerTable"], 400, resource)
    # Given a Query that cannot return before a second one is in flight (fails after 10 s if the
    # queries run one after another)
    both_in_flight = threading.Barrier(2, timeout=10)
    threads: set[int] = set()
    first = [0]
    guard = threading.Lock()

    def hold(**_: Any) -> None:
        threads.add(threading.get_ident())
        with guard:
            first[0] += 1
            waiting = first[0] <= 2
        if waiting:
            both_in_flight.wait()

    events = resource.meta.client.meta.events
    events.register_first("before-call.dynamodb.Query", hold)
    try:
        together = ledger.events_of_many(lead_ids, applied_only=True)
    finally:
        events.unregister("before-call.dynamodb.Query", hold)

    assert len(threads) > 1
    one_by_one = {lead_id: list(ledger.events_of(lead_id, applied_only=True)) for lead_id in lead_ids}
    assert together == one_by_one
    assert sorted(len(found) for found in together.values()) == [2] * 6 + [3] * 6


def test_a_page_reads_its_progress_with_one_get_item_and_its_profiles_in_one_batch(stack: Stack) -> None:
    lead_ids = _seed(stack, 7, "page")
    settings = _settings(stack)
    job = run_command(StartRescore(model="bundled:default", dry_run=True, segments=1), settings)["job_id"]
    item = _work_item(stack)
    counter = RequestCounter()

    with counter.installed():
        counted = rescore.process_page(item, settings)

    assert counted
    logical = {physical: name for name, physical in stack.physical.tables.items()}
    on: dict[str, Counter[str]] = {}
    for (_, operation, table), n in counter.tables.items():
        on.setdefault(logical[table], Counter())[operation] += n
    assert on["RescoreJobsTable"] == Counter({"GetItem": 1, "UpdateItem": 1})  # read and count the page
    assert on["LeadProfilesTable"] == Counter({"Scan": 1})  # no GetItem per lead, but
    assert counter.counts[("outside", "BatchGetItem")] == 1  # one batch (it names no TableName)
    assert on["EventLedgerTable"] == Counter({"Query": len(lead_ids)})
    # A redelivered copy of the work item is not counted again.
    assert rescore.process_page(item, settings) is False
    report = run_command(JobCommand(action="status", job_id=job), settings)
    assert report["finished"] and report["scanned"] == len(lead_ids)


def test_a_lead_whose_ledger_moves_after_its_profile_was_read_is_rescored_from_a_fresh_read(
    stack: Stack,
) -> None:
    (lead_id,) = _seed(stack, 1, "moving")
    settings = _settings(stack)
    profiles = pipeline.services(settings).profiles
    stack.post_generic(
        {"email": "moving0@globex0.com", "event": "page_viewed", "url": "https://x.io/pricing"}
    )
    # Given the stream applies the new event right after the page's profiles were read
    applied = []

    def stream_runs(**_: Any) -> None:
        if not applied:
            applied.append(stack.settle())

    client = profiles.table.meta.client
    client.meta.events.register("after-call.dynamodb.BatchGetItem", stream_runs)
    try:
        (outcome,) = rescore.rescore_page(
            pipeline.services(settings).catalog,
            [lead_id],
            profiles,
            pipeline.services(settings).ledger,
            stack.clock.now(),
            rescore.timedelta(hours=24),
            "job-moving",
            dry_run=False,
        )
    finally:
        client.meta.events.unregister("after-call.dynamodb.BatchGetItem", stream_runs)

    assert applied and applied[0] > 0
    assert not outcome.skipped  # replayed from a fresh read of all three events, not given up on
    profile = profiles.get(lead_id)
    assert profile is not None and profile.version == 3 and profile.rescored_by == "job-moving"
    assert profile.state.counts.get("type:page_viewed") == 1


@pytest.mark.parametrize(
    ("leads", "concurrency", "expected"),
    [
        (0, 50, 8),  # a table DescribeTable has not counted yet still gets some parallelism
        (150_000, 50, 8),
        (160_001, 50, 9),
        (1_000_000, 50, 50),
        (1_000_000, 20, 20),  # never more segments than workers
        (5, 4, 4),
        (50_000_000, 1000, 1000),
    ],
)
def test_segments_are_sized_to_the_table_and_capped_by_the_workers(
    leads: int, concurrency: int, expected: int
) -> None:
    assert rescore.segments_for(leads, concurrency) == expected


def test_a_job_without_segments_sizes_them_from_describe_table(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(stack, 9, "sized")
    monkeypatch.setattr(rescore, "LEADS_PER_SEGMENT", 1)  # one segment per lead, for a small table
    start = StartRescore(model="bundled:default", dry_run=True)

    wide = run_command(start, _settings(stack))["job_id"]
    narrow = run_command(start, _settings(stack, RESCORE_MAX_CONCURRENCY="5"))["job_id"]

    assert run_command(JobCommand(action="status", job_id=wide), _settings(stack))["segments"] == 9
    assert run_command(JobCommand(action="status", job_id=narrow), _settings(stack))["segments"] == 5


def test_the_lead_apis_batch_reads_back_off_too_and_never_spin(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranked lists read their page's leads with the same batch reader: unprocessed keys are asked
    again after a backoff, and keys DynamoDB keeps handing back end in a retryable error instead of
    an endless loop of immediate retries."""
    lead_ids = _seed(stack, 4, "api")
    profiles = pipeline.services(_settings(stack)).profiles
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)

    with _unprocessed(profiles.table.meta.client, profiles.table.name, rounds=1) as sent:
        found = profiles.get_many_items([*lead_ids, lead_ids[0]])  # a repeated id is read once

    assert sorted(lead_id for lead_id, _ in found) == sorted(lead_ids)
    assert [len(request["Keys"]) for request in sent] == [4, 2] and len(waits) == 1
    with (
        _unprocessed(profiles.table.meta.client, profiles.table.name, rounds=1000),
        pytest.raises(StorageUnavailable, match="unprocessed"),
    ):
        profiles.get_many_items(lead_ids)
