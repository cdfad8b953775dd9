"""The emulator holds DynamoDB's limits: 400 KB items on every write, numbers DynamoDB can store,
and a refused write (UpdateItem, BatchWriteItem, TransactWriteItems) changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from leadscore.local import emulator
from leadscore.repository.sizes import MAX_ITEM_BYTES, wire_item_size

from ..conftest import TEST_REGION

pytestmark = pytest.mark.integration

TOO_LARGE = "Item size has exceeded the maximum allowed size"
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"


@pytest.fixture
def db(tables: dict[str, str]) -> Iterator[tuple[Any, str, str]]:
    """A DynamoDB client on the template's tables with the emulator's patches on, and the names
    of the profiles table (key lead_id) and the ledger (key lead_id, event_id)."""
    with emulator.atomic_requests():
        yield (
            boto3.client("dynamodb", region_name=TEST_REGION),
            tables["LeadProfilesTable"],
            tables["EventLedgerTable"],
        )


def _padded(lead_id: str, size: int, **attributes: Any) -> dict[str, Any]:
    """A profile item of exactly `size` bytes: `attributes` and a string `filler` filling the rest."""
    item = {"lead_id": {"S": lead_id}, **attributes}
    item["filler"] = {"S": ""}
    item["filler"] = {"S": "p" * (size - wire_item_size(item))}
    assert wire_item_size(item) == size
    return item


def _get(client: Any, table: str, **key: str) -> dict[str, Any] | None:
    found = client.get_item(TableName=table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True)
    return found.get("Item")


def _stream_records(table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream so far."""
    streams = boto3.client("dynamodbstreams", region_name=TEST_REGION)
    arn = boto3.client("dynamodb", region_name=TEST_REGION).describe_table(TableName=table)["Table"][
        "LatestStreamArn"
    ]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return list(streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"])


def _refused(error: pytest.ExceptionInfo[ClientError], code: str, message: str) -> None:
    assert error.value.response["Error"]["Code"] == code
    assert message in error.value.response["Error"]["Message"]


# -- item size ------------------------------------------------------------------------------------


def test_a_put_of_exactly_400_kb_is_stored_and_one_byte_more_is_refused(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    client.put_item(TableName=profiles, Item=_padded("ld_full", MAX_ITEM_BYTES))  # moto refused >405,000
    with pytest.raises(ClientError) as error:
        client.put_item(TableName=profiles, Item=_padded("ld_over", MAX_ITEM_BYTES + 1))
    _refused(error, "ValidationException", TOO_LARGE)
    assert _get(client, profiles, lead_id="ld_over") is None
    assert _get(client, profiles, lead_id="ld_full") == _padded("ld_full", MAX_ITEM_BYTES)


def test_a_put_counts_list_overhead_as_dynamodb_does(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    # 110,000 strings of 3 bytes: 330,000 bytes of values, 440,000+ with DynamoDB's 1 byte each.
    many = {"L": [{"S": "abc"}] * 110_000}
    with pytest.raises(ClientError) as error:
        client.put_item(TableName=profiles, Item={"lead_id": {"S": "ld_list"}, "l": many})
    _refused(error, "ValidationException", TOO_LARGE)
    assert _get(client, profiles, lead_id="ld_list") is None


@pytest.mark.parametrize(
    "added",
    [
        {"SS": [f"tag-{n:05d}" for n in range(1000)]},
        {"NS": [str(10**30 + n) for n in range(1000)]},
    ],
    ids=["string-set", "number-set"],
)
def test_a_set_add_past_400_kb_is_refused_and_changes_nothing(
    db: tuple[Any, str, str], added: dict[str, list[str]]
) -> None:
    client, profiles, _ = db
    kind = next(iter(added))
    before = _padded("ld_sets", MAX_ITEM_BYTES - 5_000, tags={kind: added[kind][:2]}, score={"N": "10"})
    client.put_item(TableName=profiles, Item=before)
    records = _stream_records(profiles)

    with pytest.raises(ClientError) as error:
        client.update_item(
            TableName=profiles,
            Key={"lead_id": {"S": "ld_sets"}},
            UpdateExpression="ADD tags :more, score :one SET touched = :yes",
            ExpressionAttributeValues={":more": added, ":one": {"N": "1"}, ":yes": {"BOOL": True}},
        )

    _refused(error, "ValidationException", UPDATE_TOO_LARGE)
    assert _get(client, profiles, lead_id="ld_sets") == before
    assert _stream_records(profiles) == records
    # A set ADD that fits is still applied.
    client.update_item(
        TableName=profiles,
        Key={"lead_id": {"S": "ld_sets"}},
        UpdateExpression="ADD tags :more",
        ExpressionAttributeValues={":more": {kind: added[kind][:100]}},
    )
    after = _get(client, profiles, lead_id="ld_sets")
    assert after is not None and len(after["tags"][kind]) == 100


def test_a_batch_with_one_item_over_400_kb_writes_none_of_it(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    batch = [
        {"PutRequest": {"Item": {"lead_id": {"S": "ld_small"}}}},
        {"PutRequest": {"Item": _padded("ld_huge", MAX_ITEM_BYTES + 10)}},
    ]
    with pytest.raises(ClientError) as error:
        client.batch_write_item(RequestItems={profiles: batch})
    _refused(error, "ValidationException", TOO_LARGE)
    assert _get(client, profiles, lead_id="ld_small") is None
    assert _get(client, profiles, lead_id="ld_huge") is None


# -- transactions ---------------------------------------------------------------------------------


def _apply_event(client: Any, profiles: str, ledger: str, tags: dict[str, Any]) -> None:
    """The shape of the score path: mark the ledger item applied and update the profile, at once."""
    client.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": ledger,
                    "Key": {"lead_id": {"S": "ld_tx"}, "event_id": {"S": "ev_1"}},
                    "UpdateExpression": "SET applied_at = :now",
                    "ConditionExpression": "attribute_exists(event_id) AND attribute_not_exists(applied_at)",
                    "ExpressionAttributeValues": {":now": {"S": "2026-11-29T20:00:00Z"}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": profiles,
                    "Key": {"lead_id": {"S": "ld_tx"}},
                    "UpdateExpression": "ADD tags :tags, events :one",
                    "ExpressionAttributeValues": {":tags": tags, ":one": {"N": "1"}},
                }
            },
        ]
    )


def _event_and_profile(
    client: Any, profiles: str, ledger: str, size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {"lead_id": {"S": "ld_tx"}, "event_id": {"S": "ev_1"}, "occurred_at": {"S": "2026-11-29"}}
    profile = _padded("ld_tx", size, tags={"SS": ["a"]}, events={"N": "3"})
    client.put_item(TableName=ledger, Item=event)
    client.put_item(TableName=profiles, Item=profile)
    return event, profile


def test_a_transaction_whose_item_would_exceed_400_kb_is_cancelled_with_nothing_applied(
    db: tuple[Any, str, str],
) -> None:
    client, profiles, ledger = db
    event, profile = _event_and_profile(client, profiles, ledger, MAX_ITEM_BYTES - 5_600)
    big_tags = {"SS": [f"tag-{n:06d}" for n in range(600)]}  # 6,000 bytes

    with pytest.raises(ClientError) as error:
        _apply_event(client, profiles, ledger, big_tags)

    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = error.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ValidationError"]
    assert "exceeded the maximum allowed size" in reasons[1]["Message"]
    assert _get(client, ledger, lead_id="ld_tx", event_id="ev_1") == event  # not marked applied
    assert _get(client, profiles, lead_id="ld_tx") == profile


def test_a_transaction_names_the_item_whose_condition_failed(db: tuple[Any, str, str]) -> None:
    client, profiles, ledger = db
    _event_and_profile(client, profiles, ledger, 1_000)
    _apply_event(client, profiles, ledger, {"SS": ["b"]})
    applied = _get(client, ledger, lead_id="ld_tx", event_id="ev_1")
    counted = _get(client, profiles, lead_id="ld_tx")
    assert applied is not None and "applied_at" in applied
    assert counted is not None and counted["events"] == {"N": "4"}

    with pytest.raises(ClientError) as error:  # the same event again: its ledger item is applied
        _apply_event(client, profiles, ledger, {"SS": ["c"]})

    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = error.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["ConditionalCheckFailed", "None"]
    assert reasons[0]["Item"] == applied  # ReturnValuesOnConditionCheckFailure=ALL_OLD
    assert "Item" not in reasons[1]
    assert _get(client, profiles, lead_id="ld_tx") == counted  # the profile update was not applied


# -- a failed update changes nothing ---------------------------------------------------------------


def test_an_update_that_fails_part_way_changes_nothing(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    before = {"lead_id": {"S": "ld_part"}, "stage": {"S": "lead"}, "score": {"S": "not a number"}}
    client.put_item(TableName=profiles, Item=before)

    with pytest.raises(ClientError) as error:  # moto applied the SET, then failed on the ADD
        client.update_item(
            TableName=profiles,
            Key={"lead_id": {"S": "ld_part"}},
            UpdateExpression="SET stage = :mql, seen = :yes ADD score :one",
            ExpressionAttributeValues={":mql": {"S": "mql"}, ":yes": {"BOOL": True}, ":one": {"N": "1"}},
        )

    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert _get(client, profiles, lead_id="ld_part") == before


def test_an_update_that_fails_on_a_new_item_creates_nothing(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    records = _stream_records(profiles)
    with pytest.raises(ClientError) as error:  # moto created the item, then it grew past 400 KB
        client.update_item(
            TableName=profiles,
            Key={"lead_id": {"S": "ld_new"}},
            UpdateExpression="SET filler = :filler ADD tags :tags",
            ExpressionAttributeValues={
                ":filler": {"S": "p" * (MAX_ITEM_BYTES - 1_000)},
                ":tags": {"SS": [f"tag-{n:05d}" for n in range(200)]},
            },
        )
    _refused(error, "ValidationException", UPDATE_TOO_LARGE)
    assert _get(client, profiles, lead_id="ld_new") is None
    assert _stream_records(profiles) == records  # and no stream record of it either


# -- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expression", "operand", "message"),
    [
        ("9E+125", "SET stage = :mql ADD n :x", "9E+125", "Number overflow"),
        ("-9E+125", "SET stage = :mql, n = n - :x", "9E+125", "Number overflow"),
        ("2E-130", "SET stage = :mql ADD n :x", "-1.9E-130", "Number underflow"),
        ("1E+37", "SET stage = :mql, n = n + :x", "0.1", "more than 38 significant digits"),
    ],
)
def test_arithmetic_outside_dynamodbs_numbers_is_refused_and_changes_nothing(
    db: tuple[Any, str, str], stored: str, expression: str, operand: str, message: str
) -> None:
    client, profiles, _ = db
    before = {"lead_id": {"S": "ld_num"}, "n": {"N": stored}, "stage": {"S": "lead"}}
    client.put_item(TableName=profiles, Item=before)

    with pytest.raises(ClientError) as error:
        client.update_item(
            TableName=profiles,
            Key={"lead_id": {"S": "ld_num"}},
            UpdateExpression=expression,
            ExpressionAttributeValues={":x": {"N": operand}, ":mql": {"S": "mql"}},
        )

    _refused(error, "ValidationException", message)
    assert _get(client, profiles, lead_id="ld_num") == before


def test_an_update_sending_a_number_out_of_range_is_refused(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    with pytest.raises(ClientError) as error:  # moto checks items put, not expression values
        client.update_item(
            TableName=profiles,
            Key={"lead_id": {"S": "ld_sent"}},
            UpdateExpression="SET n = :x",
            ExpressionAttributeValues={":x": {"M": {"deep": {"NS": ["1", "1E+126"]}}}},
        )
    _refused(error, "ValidationException", "Number overflow")
    assert _get(client, profiles, lead_id="ld_sent") is None


def test_arithmetic_is_exact_to_38_digits(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    client.put_item(TableName=profiles, Item={"lead_id": {"S": "ld_exact"}, "n": {"N": "1E+36"}})
    client.update_item(
        TableName=profiles,
        Key={"lead_id": {"S": "ld_exact"}},
        UpdateExpression="ADD n :x",
        ExpressionAttributeValues={":x": {"N": "0.5"}},
    )
    stored = _get(client, profiles, lead_id="ld_exact")
    assert stored is not None
    assert Decimal(stored["n"]["N"]) == Decimal("1000000000000000000000000000000000000.5")  # moto: 28 digits


def test_an_update_that_creates_an_item_streams_one_insert(db: tuple[Any, str, str]) -> None:
    client, profiles, _ = db
    records = _stream_records(profiles)
    client.update_item(
        TableName=profiles,
        Key={"lead_id": {"S": "ld_fresh"}},
        UpdateExpression="ADD score :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    new = _stream_records(profiles)[len(records) :]
    assert [r["eventName"] for r in new] == ["INSERT"]  # moto also streamed a key-only INSERT
    assert new[0]["dynamodb"]["NewImage"] == {"lead_id": {"S": "ld_fresh"}, "score": {"N": "1"}}


def test_an_update_expression_longer_than_4_kb_is_refused_and_changes_nothing(
    db: tuple[Any, str, str],
) -> None:
    client, profiles, _ = db

    def update(clauses: int) -> dict[str, Any]:  # about 50 characters a clause
        return {
            "TableName": profiles,
            "Key": {"lead_id": {"S": "ld_expr"}},
            "UpdateExpression": "SET "
            + ", ".join(f"#attribute_name_{n:04} = :attribute_value_{n:04}" for n in range(clauses)),
            "ExpressionAttributeNames": {f"#attribute_name_{n:04}": f"a{n}" for n in range(clauses)},
            "ExpressionAttributeValues": {f":attribute_value_{n:04}": {"N": str(n)} for n in range(clauses)},
        }

    assert len(update(60)["UpdateExpression"]) < 4096 < len(update(100)["UpdateExpression"])
    client.update_item(**update(60))
    before = _get(client, profiles, lead_id="ld_expr")
    with pytest.raises(ClientError) as error:
        client.update_item(**update(100))
    _refused(error, "ValidationException", "Expression size has exceeded the maximum allowed size")
    assert _get(client, profiles, lead_id="ld_expr") == before
