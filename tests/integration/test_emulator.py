"""The emulator workarounds change how fast moto answers, never what it answers."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest.mock import patch

import boto3
import pytest

from leadscore.local import emulator

from ..conftest import TEST_REGION

pytestmark = pytest.mark.integration


def test_moto_answers_on_a_thread_of_its_own_one_request_at_a_time(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.responses import DynamoHandler

    answered_on: list[threading.Thread] = []
    list_tables = DynamoHandler.list_tables

    def spy(self: Any) -> Any:
        answered_on.append(threading.current_thread())
        return list_tables(self)

    monkeypatch.setattr(DynamoHandler, "list_tables", spy)
    client = boto3.client("dynamodb", region_name=TEST_REGION)
    with emulator.atomic_requests(), ThreadPoolExecutor(max_workers=4) as callers:
        answers = list(callers.map(lambda _: client.list_tables()["TableNames"], range(8)))

    assert answers == [[]] * 8
    assert len(answered_on) == 8 and len(set(answered_on)) == 1  # one emulator thread for all callers
    assert answered_on[0] is not threading.current_thread()
    assert answered_on[0].name.startswith("moto")


def _fill(client: Any, ledger: str, profiles: str) -> None:
    """Ledger items of 30 leads and their profiles, put in random order (moto keeps put order)."""
    rng = random.Random(7)
    puts = [
        (
            ledger,
            {
                "lead_id": {"S": f"ld_{lead:03d}"},
                "event_id": {"S": f"ev_{rng.randrange(10**6):06d}_{n}"},
                "occurred_at": {"S": f"2026-01-{1 + rng.randrange(28):02d}T00:00:00Z"},
                "event_type": {"S": rng.choice(["form_submitted", "email_opened", "demo_requested"])},
            },
        )
        for lead in range(30)
        for n in range(lead % 7)
    ]
    puts += [(profiles, {"lead_id": {"S": f"ld_{lead:03d}"}, "stage": {"S": "lead"}}) for lead in range(30)]
    rng.shuffle(puts)
    for table, item in puts:
        client.put_item(TableName=table, Item=item)


def _queries(ledger: str, profiles: str) -> list[dict[str, Any]]:
    lead = {":l": {"S": "ld_006"}}
    return [
        {"TableName": ledger, "KeyConditionExpression": "lead_id = :l", "ExpressionAttributeValues": lead},
        {
            "TableName": ledger,
            "KeyConditionExpression": "lead_id = :l",
            "ExpressionAttributeValues": lead,
            "ScanIndexForward": False,
            "Limit": 2,
        },
        {
            "TableName": ledger,
            "KeyConditionExpression": "lead_id = :l AND event_id > :e",
            "ExpressionAttributeValues": {**lead, ":e": {"S": "ev_5"}},
        },
        {
            "TableName": ledger,
            "KeyConditionExpression": "lead_id = :l AND begins_with(event_id, :e)",
            "ExpressionAttributeValues": {**lead, ":e": {"S": "ev_1"}},
            "Select": "COUNT",
        },
        {
            "TableName": ledger,
            "KeyConditionExpression": "lead_id = :l",
            "FilterExpression": "event_type = :t",
            "ProjectionExpression": "event_id, occurred_at",
            "ExpressionAttributeValues": {**lead, ":t": {"S": "email_opened"}},
        },
        {
            "TableName": ledger,
            "IndexName": "by_time",
            "KeyConditionExpression": "lead_id = :l",
            "ExpressionAttributeValues": lead,
            "ScanIndexForward": False,
        },
        {
            "TableName": ledger,
            "KeyConditionExpression": "lead_id = :l",
            "ExpressionAttributeValues": {":l": {"S": "nobody"}},
        },
        {"TableName": profiles, "KeyConditionExpression": "lead_id = :l", "ExpressionAttributeValues": lead},
    ]


def _answers(client: Any, queries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Every page of every query (following LastEvaluatedKey), without the response metadata."""
    answers = []
    for query in queries:
        pages, kwargs = [], dict(query)
        while True:
            page = client.query(**kwargs)
            page.pop("ResponseMetadata")
            pages.append(page)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        answers.append(pages)
    return answers


def test_partition_queries_answer_exactly_as_moto_does(tables: dict[str, str]) -> None:
    client = boto3.client("dynamodb", region_name=TEST_REGION)
    ledger, profiles = tables["EventLedgerTable"], tables["LeadProfilesTable"]
    _fill(client, ledger, profiles)
    queries = _queries(ledger, profiles)

    plain = _answers(client, queries)
    with emulator.partition_queries():
        narrowed = _answers(client, queries)
    again = _answers(client, queries)  # and the patch is gone afterwards

    assert narrowed == plain == again
    assert [sum(len(p.get("Items", [])) for p in pages) for pages in plain][:3] != [0, 0, 0]
    assert sum(p["Count"] for p in plain[1]) == 6  # ld_006 has six events, read two at a time
    assert len(plain[1]) > 1


def _stream_pages(streams: Any, stream_arn: str, limit: int) -> list[dict[str, Any]]:
    """Every GetRecords answer reading the stream from its start, `limit` records at a time, without
    the parts that differ on every call (iterators are random, the metadata has request ids)."""
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    position = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    pages = []
    while True:
        page = streams.get_records(ShardIterator=position, Limit=limit)
        position = page.pop("NextShardIterator")
        page.pop("ResponseMetadata")
        pages.append(page)
        if not page["Records"]:
            return pages


def test_fast_stream_reads_answer_exactly_as_moto_does(tables: dict[str, str]) -> None:
    from moto.core.responses import BaseResponse

    client = boto3.client("dynamodb", region_name=TEST_REGION)
    streams = boto3.client("dynamodbstreams", region_name=TEST_REGION)
    profiles = tables["LeadProfilesTable"]  # NEW_AND_OLD_IMAGES: both images of every change
    stream_arn = client.describe_table(TableName=profiles)["Table"]["LatestStreamArn"]
    item = {
        "lead_id": {"S": "ld_types"},
        "total": {"N": "71.25"},
        "raw": {"B": b"\x00\xffbytes"},
        "tags": {"SS": ["a", "b"]},
        "counts": {"NS": ["1", "2.5"]},
        "blobs": {"BS": [b"\x01", b"\x02"]},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "-3"}, {"NULL": True}, {"BOOL": False}]}}},
        "note": {"S": 'é ü ✓ "quoted" \\ back'},
    }
    client.put_item(TableName=profiles, Item=item)
    client.update_item(
        TableName=profiles,
        Key={"lead_id": {"S": "ld_types"}},
        UpdateExpression="SET stage = :s ADD #t :x",
        ExpressionAttributeNames={"#t": "total"},
        ExpressionAttributeValues={":s": {"S": "SQL"}, ":x": {"N": "1"}},
    )
    client.put_item(TableName=profiles, Item={"lead_id": {"S": "ld_other"}, "stage": {"S": "lead"}})
    client.delete_item(TableName=profiles, Key={"lead_id": {"S": "ld_types"}})
    serialized: list[str] = []  # the actions whose answer went through moto's serializer
    serialize = BaseResponse.serialized

    def spy(self: Any, result: Any) -> Any:
        serialized.append(self._get_action())
        return serialize(self, result)

    with patch.object(BaseResponse, "serialized", spy):
        plain = [_stream_pages(streams, stream_arn, limit) for limit in (1, 3, 100)]
        by_moto, serialized[:] = list(serialized), []
        with emulator.fast_stream_reads():
            fast = [_stream_pages(streams, stream_arn, limit) for limit in (1, 3, 100)]

    assert fast == plain
    assert [len(page["Records"]) for page in plain[2]] == [4, 0]  # INSERT, MODIFY, INSERT, REMOVE
    assert {"NewImage", "OldImage"} <= set(plain[2][0]["Records"][1]["dynamodb"])
    assert by_moto.count("GetRecords") == 5 + 3 + 2  # pages of 1, 3 and 100 records, then an empty one
    assert "GetRecords" not in serialized and serialized  # the other requests still went through it


def _apply_updates(client: Any, table: str, lead: str) -> tuple[dict[str, Any], list[str]]:
    """The same update expressions again and again with other values (as a profile's updates are),
    and two that moto refuses; returns the item and the refusals' messages."""
    expression = "SET #s = :s, #n = if_not_exists(#n, :zero) + :step ADD #tags :tag REMOVE #gone"
    names = {"#s": "stage", "#n": "count", "#tags": "tags", "#gone": "gone"}
    refusals = []
    for step in range(1, 6):
        client.update_item(
            TableName=table,
            Key={"lead_id": {"S": lead}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                ":s": {"S": f"stage{step}"},
                ":zero": {"N": "0"},
                ":step": {"N": str(step)},
                ":tag": {"SS": [f"t{step}"]},
            },
        )
        for bad in ("SET total = :s", "SET #s = :missing", "SET #s = :s SET total = :s"):
            with pytest.raises(client.exceptions.ClientError) as refused:
                client.update_item(
                    TableName=table,
                    Key={"lead_id": {"S": lead}},
                    UpdateExpression=bad,
                    ExpressionAttributeNames={"#s": "stage"} if "#s" in bad else {},
                    ExpressionAttributeValues={":s": {"S": "x"}},
                )
            refusals.append(str(refused.value))
    item = client.get_item(TableName=table, Key={"lead_id": {"S": lead}})["Item"]
    item.pop("lead_id")
    return item, refusals


def test_parsed_once_updates_exactly_as_moto_does(tables: dict[str, str]) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ActionCountValidator

    client = boto3.client("dynamodb", region_name=TEST_REGION)
    profiles = tables["LeadProfilesTable"]

    plain = _apply_updates(client, profiles, "ld_plain")
    counted = ActionCountValidator.traverse
    with (
        emulator.parsed_once(),
        patch.object(ActionCountValidator, "traverse", autospec=True, side_effect=counted) as counts,
    ):
        cached = _apply_updates(client, profiles, "ld_cached")
        parses = UpdateExpressionParser.make.cache_info()

    assert cached == plain
    assert plain[0]["count"] == {"N": "15"} and plain[0]["stage"] == {"S": "stage5"}
    assert len(plain[0]["tags"]["SS"]) == 5 and len(plain[1]) == 15
    assert "can only be used once" in plain[1][2]  # two SET clauses: refused, cached or not
    assert parses.hits > parses.misses  # the expression was parsed once, then reused
    assert counts.call_count == parses.misses  # its clauses counted once per parse, not per write


def test_moto_lists_its_modules_once_and_dispatches_as_before() -> None:
    from moto import backends

    listed = list(backends.list_of_moto_modules())
    with emulator.modules_listed_once(), patch("os.listdir", side_effect=AssertionError("listed again")):
        assert list(backends.list_of_moto_modules()) == listed
        assert "dynamodb" in backends.list_of_moto_modules()
