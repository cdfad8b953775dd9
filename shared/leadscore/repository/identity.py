"""Identity changes: one lead per person across email changes (`email_changed` events).

A lead is keyed by the id of an address. When a person moves from address P to address N, the
lead of N (C = the canonical lead of P; N = the canonical lead of the new address) is folded into
C and stays behind as an alias item, `{lead_id, alias_of: C, aliased_at, merged_at}`, so every
later event for either address scores on C. Three steps, each idempotent, so a retried stream
record finishes a half-done merge whatever step it stopped after:

1. `alias`: one transaction: N gets `alias_of = C` (condition: not an alias yet, or already of
   C) and loses its stage, score and review attributes (it leaves both indexes; its stage and
   transitions are dropped: C's thresholds are re-evaluated by the stream as usual); C is created
   if absent (condition: C is not an alias itself, so two opposite merges can never both win and
   make a loop). From now on N is frozen: every write that adds to a lead is conditioned on
   `attribute_not_exists(alias_of)`, so events for N go to C (`LeadProfiles.apply`).
2. `fold` reads N (consistent; frozen, so what it reads is final) and C, and
3. writes ONE transaction: C gets N's accumulators and counters added (epoch-form sums: addition
   is exact, as two events' `ADD`s are), its active days, attributes where N's are newer (by each
   attribute's `at`), outcomes where N's are newer, the newest address (`email_at` guard), N and
   N's own merged ids in `merged`;
   the `email_changed` event's own effect is added and its ledger item marked applied; N's state
   is removed and N gets `merged_at` (condition: not yet): the once-only guard, on N's item, so
   two change events naming the same addresses fold N once.

The canonical lead keeps its id (the id of the address first folded into), whatever arrival
order: changes a->b and b->c arriving reversed make the chain c -> b -> a, followed (at most
MAX_ALIAS_HOPS) and shortened as it is walked; a change back b->a finds both addresses on one
lead and only moves `email` (if that change is the newer one), so nothing loops. Which lead id
stays canonical can depend on arrival order; scores, counts, attributes and the current address
do not.

Bounds: `merged` and `addresses` keep at most MAX_MERGED lead ids / MAX_MERGED + 1 addresses.
A lead folded from more than that still scores exactly (the state is added whatever happens),
but `merged_overflow` is set: its history and explanations list only the kept leads' events,
and rescoring skips it (counted as incomplete history), as for a lead whose events expired.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field

from leadscore.domain import LeadEvent
from leadscore.errors import StorageUnavailable
from leadscore.repository.codec import Expression, day_number, error_code, iso, storage_error
from leadscore.repository.profiles import (
    ALIAS_OF,
    ATTRIBUTE_PREFIX,
    ATTRIBUTES_AT,
    LIVE,
    MAX_MERGED,
    MERGED_AT,
    OUTCOME,
    OUTCOME_TYPE_PREFIX,
    SLOT_FIELDS,
    LeadProfiles,
    attribute_history,
    check_hop,
    is_tombstone,
)
from leadscore.schema import Model
from leadscore.scoring.engine import EventEffect

MERGED = "merged"
ADDRESSES = "addresses"
EMAIL_AT = "email_at"
OVERFLOW = "merged_overflow"
ALIASED_AT = "aliased_at"
# What an alias item keeps; everything else is folded into its lead and removed.
ALIAS_KEEPS = frozenset({"lead_id", ALIAS_OF, ALIASED_AT, MERGED_AT})
# What puts an item in an index or drives a stage decision: an alias loses it when aliased.
LEAD_ONLY = (*SLOT_FIELDS, "review_shard", "review_at", "rescored_by", "rescore_outcome")
_ATTEMPTS = 8


def stamp_of(event: LeadEvent) -> str:
    return f"{iso(event.occurred_at)}#{event.event_id}"


class FoldPlan(Model):
    """What folding a lead (and an `email_changed` event) into a canonical lead writes to it,
    decided from both items as read: pure, so the arithmetic is unit-tested without storage."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    additions: dict[str, Decimal] = Field(default_factory=dict)  # r:*, n:*, version
    days: set[int] = Field(default_factory=set)
    attributes: dict[str, dict[str, Any]] = Field(default_factory=dict)  # newer than the canonical's
    attributes_at: str | None = None  # newer than the canonical's `attrs_at`
    email: tuple[str, str] | None = None  # (address, stamp) newer than the canonical's `email_at`
    outcome_times: dict[str, str] = Field(default_factory=dict)  # oc:<type> newer than the canonical's
    latest_outcome: dict[str, Any] | None = None  # `outcome` newer than the canonical's
    created_at: str | None = None  # earlier than the canonical's
    merged: list[str] = Field(default_factory=list)  # lead ids to add to `merged`
    addresses: list[str] = Field(default_factory=list)  # addresses to add to `addresses`
    overflow: bool = False


def _number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def plan_fold(
    canonical_id: str,
    canonical: Mapping[str, Any],
    folded_id: str | None,
    folded: Mapping[str, Any] | None,
    event: LeadEvent | None,
    effect: EventEffect | None,
    max_merged: int = MAX_MERGED,
) -> FoldPlan:
    """Fold `folded` (the item of lead `folded_id`, None when only the event is applied) and the
    `email_changed` event (None when finishing a fold another change started) into `canonical`:
    exactly what one lead that had received all their events would hold (sums add, days unite,
    latest attribute and address win)."""
    folded = folded or {}
    stamp = stamp_of(event) if event is not None else ""
    effect = effect or EventEffect(active=False)
    additions: dict[str, Decimal] = {}
    for key, amount in [
        *((f"r:{k}", v) for k, v in effect.accumulators.items()),
        *((f"n:{k}", v) for k, v in effect.counts.items()),
        *([("version", 1)] if event is not None else []),
        *((k, v) for k, v in folded.items() if k.startswith(("r:", "n:")) or k == "version"),
    ]:
        additions[key] = additions.get(key, Decimal(0)) + _number(amount)
    days = {int(d) for d in folded.get("days") or ()}
    if event is not None and effect.active:
        days.add(day_number(event.occurred_at))

    theirs = attribute_history(folded)
    for name, value in effect.attributes.items():
        if name not in theirs or theirs[name]["at"] < stamp:
            theirs[name] = {"at": stamp, "v": value}
    ours = attribute_history(canonical)
    attributes = {n: e for n, e in theirs.items() if n not in ours or ours[n]["at"] < e["at"]}
    stamps = [str(folded[ATTRIBUTES_AT])] if ATTRIBUTES_AT in folded else []
    newest_attributes = max([*stamps, stamp] if effect.attributes else stamps, default=None)
    if newest_attributes is not None and str(canonical.get(ATTRIBUTES_AT, "")) >= newest_attributes:
        newest_attributes = None

    candidates = [(event.email, stamp)] if event is not None else []
    if folded.get(EMAIL_AT) and folded.get("email"):
        candidates.append((str(folded["email"]), str(folded[EMAIL_AT])))
    email = max(candidates, key=lambda c: c[1], default=None)
    if email is not None and str(canonical.get(EMAIL_AT, "")) >= email[1]:
        email = None
    outcome_times = {
        key: str(value)
        for key, value in folded.items()
        if key.startswith(OUTCOME_TYPE_PREFIX) and str(canonical.get(key, "")) < str(value)
    }
    theirs_latest, ours_latest = folded.get(OUTCOME), canonical.get(OUTCOME)
    latest_outcome = (
        dict(theirs_latest)
        if isinstance(theirs_latest, Mapping)
        and str((ours_latest if isinstance(ours_latest, Mapping) else {}).get("at", ""))
        < str(theirs_latest.get("at"))
        else None
    )
    created = folded.get("created_at")
    created_at = str(created) if created and str(created) < str(canonical.get("created_at") or "~") else None

    have_merged = {str(i) for i in canonical.get(MERGED) or ()}
    joining = [i for i in [folded_id, *sorted(str(i) for i in folded.get(MERGED) or ())] if i]
    joining = [i for i in dict.fromkeys(joining) if i not in have_merged and i != canonical_id]
    room = max(0, max_merged - len(have_merged))
    have_addresses = {str(a) for a in canonical.get(ADDRESSES) or ()}
    joining_addresses = {event.email, event.previous_email or event.email} if event is not None else set()
    if not have_addresses and canonical.get("email"):  # its first change: its own address too
        joining_addresses.add(str(canonical["email"]))
    joining_addresses |= {str(a) for a in folded.get(ADDRESSES) or ()}
    if folded.get("email"):
        joining_addresses.add(str(folded["email"]))
    new_addresses = sorted(joining_addresses - have_addresses)
    address_room = max(0, max_merged + 1 - len(have_addresses))
    overflow = (
        len(joining) > room or len(new_addresses) > address_room or bool(folded.get(OVERFLOW))
    ) and not canonical.get(OVERFLOW)
    return FoldPlan(
        additions=additions,
        days=days,
        attributes=attributes,
        attributes_at=newest_attributes,
        email=email,
        outcome_times=outcome_times,
        latest_outcome=latest_outcome,
        created_at=created_at,
        merged=joining[:room],
        addresses=new_addresses[:address_room],
        overflow=overflow,
    )


class IdentityMerges:
    """Applies `email_changed` events: aliases, folds, and the walk from an address to its lead."""

    def __init__(self, profiles: LeadProfiles) -> None:
        self._profiles = profiles
        self._table = profiles.table
        self._client = self._table.meta.client
        self._ledger = profiles.ledger

    # --- resolving ---------------------------------------------------------------------------
    def _item(self, lead_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"lead_id": lead_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def resolve(self, lead_id: str) -> tuple[str, dict[str, Any] | None, str | None]:
        """(canonical lead id, its item or None if absent, the first alias on the way whose state
        is not folded yet: a merge that stopped after step 1). Shortens the walked chain."""
        path: list[tuple[str, bool]] = []
        current, item = lead_id, self._item(lead_id)
        unfolded: str | None = None
        while item is not None and ALIAS_OF in item:
            folded = MERGED_AT in item
            if not folded and unfolded is None:
                unfolded = current
            path.append((current, folded))
            target = str(item[ALIAS_OF])
            check_hop(lead_id, [lead for lead, _ in path], target)
            current, item = target, self._item(target)
        if len(path) > 1:
            self._profiles.shorten([*path, (current, False)])
        return current, item, unfolded

    # --- applying a change -------------------------------------------------------------------
    def change_email(
        self, event: LeadEvent, previous_lead_id: str, effect: EventEffect, now: datetime
    ) -> bool:
        """Apply one `email_changed` event (its ledger item is at the new address's lead id).
        Returns False when it had been applied before."""
        assert event.previous_email is not None
        for _ in range(_ATTEMPTS):
            new_lead, new_item, unfolded = self.resolve(event.lead_id)
            if unfolded is not None:
                # A merge stopped after step 1 (this change's, retried, or another's): finish it
                # first, then apply this change to the leads as they are.
                self.fold(None, None, unfolded, now)
                continue
            lead, item, _ = self.resolve(previous_lead_id)
            if any(found is not None and is_tombstone(found) for found in (new_item, item)):
                # One of the addresses belongs to an erased person: an address change is no
                # opt-in, so it is dropped like any other event for them (see LeadProfiles.apply).
                self._ledger.forget(event.lead_id, event.event_id)
                return False
            if lead == new_lead:  # one lead already (a repeat, or a change back)
                result = self._write(event, effect, lead, item or {}, None, None, None, now)
            elif self.alias(new_lead, lead, event.previous_email, now):
                result = self.fold(event, effect, new_lead, now)
            else:
                result = None
            if result is not None:
                return result
        raise StorageUnavailable("could not apply the email change (busy leads); please retry")

    def alias(self, lead_id: str, into: str, into_email: str, now: datetime) -> bool:
        """Step 1: make `lead_id` an alias of `into` (created if absent). False when either moved
        first (`into` became an alias, or `lead_id` an alias of another lead): resolve again."""
        target = Expression()
        self._profiles.new_lead_defaults(target, into, now, email=into_email, touch=False)
        alias = Expression()
        pointer = alias.set(ALIAS_OF, into)
        alias.set(ALIASED_AT, iso(now), if_missing=True)
        for name in LEAD_ONLY:
            alias.remove(name)
        condition = f"attribute_not_exists({pointer}) OR {pointer} = {alias.value(into)}"
        items = [self._update(into, target, LIVE), self._update(lead_id, alias, condition)]
        return self._transact(items, "alias a lead") is True

    def fold(
        self, event: LeadEvent | None, effect: EventEffect | None, alias_id: str, now: datetime
    ) -> bool | None:
        """Steps 2 and 3: fold the alias `alias_id` into its lead, once, with the change event
        (None: finish a fold a stopped merge left). None when a concurrent write got in the way
        (resolve and try again)."""
        alias = self._item(alias_id)
        if alias is None or ALIAS_OF not in alias:
            return None  # step 1 has not happened: start over
        pointed = str(alias[ALIAS_OF])
        lead, item, _ = self.resolve(pointed)
        if MERGED_AT in alias:  # folded already (by another change naming it): apply the event only
            if event is None:
                return False
            return self._write(event, effect, lead, item or {}, None, None, None, now)
        return self._write(event, effect, lead, item or {}, alias_id, alias, pointed, now)

    def _write(
        self,
        event: LeadEvent | None,
        effect: EventEffect | None,
        lead: str,
        item: Mapping[str, Any],
        alias_id: str | None,
        alias: Mapping[str, Any] | None,
        pointed: str | None,
        now: datetime,
    ) -> bool | None:
        plan = plan_fold(lead, item, alias_id, alias, event, effect)
        items = [] if event is None else [self._ledger.mark_applied(event.lead_id, event.event_id, now)]
        email = event.email if event is not None else None
        items.append(self._update(lead, *self._lead_update(lead, item, plan, email, now)))
        if alias_id is not None and alias is not None:
            expr = Expression()
            expr.set(MERGED_AT, iso(now))
            for name in sorted(set(alias) - ALIAS_KEEPS):
                expr.remove(name)
            once = f"attribute_not_exists({expr.name(MERGED_AT)})"
            guard = f"{expr.name(ALIAS_OF)} = {expr.value(pointed)} AND {once}"
            items.append(self._update(alias_id, expr, guard))
        return self._transact(items, "fold a lead")

    def _lead_update(
        self, lead: str, item: Mapping[str, Any], plan: FoldPlan, event_email: str | None, now: datetime
    ) -> tuple[Expression, str]:
        expr = Expression()
        self._profiles.new_lead_defaults(
            expr, lead, now, email=None if plan.email else event_email, created_at=plan.created_at is None
        )
        conditions = [LIVE]
        for key, amount in sorted(plan.additions.items()):
            expr.add(key, amount)
        if plan.days:
            expr.add("days", plan.days)
        expr.add("revision", 1)
        for name, entry in sorted(plan.attributes.items()):
            attribute = expr.set(f"{ATTRIBUTE_PREFIX}{name}", entry)
            older = f"{attribute}.{expr.name('at')} < {expr.value(entry['at'])}"
            conditions.append(f"(attribute_not_exists({attribute}) OR {older})")
        if plan.attributes_at is not None:
            newest = expr.set(ATTRIBUTES_AT, plan.attributes_at)
            conditions.append(
                f"(attribute_not_exists({newest}) OR {newest} < {expr.value(plan.attributes_at)})"
            )
        if plan.email is not None:
            expr.set("email", plan.email[0])
            email_at = expr.set(EMAIL_AT, plan.email[1])
            conditions.append(
                f"(attribute_not_exists({email_at}) OR {email_at} < {expr.value(plan.email[1])})"
            )
        for name, stamp in sorted(plan.outcome_times.items()):  # sales' verdicts: the latest wins
            attribute = expr.set(name, stamp)
            conditions.append(f"(attribute_not_exists({attribute}) OR {attribute} < {expr.value(stamp)})")
        if plan.latest_outcome is not None:
            latest = expr.set(OUTCOME, plan.latest_outcome)
            older = f"{latest}.{expr.name('at')} < {expr.value(plan.latest_outcome['at'])}"
            conditions.append(f"(attribute_not_exists({latest}) OR {older})")
        if plan.created_at is not None:
            expr.set("created_at", plan.created_at)
        for attribute, joining in ((MERGED, plan.merged), (ADDRESSES, plan.addresses)):
            if joining:  # sizes as read: a concurrent fold into this lead makes this one retry
                expr.add(attribute, set(joining))
                name, size = expr.name(attribute), len(item.get(attribute) or ())
                conditions.append(
                    f"size({name}) = {expr.value(size)}" if size else f"attribute_not_exists({name})"
                )
        if plan.overflow:
            expr.set(OVERFLOW, True)
        return expr, " AND ".join(conditions)

    # --- writing -----------------------------------------------------------------------------
    def _update(self, lead_id: str, expr: Expression, condition: str) -> dict[str, Any]:
        return {
            "Update": {"TableName": self._table.name, "Key": {"lead_id": lead_id}, **expr.kwargs(condition)}
        }

    def _transact(self, items: list[dict[str, Any]], action: str) -> bool | None:
        """True: written. False: the first item (a ledger marker) was applied before. None: a
        condition on a lead failed (someone moved first) or conflicts persisted: start over."""
        for attempt in range(_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return True
            except ClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if error_code(exc) != "TransactionCanceledException" or len(reasons) != len(items):
                    raise storage_error(action, exc) from exc
                if "ConditionalCheckFailed" in reasons:
                    marker = "Key" in items[0]["Update"] and "event_id" in items[0]["Update"]["Key"]
                    return False if marker and reasons[0] == "ConditionalCheckFailed" else None
                if "TransactionConflict" not in reasons:
                    raise storage_error(action, exc) from exc
                time.sleep(0.05 * 2 ** min(attempt, 4))
        return None
