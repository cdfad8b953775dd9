"""Accounts: one item per account, the only place that reads and writes them.

Item layout (attribute names):
  account           the key (`scoring.accounts.account_key`: an account id or a company domain)
  m:<lead id>       one member: its summary (`scoring.accounts.MemberSummary` without the lead id,
                    `rev` = the lead's profile revision it was made from), or, for a lead that left
                    the account, `{"rev": R, "left": "<time>"}` (so an older stream record of that
                    lead can never bring it back)
  ids               string set of the lead ids with an `m:` entry: what bounds the item
                    (`size(ids) < max_members` before a new one joins)
  revision          + 1 with every member write (the optimistic lock of stage decisions)
  stage, stage_seq, score, scored_at, last_transition, announce_pending
                    written by stage decisions (evaluate_accounts, the decay job)
  review_shard, review_at   sparse `review_due` index of accounts whose score can still fall

A member write is ONE conditional UpdateItem and no read, exact under retries and any order: the
summary is set only if the stored one was made from an older profile revision (or the lead is new
to the account and there is room). A write that changes nothing is never made (the caller compares
the profile stream's old and new images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field

from leadscore.repository import codec
from leadscore.repository.codec import (
    Expression,
    condition_failed,
    from_dynamo,
    iso,
    parse_iso,
    storage_error,
)
from leadscore.repository.profiles import Transition, new_transition_id
from leadscore.repository.sizes import item_size
from leadscore.schema import Model
from leadscore.scoring.account_model import AccountModel
from leadscore.scoring.accounts import MemberSummary

MEMBER_PREFIX = "m:"
MEMBER_IDS = "ids"
PENDING = "announce_pending"
FOREVER = 2**53 - 1  # the revision of a member that may never come back (an address folded away)


def member_attribute(lead_id: str) -> str:
    return f"{MEMBER_PREFIX}{lead_id}"


def review_shard_for(account: str, shards: int) -> str:
    return str(int(hashlib.sha256(account.encode()).hexdigest()[:8], 16) % shards)


def encode_member(summary: MemberSummary) -> dict[str, Any]:
    """The stored form of a summary: JSON values, empty parts and the lead id (the name) left out."""
    data: dict[str, Any] = summary.model_dump(mode="json", exclude={"lead"}, exclude_defaults=True)
    data["rev"] = summary.rev
    data["fit"] = summary.fit
    return data


class AccountRecord(Model):
    """An account item, decoded."""

    model_config = ConfigDict(frozen=True)

    account: str
    members: dict[str, MemberSummary] = Field(default_factory=dict)  # lead id -> summary (live only)
    left: dict[str, datetime] = Field(default_factory=dict)  # lead id -> when it left
    stage: str
    stage_seq: int = 0
    revision: int = 0
    score: float = 0.0
    scored_at: datetime | None = None
    last_transition: Transition | None = None
    announce_pending: str | None = None
    review_at: datetime | None = None


def account_from_item(item: Mapping[str, Any], initial_stage: str) -> AccountRecord:
    """Decode an account item (GetItem, or a stream image already deserialized)."""
    data = from_dynamo(dict(item))
    members: dict[str, MemberSummary] = {}
    left: dict[str, datetime] = {}
    for key, value in data.items():
        if not key.startswith(MEMBER_PREFIX) or not isinstance(value, dict):
            continue
        lead_id = key[len(MEMBER_PREFIX) :]
        if value.get("left"):
            left[lead_id] = parse_iso(str(value["left"]))
        else:
            members[lead_id] = MemberSummary.model_validate({**value, "lead": lead_id})
    transition = data.get("last_transition")
    return AccountRecord(
        account=str(data["account"]),
        members=members,
        left=left,
        stage=data.get("stage") or initial_stage,
        stage_seq=int(data.get("stage_seq", 0)),
        revision=int(data.get("revision", 0)),
        score=float(data.get("score", 0)),
        scored_at=parse_iso(data["scored_at"]) if data.get("scored_at") else None,
        last_transition=Transition.model_validate(transition) if transition else None,
        announce_pending=data.get(PENDING),
        review_at=datetime.fromtimestamp(data["review_at"], UTC)
        if data.get("review_at") is not None
        else None,
    )


class AccountDecision(Model):
    """What a stage decision (the accounts stream, the decay job) saves on an account."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    score: float
    stage: str
    transition: Transition | None = None
    review_at: datetime | None = None


class Accounts:
    def __init__(self, table_name: str, shards: int, initial_stage: str, resource: Any | None = None) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._shards = shards
        self._initial_stage = initial_stage

    # --- members: from the profile stream, no read ---------------------------------------------
    def put_member(self, account: str, summary: MemberSummary, max_members: int, review_at: datetime) -> bool:
        """Set the lead's summary on its account (ONE conditional update, no read). False when a
        summary from a newer (or the same) profile revision is stored, or the account is full."""
        return self._set_member(
            account, summary.lead, encode_member(summary), summary.rev, max_members, review_at
        )

    def leave(self, account: str, lead_id: str, revision: int, max_members: int, at: datetime) -> bool:
        """The lead left the account at profile `revision` (its account key changed): its summary
        gives way to a mark no older stream record can overwrite."""
        mark = {"rev": revision, "left": iso(at)}
        return self._set_member(account, lead_id, mark, revision, max_members, None)

    def _set_member(
        self,
        account: str,
        lead_id: str,
        value: Mapping[str, Any],
        revision: int,
        max_members: int,
        review_at: datetime | None,
    ) -> bool:
        expr = Expression()
        member = expr.set(member_attribute(lead_id), dict(value))
        expr.add(MEMBER_IDS, {lead_id})
        expr.add("revision", 1)
        expr.set("stage", self._initial_stage, if_missing=True)
        expr.set("stage_seq", 0, if_missing=True)
        expr.set("score", 0, if_missing=True)
        if review_at is not None:  # the decay job looks at the account from then on (see run_account_decay)
            expr.set("review_at", int(review_at.timestamp()), if_missing=True)
            expr.set("review_shard", review_shard_for(account, self._shards), if_missing=True)
        ids = expr.name(MEMBER_IDS)
        condition = (
            f"{member}.{expr.name('rev')} < {expr.value(revision)} OR (attribute_not_exists({member}) AND "
            f"(attribute_not_exists({ids}) OR size({ids}) < {expr.value(max_members)}))"
        )
        return self._update(account, expr, condition, "record an account member")

    def retire(self, account: str, lead_id: str, at: datetime) -> bool:
        """A lead folded into another one (an email change) leaves for good, if it is a member."""
        expr = Expression()
        member = expr.set(member_attribute(lead_id), {"rev": FOREVER, "left": iso(at)})
        expr.add("revision", 1)
        return self._update(account, expr, f"attribute_exists({member})", "retire an account member")

    def erase_member(self, account: str, lead_id: str) -> bool:
        """An erased lead: its entry goes, nothing of it is kept (not even a mark)."""
        expr = Expression()
        member = expr.name(member_attribute(lead_id))
        expr.clauses["REMOVE"].append(member)
        expr.delete(MEMBER_IDS, {lead_id})
        expr.add("revision", 1)
        return self._update(account, expr, f"attribute_exists({member})", "erase an account member")

    def _update(self, account: str, expr: Expression, condition: str, what: str) -> bool:
        try:
            self._table.update_item(Key={"account": account}, **expr.kwargs(condition))
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error(what, exc) from exc
        return True

    # --- stage decisions ------------------------------------------------------------------------
    def save(
        self, record: AccountRecord, decision: AccountDecision, prune_before: datetime | None = None
    ) -> bool:
        """Write a decision made on `record`, guarded by its revision and stage sequence (nothing
        changed since: the decision was made on the item as it is). Marks of members that left
        before `prune_before` are dropped (no stream record that old can still arrive)."""
        expr = Expression()
        expr.set("score", Decimal(str(round(decision.score, 6))))
        expr.set("scored_at", iso(decision.at))
        if decision.transition is not None:
            expr.set("stage", decision.stage)
            expr.set("stage_seq", record.stage_seq + 1)
            expr.set("last_transition", decision.transition.model_dump(mode="json"))
            expr.set(PENDING, decision.transition.id)
        if decision.review_at is None:
            expr.remove("review_at")
        else:
            expr.set("review_at", int(decision.review_at.timestamp()))
            expr.set("review_shard", review_shard_for(record.account, self._shards))
        gone = [lead for lead, at in record.left.items() if prune_before is not None and at < prune_before]
        for lead_id in gone:
            expr.remove(member_attribute(lead_id))
        if gone:
            expr.delete(MEMBER_IDS, set(gone))
        expr.add("revision", 1)
        revision, seq = expr.name("revision"), expr.name("stage_seq")
        condition = (
            f"{seq} = {expr.value(record.stage_seq)} AND "
            f"(attribute_not_exists({revision}) OR {revision} = {expr.value(record.revision)})"
        )
        return self._update(record.account, expr, condition, "save the account's stage")

    def clear_pending(self, account: str, transition_id: str) -> None:
        """The account's transition was announced: take it off the sweeper's list."""
        codec.remove_if_equal(
            self._table,
            {"account": account},
            PENDING,
            transition_id,
            "clear the account's pending announcement",
        )

    # --- reads ----------------------------------------------------------------------------------
    def get(self, account: str) -> AccountRecord | None:
        item = self._table.get_item(Key={"account": account}, ConsistentRead=True).get("Item")
        return account_from_item(item, self._initial_stage) if item else None

    def member_entries(self, account: str, lead_ids: Sequence[str]) -> dict[str, Any]:
        """The account's entries (`m:<lead id>`) of these leads, as stored: what an access request
        exports (the other members' entries are other people's)."""
        if not lead_ids:
            return {}
        names = {f"#m{n}": member_attribute(lead_id) for n, lead_id in enumerate(lead_ids)}
        item = self._table.get_item(
            Key={"account": account},
            ConsistentRead=True,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        ).get("Item")
        return dict(item or {})

    def get_many(self, accounts: Sequence[str]) -> list[AccountRecord]:
        """The accounts that exist, 100 a request (unprocessed keys asked again with backoff)."""
        keys = [{"account": account} for account in dict.fromkeys(accounts)]
        items = codec.batch_get(self._table.meta.client, self._table.name, keys)
        return [account_from_item(item, self._initial_stage) for item in items]

    def ranked(
        self, stage: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[AccountRecord], dict[str, Any] | None]:
        """Accounts of one stage, highest stored score first (KEYS_ONLY index, then the items)."""
        kwargs: dict[str, Any] = {
            "IndexName": "by_stage_score",
            "KeyConditionExpression": "stage = :stage",
            "ExpressionAttributeValues": {":stage": stage},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        response = self._table.query(**kwargs)
        keys = [str(key["account"]) for key in response.get("Items", [])]
        found = {record.account: record for record in self.get_many(keys)}
        return [found[k] for k in keys if k in found], response.get("LastEvaluatedKey")

    def due_for_review(self, shard: str, now: datetime) -> Iterator[str]:
        """Accounts in one shard of the sparse review index whose review time has come."""
        return codec.due_for_review(self._table, "account", shard, now)


# --- the bound -------------------------------------------------------------------------------------
MAX_NUMBER = Decimal("-9.9999999999999999999999999999999999999E+125")
LONGEST_TIME = "2026-01-01T00:00:00.000000Z"


def worst_case_member(definition: AccountModel, model: Any) -> dict[str, Any]:
    """The largest member entry a lead can produce under `model` (the feeding scoring model):
    every engagement accumulator and counter at 38 digits, every attribute the engagement section
    reads at its longest, the longest title and role."""
    from leadscore.domain import MAX_TEXT
    from leadscore.scoring.accounts import SHOWN_TEXT, engagement_inputs

    events, aggregates, names = engagement_inputs(model)
    text = "\U0001f600"
    return {
        "rev": MAX_NUMBER,
        "fit": MAX_NUMBER,
        "title": text * SHOWN_TEXT,
        "role": text * SHOWN_TEXT,
        "acc": dict.fromkeys(events, MAX_NUMBER),
        "n": dict.fromkeys(aggregates, MAX_NUMBER),
        "attrs": dict.fromkeys(names, text * MAX_TEXT),
        "first_seen": LONGEST_TIME,
        "last_active": LONGEST_TIME,
    }


def worst_case_item(definition: AccountModel, model: Any) -> dict[str, Any]:
    """The largest account item: `max_members` members at their largest, with the longest lead ids
    (tombstones are smaller than members and count toward the same bound), a full transition."""
    stage = max((s.name for s in definition.stages), key=len)
    member = worst_case_member(definition, model)
    lead_ids = [f"ld_{n:024x}" for n in range(definition.max_members)]
    item: dict[str, Any] = {
        "account": "a" * 253,
        MEMBER_IDS: set(lead_ids),
        **dict.fromkeys(("revision", "stage_seq", "score", "review_at"), MAX_NUMBER),
        "stage": stage,
        "scored_at": LONGEST_TIME,
        "review_shard": "255",
        PENDING: new_transition_id(),
        "last_transition": {
            "from_stage": stage,
            "to_stage": stage,
            "at": LONGEST_TIME,
            "reason": "threshold",
            "score": MAX_NUMBER,
            "id": new_transition_id(),
        },
    }
    for lead_id in lead_ids:
        item[member_attribute(lead_id)] = member
    return item


def worst_case_size(definition: AccountModel, model: Any) -> int:
    return item_size(worst_case_item(definition, model))
