"""`leadscore replay`: every dead-letter queue has a way back, against moto (tables from the
template, real SQS queues, the ledger's and profiles' real DynamoDB streams)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from leadscore import cli, pipeline
from leadscore.config import Settings
from leadscore.domain import LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.replay import DeadLetterQueue, Replayer
from leadscore.repository import iso

from ..conftest import lead_id_for

pytestmark = pytest.mark.integration

REGION = "us-east-1"
_ids = itertools.count()


@pytest.fixture
def env(
    tables: dict[str, str], topics: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The template's tables and topics in moto, a queue per env var the replay reads, and those
    variables set as a deployed stack's operator would set them."""
    sqs = boto3.client("sqs", region_name=REGION)
    variables = {
        "LEDGER_TABLE": tables["EventLedgerTable"],
        "PROFILES_TABLE": tables["LeadProfilesTable"],
        "RANKS_TABLE": tables["LeadRanksTable"],
        "ACCOUNTS_TABLE": tables["AccountsTable"],
        "IDEMPOTENCY_TABLE": tables["IdempotencyTable"],
        "NURTURE_TOPIC_ARN": topics["NurtureTopic"],
        "SALES_TOPIC_ARN": topics["SalesTopic"],
    }
    for name in (
        "SCORE_EVENTS_DLQ_URL",
        "EVALUATE_THRESHOLDS_DLQ_URL",
        "DECAY_SCORES_DLQ_URL",
        "SES_EVENTS_DLQ_URL",
        "SES_EVENTS_QUEUE_URL",
        "RESCORE_DLQ_URL",
        "RESCORE_QUEUE_URL",
    ):
        variables[name] = sqs.create_queue(QueueName=f"test-{name.lower().replace('_', '-')}")["QueueUrl"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    pipeline.reset()
    yield variables
    pipeline.reset()


def _settings() -> Settings:
    return Settings.from_env()


def _bodies(queue_url: str) -> list[str]:
    sqs = boto3.client("sqs", region_name=REGION)
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _send(queue_url: str, body: str | dict[str, Any]) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=queue_url, MessageBody=text)


def _event(email: str, event_type: str = "demo_requested", **attributes: Any) -> LeadEvent:
    return LeadEvent(
        lead_id=lead_id_for(email),
        event_id=event_id_for("test", f"replay-{next(_ids)}"),
        email=email,
        event_type=event_type,
        occurred_at=datetime.now(UTC) - timedelta(minutes=5),
        provider=Provider.GENERIC,
        attributes=LeadAttributes(**attributes),
    )


def _on_failure_record(table_name: str, first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """What Lambda sends to a stream's on-failure destination (the AWS Lambda developer guide's
    "invocation record" for a DynamoDB stream): the batch's coordinates, no keys, no images."""
    client = boto3.client("dynamodb", region_name=REGION)
    stream_arn = client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    shard = boto3.client("dynamodbstreams", region_name=REGION).describe_stream(StreamArn=stream_arn)[
        "StreamDescription"
    ]["Shards"][0]["ShardId"]
    arrival = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "requestContext": {
            "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:leadscore-ScoreEvents",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 6,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": arrival,
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival,
            "approximateArrivalOfLastRecord": arrival,
            "batchSize": 2,
            "streamArn": stream_arn,
        },
    }


def _expired_record(arrival: datetime) -> dict[str, Any]:
    at = arrival.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "1.0",
        "timestamp": at,
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001573689847184-864758bb",
            "startSequenceNumber": "800000000003126276362",
            "endSequenceNumber": "800000000003126276363",
            "approximateArrivalOfFirstRecord": at,
            "approximateArrivalOfLastRecord": at,
            "batchSize": 2,
            "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000",
        },
    }


def _stream_records(table_name: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=REGION)
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return list(streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"])


def _profile(lead_id: str) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(_settings().profiles_table)
    return table.get_item(Key={"lead_id": lead_id}).get("Item")


# -- SQS dead-letter queues with a source queue ---------------------------------------------


def test_ses_dead_letters_go_back_to_their_queue_and_a_dry_run_moves_nothing(env: dict[str, str]) -> None:
    bodies = [json.dumps({"eventType": "Open", "n": n}) for n in range(12)]
    for body in bodies:
        _send(env["SES_EVENTS_DLQ_URL"], body)

    counted = Replayer(_settings(), dry_run=True).replay(DeadLetterQueue.SES_EVENTS)
    real = Replayer(_settings()).replay(DeadLetterQueue.SES_EVENTS)

    assert counted.messages == 12 and counted.moved == 0
    assert real.messages == 12 and real.moved == 12 and real.deleted == 12 and real.complete
    assert sorted(_bodies(env["SES_EVENTS_QUEUE_URL"])) == sorted(bodies)
    assert _bodies(env["SES_EVENTS_DLQ_URL"]) == []


def test_rescore_dead_letters_go_back_to_the_rescore_queue(env: dict[str, str]) -> None:
    _send(env["RESCORE_DLQ_URL"], {"job_id": "j1", "segment": 3})

    summary = Replayer(_settings()).replay(DeadLetterQueue.RESCORE)

    assert summary.moved == 1 and summary.complete
    assert [json.loads(b) for b in _bodies(env["RESCORE_QUEUE_URL"])] == [{"job_id": "j1", "segment": 3}]


# -- the ledger stream's on-failure destination (score_events) ------------------------------


def test_a_failed_ledger_batch_still_in_the_stream_is_read_back_and_applied(env: dict[str, str]) -> None:
    settings = _settings()
    ledger = pipeline.services(settings).ledger
    first = _event("ops@replay-one.example", job_title="VP Sales", company_size=800)
    second = _event("ops@replay-two.example", event_type="form_submitted")
    ledger.record(first, datetime.now(UTC))
    ledger.record(second, datetime.now(UTC))
    records = _stream_records(settings.ledger_table)
    _send(env["SCORE_EVENTS_DLQ_URL"], _on_failure_record(settings.ledger_table, records[0], records[-1]))

    summary = Replayer(settings).replay(DeadLetterQueue.SCORE_EVENTS)

    assert summary.batches_from_stream == 1 and summary.records_replayed == 2 and summary.complete
    one, two = _profile(lead_id_for(first.email)), _profile(lead_id_for(second.email))
    assert one is not None and int(one["n:type:demo_requested"]) == 1
    assert two is not None and int(two["n:type:form_submitted"]) == 1
    assert _bodies(env["SCORE_EVENTS_DLQ_URL"]) == []


def test_replaying_a_ledger_batch_twice_applies_each_event_once(env: dict[str, str]) -> None:
    settings = _settings()
    event = _event("twice@replay.example")
    pipeline.services(settings).ledger.record(event, datetime.now(UTC))
    records = _stream_records(settings.ledger_table)
    message = _on_failure_record(settings.ledger_table, records[0], records[-1])
    _send(env["SCORE_EVENTS_DLQ_URL"], message)
    _send(env["SCORE_EVENTS_DLQ_URL"], message)

    summary = Replayer(settings).replay(DeadLetterQueue.SCORE_EVENTS)

    assert summary.records_replayed == 1 and summary.records_already_applied == 1
    profile = _profile(lead_id_for(event.email))
    assert profile is not None and int(profile["n:type:demo_requested"]) == 1


def test_an_expired_ledger_batch_applies_the_unapplied_items_of_its_arrival_window(
    env: dict[str, str],
) -> None:
    settings = _settings()
    ledger = pipeline.services(settings).ledger
    table = boto3.resource("dynamodb", region_name=REGION).Table(settings.ledger_table)
    failed_at = datetime.now(UTC) - timedelta(days=2)
    missed = _event("missed@replay.example")
    done = _event("done@replay.example")
    later = _event("later@replay.example")
    table.put_item(Item=ledger.item_for(missed, failed_at))
    table.put_item(Item={**ledger.item_for(done, failed_at), "applied_at": iso(failed_at)})
    table.put_item(Item=ledger.item_for(later, failed_at + timedelta(hours=3)))  # another batch
    _send(env["SCORE_EVENTS_DLQ_URL"], _expired_record(failed_at))

    summary = Replayer(settings).replay(DeadLetterQueue.SCORE_EVENTS)

    assert summary.batches_from_ledger == 1 and summary.records_replayed == 1 and summary.complete
    assert _profile(lead_id_for(missed.email)) is not None
    assert _profile(lead_id_for(done.email)) is None
    assert _profile(lead_id_for(later.email)) is None
    assert _bodies(env["SCORE_EVENTS_DLQ_URL"]) == []


def test_a_message_that_cannot_be_replayed_stays_in_the_queue_and_the_command_exits_1(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _send(env["SCORE_EVENTS_DLQ_URL"], {"not": "an on-failure record", "email": "x@replay.example"})

    status = cli.main(["replay", "score-events"])

    [summary] = json.loads(capsys.readouterr().out)
    assert status == 1
    assert summary["kept"] == 1 and summary["deleted"] == 0
    assert "DDBStreamBatchInfo" in summary["errors"][0] and "x@replay.example" not in summary["errors"][0]
    assert len(_bodies(env["SCORE_EVENTS_DLQ_URL"])) == 1  # visible again for the next run


# -- the profile stream's on-failure destination (evaluate_thresholds) -----------------------


def test_a_failed_profile_batch_still_in_the_stream_is_evaluated_again(env: dict[str, str]) -> None:
    settings = _settings()
    event = _event(
        "vp@replay-globex.example",
        job_title="VP Sales",
        company_size=800,
        industry="Software",
        country="US",
    )
    pipeline.services(settings).ledger.record(event, datetime.now(UTC))
    [ledger_record] = _stream_records(settings.ledger_table)
    pipeline.apply_ledger_record(_new_image(ledger_record), settings)
    profile_records = _stream_records(settings.profiles_table)
    before = _profile(lead_id_for(event.email))
    message = _on_failure_record(settings.profiles_table, profile_records[0], profile_records[-1])
    _send(env["EVALUATE_THRESHOLDS_DLQ_URL"], message)

    summary = Replayer(settings).replay(DeadLetterQueue.EVALUATE_THRESHOLDS)

    after = _profile(lead_id_for(event.email))
    assert before is not None and after is not None
    assert before["stage"] == "lead" and after["stage"] == "MQL"
    assert summary.batches_from_stream == 1 and summary.complete


def _new_image(record: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in record["dynamodb"]["NewImage"].items()}


def test_an_expired_profile_batch_is_handed_to_the_sweeper_and_removed(env: dict[str, str]) -> None:
    _send(env["EVALUATE_THRESHOLDS_DLQ_URL"], _expired_record(datetime.now(UTC) - timedelta(days=3)))

    summary = Replayer(_settings()).replay(DeadLetterQueue.EVALUATE_THRESHOLDS)

    assert summary.batches_to_sweeper == 1 and summary.decay_runs == 1 and summary.complete
    assert _bodies(env["EVALUATE_THRESHOLDS_DLQ_URL"]) == []


# -- the schedule's dead-letter queue (decay_scores) ------------------------------------------


def test_missed_decay_ticks_run_the_decay_once(env: dict[str, str]) -> None:
    for _ in range(3):
        _send(env["DECAY_SCORES_DLQ_URL"], {"source": "aws.events", "detail-type": "Scheduled Event"})

    summary = Replayer(_settings()).replay(DeadLetterQueue.DECAY_SCORES)

    assert summary.messages == 3 and summary.decay_runs == 1 and summary.deleted == 3
    assert _bodies(env["DECAY_SCORES_DLQ_URL"]) == []


# -- the command line -------------------------------------------------------------------------


def test_a_queue_without_its_environment_variable_is_a_usage_error_and_nothing_moves(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RESCORE_DLQ_URL")
    _send(env["SES_EVENTS_DLQ_URL"], {"eventType": "Bounce"})

    status = cli.main(["replay", "all"])

    assert status == 2
    assert "RESCORE_DLQ_URL" in capsys.readouterr().err
    assert _bodies(env["SES_EVENTS_QUEUE_URL"]) == []  # checked before any queue was touched
    assert len(_bodies(env["SES_EVENTS_DLQ_URL"])) == 1


def test_all_queues_empty_is_success(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["replay", "all", "--dry-run"])

    summaries = json.loads(capsys.readouterr().out)
    assert status == 0
    assert sorted(s["queue"] for s in summaries) == sorted(q.value for q in DeadLetterQueue)
