"""Tables built in moto from template.yaml behave as the data-access code will expect."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from leadscore.repository import EventLedger, LeadProfiles

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def _lead_id() -> str:
    return f"lead-{uuid.uuid4().hex}"


def _dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def _stream_records(stream_arn: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])
    return records


def test_every_template_table_exists_with_its_ttl(tables: dict[str, str]) -> None:
    # Given the tables fixture built from the template
    client = _dynamodb()
    # Then each table exists under its test name, and TTL is on where the template enables it
    assert set(tables) == {
        "EventLedgerTable",
        "LeadProfilesTable",
        "LeadRanksTable",
        "AccountsTable",
        "IdempotencyTable",
        "RescoreJobsTable",
        "RateLimitTable",
        "IdentityTable",
    }
    assert set(client.list_tables()["TableNames"]) == set(tables.values())
    ttl = {
        logical_id: client.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get("AttributeName")
        for logical_id, name in tables.items()
    }
    assert ttl == {
        "EventLedgerTable": "expires_at",
        "LeadProfilesTable": None,
        "LeadRanksTable": None,
        "AccountsTable": None,
        "IdempotencyTable": "expiration",
        "RescoreJobsTable": None,
        "RateLimitTable": "expires_at",
        "IdentityTable": "expires_at",
    }


def test_ledger_by_time_index_returns_a_leads_events_in_time_order(tables: dict[str, str]) -> None:
    # Given three events of one lead stored out of time order, and one event of another lead
    client = _dynamodb()
    lead, other = _lead_id(), _lead_id()
    for event_id, occurred_at in (("e-c", "2025-03-03T00:00:00Z"), ("e-a", "2025-01-01T00:00:00Z")):
        item = {"lead_id": {"S": lead}, "event_id": {"S": event_id}, "occurred_at": {"S": occurred_at}}
        client.put_item(TableName=tables["EventLedgerTable"], Item=item)
    client.put_item(
        TableName=tables["EventLedgerTable"],
        Item={"lead_id": {"S": lead}, "event_id": {"S": "e-b"}, "occurred_at": {"S": "2025-02-02T00:00:00Z"}},
    )
    client.put_item(
        TableName=tables["EventLedgerTable"],
        Item={
            "lead_id": {"S": other},
            "event_id": {"S": "e-x"},
            "occurred_at": {"S": "2025-01-15T00:00:00Z"},
        },
    )
    # When the by_time index is queried newest first
    result = client.query(
        TableName=tables["EventLedgerTable"],
        IndexName="by_time",
        KeyConditionExpression="lead_id = :lead",
        ExpressionAttributeValues={":lead": {"S": lead}},
        ScanIndexForward=False,
    )
    # Then only that lead's events come back, newest first
    assert [item["event_id"]["S"] for item in result["Items"]] == ["e-c", "e-b", "e-a"]


def test_ledger_rejects_a_second_copy_of_an_event(tables: dict[str, str]) -> None:
    # Given an event recorded once (ingest's idempotent write)
    client = _dynamodb()
    item = {"lead_id": {"S": _lead_id()}, "event_id": {"S": "sg-1"}, "occurred_at": {"S": "2025-01-01"}}
    put = {
        "TableName": tables["EventLedgerTable"],
        "Item": item,
        "ConditionExpression": "attribute_not_exists(event_id)",
    }
    client.put_item(**put)
    # When the same event is written again, Then the key schema makes the condition fail
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(**put)


def test_profiles_by_stage_score_lists_the_top_leads_of_a_stage(tables: dict[str, str]) -> None:
    # Given leads in two stages
    client = _dynamodb()
    scored = {_lead_id(): ("mql", "55"), _lead_id(): ("mql", "72.5"), _lead_id(): ("new", "90")}
    for lead, (stage, score) in scored.items():
        client.put_item(
            TableName=tables["LeadProfilesTable"],
            Item={"lead_id": {"S": lead}, "stage": {"S": stage}, "score": {"N": score}},
        )
    # When the MQLs are queried by descending score
    result = client.query(
        TableName=tables["LeadProfilesTable"],
        IndexName="by_stage_score",
        KeyConditionExpression="stage = :stage",
        ExpressionAttributeValues={":stage": {"S": "mql"}},
        ScanIndexForward=False,
    )
    # Then the best MQL comes first and other stages are absent
    assert [item["score"]["N"] for item in result["Items"]] == ["72.5", "55"]


def test_review_due_index_holds_only_leads_that_carry_a_review_time(tables: dict[str, str]) -> None:
    # Given one lead due for review, one due later, and one with nothing left to decay
    client = _dynamodb()
    due, later, settled = _lead_id(), _lead_id(), _lead_id()
    for lead, review_at in ((due, "1000"), (later, "5000")):
        client.put_item(
            TableName=tables["LeadProfilesTable"],
            Item={"lead_id": {"S": lead}, "review_shard": {"S": "3"}, "review_at": {"N": review_at}},
        )
    client.put_item(TableName=tables["LeadProfilesTable"], Item={"lead_id": {"S": settled}})
    # When shard 3 is asked for leads due by t=2000
    result = client.query(
        TableName=tables["LeadProfilesTable"],
        IndexName="review_due",
        KeyConditionExpression="review_shard = :shard AND review_at <= :now",
        ExpressionAttributeValues={":shard": {"S": "3"}, ":now": {"N": "2000"}},
    )
    # Then only the due lead is returned (keys only)
    assert [item["lead_id"]["S"] for item in result["Items"]] == [due]
    scanned = client.scan(TableName=tables["LeadProfilesTable"], IndexName="review_due")["Items"]
    assert {item["lead_id"]["S"] for item in scanned} == {due, later}


def test_profiles_stream_carries_old_and_new_images(tables: dict[str, str]) -> None:
    # Given a profile created and then moved to a new stage
    client = _dynamodb()
    lead = _lead_id()
    table = tables["LeadProfilesTable"]
    client.put_item(TableName=table, Item={"lead_id": {"S": lead}, "stage": {"S": "new"}})
    client.update_item(
        TableName=table,
        Key={"lead_id": {"S": lead}},
        UpdateExpression="SET stage = :mql",
        ExpressionAttributeValues={":mql": {"S": "mql"}},
    )
    # When the table's stream is read
    description = client.describe_table(TableName=table)["Table"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    records = _stream_records(description["LatestStreamArn"])
    # Then the MODIFY record shows both sides of the transition
    (modify,) = [r for r in records if r["eventName"] == "MODIFY"]
    assert modify["dynamodb"]["OldImage"]["stage"] == {"S": "new"}
    assert modify["dynamodb"]["NewImage"]["stage"] == {"S": "mql"}


def test_ledger_stream_carries_new_images_only(tables: dict[str, str]) -> None:
    # Given one recorded event
    client = _dynamodb()
    table = tables["EventLedgerTable"]
    client.put_item(
        TableName=table,
        Item={"lead_id": {"S": _lead_id()}, "event_id": {"S": "e-1"}, "occurred_at": {"S": "2025-01-01"}},
    )
    # When the stream is read
    stream_arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (record,) = _stream_records(stream_arn)
    # Then it is an INSERT with the new image and no old image
    assert record["eventName"] == "INSERT"
    assert record["dynamodb"]["NewImage"]["event_id"] == {"S": "e-1"}
    assert "OldImage" not in record["dynamodb"]


def test_rescore_jobs_parts_are_queryable_per_job(tables: dict[str, str]) -> None:
    # Given two parts of one job and a part of another job
    client = _dynamodb()
    job, other = f"job-{uuid.uuid4().hex}", f"job-{uuid.uuid4().hex}"
    for job_id, part in ((job, "0001"), (job, "0000"), (other, "0000")):
        client.put_item(
            TableName=tables["RescoreJobsTable"], Item={"job_id": {"S": job_id}, "part": {"S": part}}
        )
    # When the job's parts are queried, Then both come back in part order
    result = client.query(
        TableName=tables["RescoreJobsTable"],
        KeyConditionExpression="job_id = :job",
        ExpressionAttributeValues={":job": {"S": job}},
    )
    assert [item["part"]["S"] for item in result["Items"]] == ["0000", "0001"]


def test_topics_fixture_creates_the_stage_change_topics(topics: dict[str, str]) -> None:
    sns = boto3.client("sns", region_name=REGION)
    assert {"NurtureTopic", "SalesTopic"} <= set(topics)
    attributes = sns.get_topic_attributes(TopicArn=topics["SalesTopic"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == "alias/aws/sns"
    assert sns.publish(TopicArn=topics["NurtureTopic"], Message="{}")["MessageId"]


# ---------------------------------------------------------- data access over the projected indexes
def _profile_item(lead_id: str, stage: str, score: int) -> dict[str, Any]:
    return {
        "lead_id": {"S": lead_id},
        "email": {"S": f"{lead_id}@example.com"},
        "stage": {"S": stage},
        "score": {"N": str(score)},
        "r:pricing_page": {"N": "12.5"},
        "n:pricing_page": {"N": "2"},
    }


def test_ranked_reads_whole_leads_in_index_order_although_the_index_projects_keys_only(
    tables: dict[str, str],
) -> None:
    # Given three leads of one stage with accumulators and emails (not in the KEYS_ONLY index)
    client = _dynamodb()
    stage = f"stage-{uuid.uuid4().hex[:8]}"
    leads = {_lead_id(): score for score in (30, 90, 60)}
    for lead_id, score in leads.items():
        client.put_item(TableName=tables["LeadProfilesTable"], Item=_profile_item(lead_id, stage, score))
    profiles = LeadProfiles(
        tables["LeadProfilesTable"], "new", 8, boto3.resource("dynamodb", region_name=REGION)
    )
    # When the stage is ranked two at a time
    first, cursor = profiles.ranked(stage, 2, None)
    second, last = profiles.ranked(stage, 2, cursor)
    # Then the pages come highest score first, each lead whole (its email and score state)
    ranked = first + second
    assert [p.score for p in ranked] == [90.0, 60.0, 30.0]
    assert [p.lead_id for p in ranked] == sorted(leads, key=lambda lead: -leads[lead])
    assert cursor is not None and last is None
    for profile in ranked:
        assert profile.state.email == f"{profile.lead_id}@example.com"
        assert profile.state.accumulators == {"pricing_page": 12.5}
        assert profile.state.counts == {"pricing_page": 2}
        assert profile.stage == stage


def test_recent_shows_what_the_lead_api_needs_from_the_time_index_without_personal_data(
    tables: dict[str, str],
) -> None:
    # Given a recorded event with the lead's email and attributes
    client = _dynamodb()
    lead = _lead_id()
    client.put_item(
        TableName=tables["EventLedgerTable"],
        Item={
            "lead_id": {"S": lead},
            "event_id": {"S": "e-1"},
            "email": {"S": "someone@example.com"},
            "event_type": {"S": "page_view"},
            "provider": {"S": "generic"},
            "occurred_at": {"S": "2025-01-01T00:00:00.000000Z"},
            "received_at": {"S": "2025-01-01T00:00:01.000000Z"},
            "url": {"S": "https://example.com/pricing"},
            "attributes": {"M": {"job_title": {"S": "CTO"}}},
        },
    )
    ledger = EventLedger(tables["EventLedgerTable"], 400, boto3.resource("dynamodb", region_name=REGION))
    # When the lead's recent events are read
    (event,) = ledger.recent(lead)
    # Then every field the lead API shows is there (the index's INCLUDE list covers them), and
    # the email and attributes are not
    assert event == {
        "lead_id": lead,
        "event_id": "e-1",
        "event_type": "page_view",
        "provider": "generic",
        "occurred_at": "2025-01-01T00:00:00.000000Z",
        "received_at": "2025-01-01T00:00:01.000000Z",
        "url": "https://example.com/pricing",
    }
