"""Everything stored about one lead, across every table: found (for an export) and erased.

What names a lead, and where:
  ledger        partition `lead_id` (events: email, attributes), and those of the leads merged into it
  profiles      the profile at `lead_id`; alias items at each id of its `merged` set
  identity      reverse entries `pk="lead#<lead id>", sk="ext#<hash>"`; for each, the partition
                `pk="ext#<hash>"`: its link (`sk="link"`: lead_id, email) and parked events
  idempotency   one Powertools record per announced transition (key: `announcement_record_key` of
                the ids the profile lists: `profiles.transition_ids`)
  rate limits   per-lead counters of public forms: `form#lead#<window>#<site>#<lead id>#<n>`
  ranks         partition `lead_id`: one item per model of a catalog (other than the primary one)
                that ranks the lead (`repository.ranks`)

Erasure is one call, idempotent and resumable: the profile is first replaced by a tombstone that
still holds the work list (`erase_pending`: merged lead ids and transition ids, opaque values), so
ingestion honours it from that moment and a call interrupted half way finishes on the next try;
the list is removed last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from leadscore.errors import LeadScoreError, StorageUnavailable
from leadscore.notifications import announcement_record_key
from leadscore.repository.codec import condition_failed, iso, storage_error
from leadscore.repository.profiles import ERASE_PENDING, ERASED, is_tombstone, transition_ids
from leadscore.repository.ranks import LeadRanks
from leadscore.schema import Model

ALIAS_OF = "alias_of"
MERGED = "merged"
MAX_ALIAS_HOPS = 8
TIME_RESERVE_SECONDS = 3.0  # stop deleting while the answer can still be sent


class ErasureIncomplete(StorageUnavailable):
    """The time ran out before everything was deleted (a lead with very many events): the tombstone
    is in place and keeps the work list; calling again finishes."""

    code = "erasure_incomplete"


class AliasChainError(LeadScoreError):
    status = 409
    code = "alias_chain"


class ErasureCounts(Model):
    """How many items each part of an erasure deleted (0 everywhere for an already erased lead)."""

    profiles: int = 0
    aliases: int = 0
    ledger_events: int = 0
    identity_links: int = 0
    identity_entries: int = 0
    parked_events: int = 0
    notification_records: int = 0
    rate_limit_counters: int = 0
    rank_entries: int = 0


class ErasureOutcome(Model):
    deleted: ErasureCounts
    existed: bool  # something of the lead was stored before the call
    already_erased: bool  # its tombstone was there before the call
    erased_at: str  # the tombstone's time: the first erasure's


class StoredRecords(Model):
    """Raw items (as the resource layer reads them) of one lead, table by table."""

    lead_id: str
    profile: dict[str, Any] | None
    aliases: list[dict[str, Any]]
    merged: list[str]
    ledger: list[dict[str, Any]]
    identity: list[dict[str, Any]]
    notification_records: list[dict[str, Any]]
    rate_limit_counters: list[dict[str, Any]]
    rank_entries: list[dict[str, Any]] = []


class PersonalRecords:
    """Finds and erases a lead's items in the ledger, profiles, identity, idempotency and rate-limit
    tables. Reads are consistent; deletes are paged batches, so any number of events is erased."""

    def __init__(
        self,
        *,
        ledger_table: str,
        profiles_table: str,
        identity_table: str,
        idempotency_table: str,
        rate_limit_table: str,
        ranks_table: str | None = None,
        dynamodb: Any | None = None,
    ) -> None:
        resource = dynamodb or boto3.resource("dynamodb")
        self._time_left: Callable[[], float] | None = None
        self._ledger = resource.Table(ledger_table)
        self._profiles = resource.Table(profiles_table)
        self._identity = resource.Table(identity_table)
        self._idempotency = resource.Table(idempotency_table)
        self._rate_limits = resource.Table(rate_limit_table)
        # a deployment without the table has no rank entries (one model ranks in the profiles)
        self._ranks = LeadRanks(ranks_table, resource) if ranks_table else None

    # --- reading ------------------------------------------------------------------------------
    def profile_item(self, lead_id: str) -> dict[str, Any] | None:
        item = self._profiles.get_item(Key={"lead_id": lead_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def canonical(self, lead_id: str) -> tuple[str, dict[str, Any] | None]:
        """The lead an id stands for (an alias item's `alias_of`, followed) and its item."""
        seen = [lead_id]
        item = self.profile_item(lead_id)
        while item is not None and item.get(ALIAS_OF) and not is_tombstone(item):
            target = str(item[ALIAS_OF])
            if target in seen or len(seen) > MAX_ALIAS_HOPS:
                raise AliasChainError(
                    f"lead {lead_id} is an alias in a cycle or a chain over {MAX_ALIAS_HOPS} leads"
                )
            seen.append(target)
            item = self.profile_item(target)
        return seen[-1], item

    def stored(self, lead_id: str) -> StoredRecords:
        """Everything stored about the lead (`lead_id` already canonical) and its merged leads."""
        profile = self.profile_item(lead_id)
        merged = sorted(_merged_of(profile))
        leads = [lead_id, *merged]
        aliases = [item for m in merged if (item := self.profile_item(m)) is not None]
        transitions = transition_ids(profile or {})
        return StoredRecords(
            lead_id=lead_id,
            profile=profile,
            aliases=aliases,
            merged=merged,
            ledger=[item for lead in leads for item in self._ledger_items(lead)],
            identity=[item for lead in leads for item in self._identity_items(lead)],
            notification_records=self._announcement_records(transitions),
            rate_limit_counters=list(self._rate_limit_counters(leads)),
            rank_entries=[item for lead in leads for item in self._ranks.entries(lead)]
            if self._ranks
            else [],
        )

    def _ledger_items(self, lead_id: str, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("lead_id").eq(lead_id),
            "ConsistentRead": True,
        }
        if keys_only:
            kwargs["ProjectionExpression"] = "lead_id, event_id"
        yield from _paged(self._ledger.query, kwargs)

    def _identity_items(self, lead_id: str) -> Iterator[dict[str, Any]]:
        """The lead's reverse entries, then each external id's partition (link, parked events)."""
        for entry in self._reverse_entries(lead_id):
            yield entry
            # a shared browser's link (or first link) naming another person is theirs, not this lead's
            yield from (
                item
                for item in self._ext_partition(str(entry["sk"]))
                if item.get("lead_id") in (None, lead_id)
            )

    def _reverse_entries(self, lead_id: str) -> Iterator[dict[str, Any]]:
        query = {"KeyConditionExpression": Key("pk").eq(f"lead#{lead_id}"), "ConsistentRead": True}
        yield from _paged(self._identity.query, query)

    def _ext_partition(self, ext: str) -> Iterator[dict[str, Any]]:
        yield from _paged(
            self._identity.query, {"KeyConditionExpression": Key("pk").eq(ext), "ConsistentRead": True}
        )

    def _announcement_records(self, transitions: Iterable[str]) -> list[dict[str, Any]]:
        found = []
        for transition_id in sorted(transitions):
            key = {"id": announcement_record_key(transition_id)}
            item = self._idempotency.get_item(Key=key, ConsistentRead=True).get("Item")
            if item:
                found.append(dict(item))
        return found

    def _rate_limit_counters(self, lead_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Per-lead form counters name the lead id in their key. The table holds only live windows
        (a day at most, TTL), so a filtered scan is small; an erasure is an operator's action."""
        condition = None
        for lead_id in lead_ids:
            clause = Attr("pk").begins_with("form#lead#") & Attr("pk").contains(f"#{lead_id}#")
            condition = clause if condition is None else condition | clause
        yield from _paged(self._rate_limits.scan, {"FilterExpression": condition, "ConsistentRead": True})

    # --- erasing ------------------------------------------------------------------------------
    def erase(
        self, lead_id: str, at: datetime, time_left: Callable[[], float] | None = None
    ) -> ErasureOutcome:
        """Erase the lead (`lead_id` already canonical) and its merged leads, leaving tombstones.
        Raises ErasureIncomplete when `time_left` (seconds) runs low first."""
        self._time_left = time_left
        counts = ErasureCounts()
        profile = self.profile_item(lead_id)
        erased_at = iso(at)
        if profile is not None and is_tombstone(profile):
            pending = profile.get(ERASE_PENDING) or {}
            merged, transitions = set(pending.get("leads") or ()), set(pending.get("transitions") or ())
            erased_at = str(profile[ERASED])
        else:
            merged, transitions = _merged_of(profile), transition_ids(profile or {})
            work = {k: v for k, v in (("leads", merged), ("transitions", transitions)) if v}
            tombstone: dict[str, Any] = {"lead_id": lead_id, ERASED: erased_at}
            if work:
                tombstone[ERASE_PENDING] = work
            self._profiles.put_item(Item=tombstone)  # ingestion honours it from now on
            counts.profiles += profile is not None
        for lead in [lead_id, *sorted(merged)]:  # before the links go: none is written again
            self._mark_erased(lead, erased_at)
        for merged_id in sorted(merged):
            counts.aliases += self._replace_with_tombstone(merged_id, at)
        for lead in [lead_id, *sorted(merged)]:
            counts.ledger_events += self._delete_ledger_partition(lead)
            self._erase_identity(lead, counts)
        counts.notification_records += self._delete_announcement_records(transitions)
        counts.rate_limit_counters += self._delete_rate_limit_counters([lead_id, *merged])
        if self._ranks:  # after the tombstone: no stage decision ranks the lead again
            counts.rank_entries += sum(self._ranks.erase(lead) for lead in [lead_id, *sorted(merged)])
        self._finish(lead_id)
        already = profile is not None and is_tombstone(profile)
        found = profile is not None and (not already or ERASE_PENDING in profile)
        return ErasureOutcome(
            deleted=counts,
            existed=found or any(counts.model_dump().values()),
            already_erased=already,
            erased_at=erased_at,
        )

    def _mark_erased(self, lead_id: str, erased_at: str) -> None:
        """The identity table's own tombstone (`IdentityStore.link` checks it): the keyed id only."""
        try:
            self._identity.put_item(Item={"pk": f"erased#{lead_id}", "sk": "erased", "erased_at": erased_at})
        except ClientError as exc:
            raise storage_error("mark the lead erased", exc) from exc

    def _replace_with_tombstone(self, lead_id: str, at: datetime) -> int:
        """Put a tombstone where a merged lead's alias item is (an erased person's old address is
        not re-created either); 1 if an item was replaced, 0 if it was a tombstone already (kept,
        with its first erasure time)."""
        try:
            old = self._profiles.put_item(
                Item={"lead_id": lead_id, ERASED: iso(at)},
                ConditionExpression="attribute_not_exists(#erased)",
                ExpressionAttributeNames={"#erased": ERASED},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return 0
            raise storage_error("erase a merged lead", exc) from exc
        return int(bool(old.get("Attributes")))

    def _delete_ledger_partition(self, lead_id: str) -> int:
        deleted = 0
        with self._ledger.batch_writer() as batch:
            for item in self._ledger_items(lead_id, keys_only=True):
                batch.delete_item(Key={"lead_id": item["lead_id"], "event_id": item["event_id"]})
                deleted += 1
                if deleted % 100 == 0 and self._time_left and self._time_left() < TIME_RESERVE_SECONDS:
                    raise ErasureIncomplete(
                        f"erasure in progress: {deleted} more events deleted; call again to finish"
                    )
        return deleted

    def _erase_identity(self, lead_id: str, counts: ErasureCounts) -> None:
        for entry in list(self._reverse_entries(lead_id)):
            ext = str(entry["sk"])
            for item in list(self._ext_partition(ext)):
                sk = str(item["sk"])
                if sk == "link" and item.get("lead_id") not in (None, lead_id):
                    continue  # the id was linked to another lead since: that link is not ours
                self._identity.delete_item(Key={"pk": ext, "sk": sk})
                if sk == "link":
                    counts.identity_links += 1
                elif sk.startswith("parked#"):
                    counts.parked_events += 1
                else:
                    counts.identity_entries += 1
            self._identity.delete_item(Key={"pk": entry["pk"], "sk": entry["sk"]})
            counts.identity_entries += 1

    def _delete_announcement_records(self, transitions: Iterable[str]) -> int:
        deleted = 0
        for transition_id in sorted(transitions):
            old = self._idempotency.delete_item(
                Key={"id": announcement_record_key(transition_id)}, ReturnValues="ALL_OLD"
            )
            deleted += bool(old.get("Attributes"))
        return deleted

    def _delete_rate_limit_counters(self, lead_ids: list[str]) -> int:
        deleted = 0
        for item in list(self._rate_limit_counters(lead_ids)):
            self._rate_limits.delete_item(Key={"pk": item["pk"]})
            deleted += 1
        return deleted

    def _finish(self, lead_id: str) -> None:
        """Drop the work list: the tombstone is `{lead_id, erased_at}` again. Not if an opt-in
        re-created the lead meanwhile (then there is no tombstone to finish)."""
        try:
            self._profiles.update_item(
                Key={"lead_id": lead_id},
                UpdateExpression="REMOVE #pending",
                ConditionExpression="attribute_exists(#erased)",
                ExpressionAttributeNames={"#pending": ERASE_PENDING, "#erased": ERASED},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error("finish the erasure", exc) from exc


def _merged_of(profile: Mapping[str, Any] | None) -> set[str]:
    return {str(m) for m in (profile or {}).get(MERGED) or ()}


def _paged(operation: Any, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kwargs = dict(kwargs)
    while True:
        response = operation(**kwargs)
        for item in response.get("Items", []):
            yield dict(item)
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
