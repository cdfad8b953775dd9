"""Lead profiles: one item per lead, the only place that reads and writes them.

Recording an event (`LeadProfiles.apply`) is one transaction of two updates and no read: the
ledger item is marked applied (only if it was not yet: that is the retry guard, kept as long as
the event) and the profile gets the event's additions (`ADD` to per-rule accumulators and
counters), so concurrent and re-delivered events never lose or double an update.

Item layout (attribute names), every part bounded whatever arrives:
  r:<rule id>       event-rule accumulator, "points at the model epoch" (one per event rule)
  n:<key>           counters: n:type:<event type>, n:<aggregate rule id> (one per type and rule)
  attr:<name>       latest value of one attribute: {"at": "<time>#<event id>", "v": value}; only
                    the standard lead fields and those the model reads (`engine.profile_attributes`)
  attrs_at          "<time>#<event id>" of the newest attribute-carrying event applied (guard)
  days              set of active days (days since 1970-01-01); guarded saves keep the first and
                    last only
  version           number of events applied
  revision          changes with every write of scoring state (the optimistic lock of deciders)
  stage, stage_seq, score, fit, engagement, negative, grade, scored_at, model_version,
  last_transition   written by threshold evaluation, decay and rescoring
  announce_pending  id of the last transition until it is announced (the sweeper's work list)
  review_shard, review_at   sparse `review_due` index of leads whose score can still change
  recent_transitions  "<time>#<transition id>" of the transitions of the last 30 days (at most 50):
                    what an erasure needs to find their announcements' idempotency records
  email_at          "<time>#<event id>" of the newest `email_changed` that set `email` (guard)
  outcome           sales' latest verdict: {"at": "<time>#<event id>", "v": outcome type}; the
                    latest occurred_at wins whatever the arrival order (like attributes)
  oc:<outcome type> "<time>#<event id>" of the latest outcome of that type (one per outcome type)
  outcome_event     {"id", "type", "at"} of the outcome event the last outcome write applied:
                    the profile stream's cue to announce it (`pipeline.on_profile_change`)
  outcome_pending   the id of `outcome_event` until it is announced (the sweeper's work list)
  <field>@<model>   a catalog's other models (`scoring.catalog`): the same accumulators, counters
                    and stage fields (stage, stage_seq, score, fit, engagement, negative, grade,
                    scored_at, model_version, last_transition, announce_pending) under the model's
                    suffix; the primary model uses the plain names above. Bounded by the catalog.
  merged            set of lead ids folded into this lead (at most MAX_MERGED; see
                    `repository.identity`), `merged_overflow` once more were folded
  addresses         set of the lead's email addresses once it changed address (same bound)
An alias item (an address the lead left, or one that joined it) holds only lead_id, `alias_of`
(the lead id it was folded into), aliased_at and merged_at: no stage, score or review attributes,
so it is in neither index, and every write that adds to a lead is conditioned on
`attribute_not_exists(alias_of)` (an alias is frozen; events for it go to its canonical lead).
A tombstone is the item of an erased lead: `{lead_id, erased_at}` and nothing else (the id is
keyed, so it reveals nothing). Events are applied to a lead only while it is not a tombstone;
see `LeadProfiles.apply` for what happens to the others.
Items written before this layout may still hold `a:<time>#<event>` snapshots, an `attrs` map and
`seen:<day>` sets: they are read, and folded away by the next guarded save.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field

from leadscore.config import ConfigurationError
from leadscore.domain import (
    MAX_TEXT,
    OUTCOME_EVENT_TYPES,
    AttributeValue,
    EventType,
    LeadEvent,
    opts_in,
)
from leadscore.errors import IdentityChainBroken, StorageUnavailable
from leadscore.repository import codec
from leadscore.repository.codec import (
    Expression,
    condition_failed,
    day_number,
    error_code,
    from_dynamo,
    iso,
    parse_iso,
    storage_error,
)
from leadscore.repository.ledger import EventLedger
from leadscore.repository.ranks import rank_delete, rank_put
from leadscore.repository.sizes import item_size
from leadscore.schema import Model
from leadscore.scoring.catalog import Catalog, applicability_counter
from leadscore.scoring.engine import EventEffect, LeadState
from leadscore.scoring.model import AggregateRule, EventRule, ScoringModel

ATTRIBUTE_PREFIX = "attr:"
ATTRIBUTES_AT = "attrs_at"
PENDING = "announce_pending"
LEGACY_SNAPSHOT_PREFIX = "a:"
LEGACY_MERGED_ATTRIBUTES = "attrs"
LEGACY_SEEN_PREFIX = "seen:"
ALIAS_OF = "alias_of"
OUTCOME = "outcome"
OUTCOME_TYPE_PREFIX = "oc:"
OUTCOME_EVENT = "outcome_event"
OUTCOME_PENDING = "outcome_pending"
MERGED_AT = "merged_at"  # on an alias: when its state was folded into the lead it points to
NOT_ALIAS = f"attribute_not_exists({ALIAS_OF})"
# Merges point an address at a canonical lead; reversed arrivals can chain aliases, and following
# one compresses it, so a longer chain means damaged data, reported instead of followed.
MAX_ALIAS_HOPS = 8
# Lead ids a lead keeps in `merged` (and addresses, one more, in `addresses`): see repository.identity.
MAX_MERGED = 50
ERASED = "erased_at"
ERASE_PENDING = "erase_pending"  # a tombstone's work list while its erasure runs
NOT_ERASED = f"attribute_not_exists({ERASED})"
LIVE = f"{NOT_ALIAS} AND {NOT_ERASED}"  # a lead that takes events: neither an alias nor erased
RECENT_TRANSITIONS = "recent_transitions"
RECENT_TRANSITIONS_KEPT = timedelta(days=30)  # idempotency records live 7 days, plus TTL's lag
MAX_RECENT_TRANSITIONS = 50
_CONFLICT_RETRIES = 5
_TOMBSTONE_RACES = 3


def review_shard_for(lead_id: str, shards: int) -> str:
    return str(int(hashlib.sha256(lead_id.encode()).hexdigest()[:8], 16) % shards)


def is_tombstone(item: Mapping[str, Any]) -> bool:
    """The item of an erased lead (`{lead_id, erased_at}`)."""
    return ERASED in item


def new_transition_id() -> str:
    """Unique for all time (a lead deleted and re-created starts its stage sequence again)."""
    return f"tr_{uuid.uuid4().hex}"


class Transition(Model):
    model_config = ConfigDict(frozen=True)

    from_stage: str
    to_stage: str
    at: datetime
    reason: str  # "threshold", "decay" or "rescore"
    score: float
    id: str = Field(default_factory=new_transition_id)


# A model's stage fields: the primary model's under these names, another model's with "@<id>".
SLOT_FIELDS = (
    "stage",
    "stage_seq",
    "score",
    "fit",
    "engagement",
    "negative",
    "grade",
    "scored_at",
    "model_version",
    "last_transition",
    PENDING,
)
SLOT_SEPARATOR = "@"


class ModelSlot(Model):
    """One model's stage bookkeeping on a lead (see SLOT_FIELDS); `None` stage: never decided."""

    model_config = ConfigDict(frozen=True)

    stage: str | None = None
    stage_seq: int = 0
    score: float | None = None
    last_transition: Transition | None = None
    announce_pending: str | None = None


class OutcomeMark(Model):
    """One outcome event as the profile keeps it: which verdict, when, and its event id."""

    model_config = ConfigDict(frozen=True)

    outcome: EventType
    at: datetime
    event_id: str


def _mark(outcome: object, stamp: object) -> OutcomeMark | None:
    """An outcome and its "<time>#<event id>" stamp, decoded (None for anything unreadable)."""
    at, _, event_id = str(stamp).rpartition("#")
    try:
        return OutcomeMark(outcome=EventType(str(outcome)), at=parse_iso(at), event_id=event_id)
    except ValueError:
        return None


def outcome_marks(
    data: Mapping[str, Any],
) -> tuple[OutcomeMark | None, dict[str, OutcomeMark], OutcomeMark | None]:
    """(latest outcome, latest outcome per type, the outcome the last outcome write applied) of a
    deserialized profile item."""
    latest_entry = data.get(OUTCOME)
    latest = (
        _mark(latest_entry.get("v"), latest_entry.get("at")) if isinstance(latest_entry, Mapping) else None
    )
    by_type: dict[str, OutcomeMark] = {}
    for key, value in data.items():
        if key.startswith(OUTCOME_TYPE_PREFIX):
            mark = _mark(key[len(OUTCOME_TYPE_PREFIX) :], value)
            if mark is not None:
                by_type[mark.outcome.value] = mark
    applied_entry = data.get(OUTCOME_EVENT)
    applied = (
        _mark(applied_entry.get("type"), f"{applied_entry.get('at')}#{applied_entry.get('id')}")
        if isinstance(applied_entry, Mapping)
        else None
    )
    return latest, by_type, applied


class LeadProfile(Model):
    """A lead profile item, decoded: the engine's `LeadState` plus stage bookkeeping."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    state: LeadState
    stage: str
    stage_seq: int = 0
    version: int = 0
    revision: int = 0
    score: float = 0.0
    fit: float | None = None
    engagement: float | None = None
    negative: float | None = None
    grade: str | None = None
    scored_at: datetime | None = None
    model_version: str | None = None
    created_at: datetime | None = None
    last_transition: Transition | None = None
    announce_pending: str | None = None
    review_at: datetime | None = None
    rescored_by: str | None = None
    rescore_outcome: dict[str, Any] | None = None
    days: list[int] = Field(default_factory=list)
    recent_transitions: list[str] = Field(default_factory=list)  # "<time>#<transition id>"
    legacy_keys: list[str] = Field(default_factory=list)
    attribute_times: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alias_of: str | None = None  # an alias item: the lead it was folded into (nothing else is set)
    merged: list[str] = Field(default_factory=list)  # lead ids folded into this lead
    merged_overflow: bool = False  # more were folded than `merged` keeps: its history is partial
    addresses: list[str] = Field(default_factory=list)  # every address, once the lead changed one
    last_outcome: OutcomeMark | None = None  # sales' latest verdict
    outcomes: dict[str, OutcomeMark] = Field(default_factory=dict)  # outcome type -> its latest
    outcome_event: OutcomeMark | None = None  # the outcome applied by the last outcome write
    outcome_pending: str | None = None  # its event id until it is announced
    slots: dict[str, ModelSlot] = Field(default_factory=dict)  # other models' stages, by model id

    def slot(self, model_id: str | None) -> ModelSlot:
        """A model's stage bookkeeping: None for the primary model (the plain fields)."""
        if model_id is None:
            return ModelSlot(
                stage=self.stage,
                stage_seq=self.stage_seq,
                score=self.score,
                last_transition=self.last_transition,
                announce_pending=self.announce_pending,
            )
        return self.slots.get(model_id) or ModelSlot()


def _slots(data: Mapping[str, Any], lead_id: str) -> dict[str, ModelSlot]:
    """The other models' stage fields of a deserialized item, by model id."""
    fields: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        name, separator, model_id = key.partition(SLOT_SEPARATOR)
        if separator and name in SLOT_FIELDS and model_id:
            fields.setdefault(model_id, {})[name] = value
    slots: dict[str, ModelSlot] = {}
    for model_id, found in fields.items():
        seq = int(found.get("stage_seq", 0))
        transition = found.get("last_transition")
        slots[model_id] = ModelSlot(
            stage=found.get("stage"),
            stage_seq=seq,
            score=float(found["score"]) if found.get("score") is not None else None,
            last_transition=(
                _transition(transition, lead_id, seq) if isinstance(transition, Mapping) else None
            ),
            announce_pending=found.get(PENDING),
        )
    return slots


def attribute_history(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each attribute's latest value with its time ({"at", "v"}): the latest time wins, whatever
    order the values were written in (legacy snapshots and folded map included)."""
    history: dict[str, dict[str, Any]] = {
        name: dict(entry) for name, entry in (data.get(LEGACY_MERGED_ATTRIBUTES) or {}).items()
    }
    candidates: list[tuple[str, str, Any]] = []
    for key, value in data.items():
        if key.startswith(ATTRIBUTE_PREFIX) and isinstance(value, dict):
            candidates.append((key[len(ATTRIBUTE_PREFIX) :], str(value.get("at", "")), value.get("v")))
        elif key.startswith(LEGACY_SNAPSHOT_PREFIX) and isinstance(value, dict):
            at = key[len(LEGACY_SNAPSHOT_PREFIX) :]
            candidates.extend((name, at, v) for name, v in value.items())
    for name, at, value in candidates:
        if name not in history or history[name]["at"] <= at:
            history[name] = {"at": at, "v": value}
    return history


def profile_from_item(item: Mapping[str, Any], initial_stage: str) -> LeadProfile:
    """Decode a profile item (from GetItem or a stream image already deserialized)."""
    data = from_dynamo(dict(item))
    accumulators = {k[2:]: float(v) for k, v in data.items() if k.startswith("r:")}
    counts = {k[2:]: int(v) for k, v in data.items() if k.startswith("n:")}
    history = attribute_history(data)
    attributes: dict[str, AttributeValue] = {name: entry["v"] for name, entry in history.items()}
    days = sorted(int(d) for d in data.get("days") or [])
    epoch_day = datetime(1970, 1, 1, tzinfo=UTC)
    created_at = parse_iso(data["created_at"]) if data.get("created_at") else None
    transition = data.get("last_transition")
    legacy = (LEGACY_SNAPSHOT_PREFIX, LEGACY_SEEN_PREFIX)
    last_outcome, outcomes, outcome_event = outcome_marks(data)
    return LeadProfile(
        lead_id=data["lead_id"],
        state=LeadState(
            email=data.get("email", ""),
            attributes=attributes,
            accumulators=accumulators,
            counts=counts,
            last_activity_at=epoch_day + timedelta(days=days[-1] + 1) - timedelta(microseconds=1)
            if days
            else None,
            first_seen_at=epoch_day + timedelta(days=days[0]) if days else created_at,
        ),
        stage=data.get("stage") or initial_stage,
        stage_seq=int(data.get("stage_seq", 0)),
        version=int(data.get("version", 0)),
        revision=int(data.get("revision", 0)),
        score=float(data.get("score", 0)),
        fit=data.get("fit"),
        engagement=data.get("engagement"),
        negative=data.get("negative"),
        grade=data.get("grade"),
        scored_at=parse_iso(data["scored_at"]) if data.get("scored_at") else None,
        model_version=data.get("model_version"),
        created_at=created_at,
        last_transition=_transition(transition, data["lead_id"], int(data.get("stage_seq", 0)))
        if transition
        else None,
        announce_pending=data.get(PENDING),
        review_at=datetime.fromtimestamp(data["review_at"], UTC)
        if data.get("review_at") is not None
        else None,
        rescored_by=data.get("rescored_by"),
        rescore_outcome=data.get("rescore_outcome"),
        days=days,
        recent_transitions=[str(entry) for entry in data.get(RECENT_TRANSITIONS) or []],
        legacy_keys=sorted(k for k in data if k.startswith(legacy) or k == LEGACY_MERGED_ATTRIBUTES),
        attribute_times=history,
        alias_of=data.get(ALIAS_OF),
        merged=sorted(data.get("merged") or []),
        merged_overflow=bool(data.get("merged_overflow")),
        addresses=sorted(data.get("addresses") or []),
        last_outcome=last_outcome,
        outcomes=outcomes,
        outcome_event=outcome_event,
        outcome_pending=data.get(OUTCOME_PENDING),
        slots=_slots(data, data["lead_id"]),
    )


def check_hop(origin: str, walked: Sequence[str], target: str) -> None:
    """Refuse to follow an alias chain that loops or is longer than any run of merges makes it."""
    if target in walked:
        raise IdentityChainBroken(f"lead {origin}: its aliases loop ({' -> '.join([*walked, target])})")
    if len(walked) > MAX_ALIAS_HOPS:
        raise IdentityChainBroken(f"lead {origin}: more than {MAX_ALIAS_HOPS} aliases")


def is_alias(item: Mapping[str, Any] | None) -> bool:
    """An alias item (see the module docstring): readers skip it or follow `alias_of`."""
    return bool(item) and ALIAS_OF in item  # type: ignore[operator]


def _transition(data: Mapping[str, Any], lead_id: str, stage_seq: int) -> Transition:
    """A stored transition; one saved before transitions had ids gets the id it was announced with."""
    return Transition.model_validate({"id": f"{lead_id}#{stage_seq}", **data})


class Evaluation(Model):
    """What threshold evaluation or decay decided for one lead; saved with `LeadProfiles.save`."""

    model_config = ConfigDict(frozen=True)

    total: float
    fit: float
    engagement: float
    negative: float
    grade: str
    model_version: str
    at: datetime
    stage: str
    transition: Transition | None = None
    review_at: datetime | None = None
    # accumulators to overwrite (None: remove), see `engine.settle`; applied by guarded saves only
    settled: dict[str, float | None] = Field(default_factory=dict)
    applies: bool = True  # the model applies to the lead (see `scoring.catalog.applies`)


class _Outcome(Model):
    applied: bool
    profile_guard_failed: bool = False
    erased: bool = False  # the lead is a tombstone
    alias_of: str | None = None  # the profile is an alias of this lead: apply the event there
    folded: bool = False  # ...and its own state was already folded into that lead


def old_attribute(reason: Mapping[str, Any], name: str) -> str | None:
    """A string attribute of the item a cancelled transaction item found (ALL_OLD), in the wire
    form a client returns it or already deserialized."""
    value = (reason.get("Item") or {}).get(name)
    if isinstance(value, Mapping):
        value = value.get("S")
    return None if value is None else str(value)


class LeadProfiles:
    """Lead profiles: apply events, save evaluations, read and rank."""

    def __init__(
        self,
        table_name: str,
        initial_stage: str,
        review_shards: int,
        ledger: EventLedger,
        dynamodb: Any | None = None,
        ranks_table: str | None = None,
    ) -> None:
        self._resource = dynamodb or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._client = self._table.meta.client
        self._initial_stage = initial_stage
        self._shards = review_shards
        self._ledger = ledger
        self._ranks_table = ranks_table

    @property
    def table(self) -> Any:
        return self._table

    @property
    def ledger(self) -> EventLedger:
        return self._ledger

    # --- the hot path -------------------------------------------------------------------------
    def apply(self, event: LeadEvent, effect: EventEffect, now: datetime) -> bool:
        """Add one event's effect to its lead. Returns False if that event was already applied.

        One transaction, no read: the ledger item is marked applied (condition: not yet) and the
        profile gets additions only. Attributes are set to the event's values when the event is
        not older than the newest attribute-carrying event applied (`attrs_at`, the usual case);
        an older event sets each attribute only where it is newer, one conditional update each
        (idempotent, so a retry after a crash in between is harmless), before its transaction.

        The profile update is conditioned on the item being neither an alias nor a tombstone.
        For an alias (the address was folded into another lead), the event goes to the lead the
        alias points to (`_apply_via_aliases`): the ledger item stays where it is, marked in the
        same transaction. For a tombstone, `_apply_to_tombstone`: an opt-in re-creates the lead,
        anything else is dropped.
        """
        for _ in range(_TOMBSTONE_RACES):
            outcome = self._apply_to(event.lead_id, event, effect, now)
            if outcome.alias_of is not None:
                return self._apply_via_aliases(event, effect, now, outcome)
            if not outcome.erased:
                return outcome.applied
            applied = self._apply_to_tombstone(event, effect, now)
            if applied is not None:
                return applied
        raise StorageUnavailable(
            "the lead was erased and re-created while its event was applied; please retry"
        )

    def _apply_via_aliases(self, event: LeadEvent, effect: EventEffect, now: datetime, hop: _Outcome) -> bool:
        """Follow `alias_of` from the event's address to its canonical lead (bounded: a loop or a
        chain longer than MAX_ALIAS_HOPS is damaged data, reported), apply the event there, and
        shorten the chain it walked (`shorten`)."""
        path = [(event.lead_id, hop.folded)]
        target = hop.alias_of
        while target is not None:
            check_hop(event.lead_id, [lead for lead, _ in path], target)
            outcome = self._apply_to(target, event, effect, now)
            if outcome.erased:  # the lead this address joined was erased: forget the event
                self._ledger.forget(event.lead_id, event.event_id)
                return False
            path.append((target, outcome.folded))
            if outcome.alias_of is None:
                self.shorten(path)
                return outcome.applied
            target = outcome.alias_of
        raise AssertionError("unreachable")  # pragma: no cover

    def shorten(self, path: Sequence[tuple[str, bool]]) -> None:
        """Point the first aliases of a walked chain [(lead id, folded), ..., (canonical, _)] at
        its end, past aliases whose state is already folded (an unfolded one stays on the chain:
        its email change, when retried, finds it there and finishes folding it). Conditional on
        each still pointing where it did; an alias never becomes a lead again, so always safe."""
        canonical = path[-1][0]
        for index in range(len(path) - 2):
            if not all(folded for _, folded in path[index + 1 : -1]):
                continue
            expr = Expression()
            expr.set(ALIAS_OF, canonical)
            condition = f"{expr.name(ALIAS_OF)} = {expr.value(path[index + 1][0])}"
            try:
                self._table.update_item(Key={"lead_id": path[index][0]}, **expr.kwargs(condition))
            except ClientError as exc:
                if not condition_failed(exc):
                    raise storage_error("shorten an alias chain", exc) from exc

    def _apply_to(self, lead_id: str, event: LeadEvent, effect: EventEffect, now: datetime) -> _Outcome:
        marker = self._ledger.mark_applied(event.lead_id, event.event_id, now)
        stamp = f"{iso(event.occurred_at)}#{event.event_id}"
        if event.event_type in OUTCOME_EVENT_TYPES:
            return self._apply_outcome(marker, lead_id, event, effect, now, stamp)
        if effect.attributes:
            expr = self._additions(lead_id, event, effect, now)
            for name, value in sorted(effect.attributes.items()):
                expr.set(f"{ATTRIBUTE_PREFIX}{name}", {"at": stamp, "v": value})
            newest = expr.set(ATTRIBUTES_AT, stamp)
            guard = f"attribute_not_exists({newest}) OR {newest} <= {expr.value(stamp)}"
            outcome = self._transact(marker, lead_id, expr, guard)
            if not outcome.profile_guard_failed:
                return outcome  # applied, a duplicate, an alias or a tombstone
            for name, value in sorted(effect.attributes.items()):
                self._set_attribute_if_newer(lead_id, name, value, stamp)
        return self._transact(marker, lead_id, self._additions(lead_id, event, effect, now), None)

    def _apply_outcome(
        self,
        marker: dict[str, Any],
        lead_id: str,
        event: LeadEvent,
        effect: EventEffect,
        now: datetime,
        stamp: str,
    ) -> _Outcome:
        """An outcome (no attributes: `engine.effect_of`) sets the lead's latest outcome and the
        latest of its type when it is not older than the latest outcome recorded (the usual case,
        one transaction). An older one, arriving late, sets only its type's time where newer (one
        conditional update, idempotent), before its transaction. Either way the transaction names
        it in `outcome_event`, so the profile stream announces it once (`pipeline`)."""
        expr = self._additions(lead_id, event, effect, now)
        self._applied_outcome(expr, event)
        latest = expr.set(OUTCOME, {"at": stamp, "v": event.event_type.value})
        expr.set(f"{OUTCOME_TYPE_PREFIX}{event.event_type.value}", stamp)
        guard = f"attribute_not_exists({latest}) OR {latest}.{expr.name('at')} <= {expr.value(stamp)}"
        outcome = self._transact(marker, lead_id, expr, guard)
        if not outcome.profile_guard_failed:
            return outcome  # applied, a duplicate, an alias or a tombstone
        self._set_if_newer(lead_id, f"{OUTCOME_TYPE_PREFIX}{event.event_type.value}", stamp)
        expr = self._additions(lead_id, event, effect, now)
        self._applied_outcome(expr, event)
        return self._transact(marker, lead_id, expr, None)

    @staticmethod
    def _applied_outcome(expr: Expression, event: LeadEvent) -> None:
        """Name the outcome this write applies (for the stream) and keep it pending until announced
        (for the sweeper, as a stage change is)."""
        expr.set(
            OUTCOME_EVENT,
            {"id": event.event_id, "type": event.event_type.value, "at": iso(event.occurred_at)},
        )
        expr.set(OUTCOME_PENDING, event.event_id)

    def _set_if_newer(self, lead_id: str, name: str, stamp: str) -> None:
        expr = Expression()
        attribute = expr.set(name, stamp)
        condition = f"{LIVE} AND (attribute_not_exists({attribute}) OR {attribute} < {expr.value(stamp)})"
        try:
            self._table.update_item(Key={"lead_id": lead_id}, **expr.kwargs(condition))
        except ClientError as exc:
            if not condition_failed(exc):  # failed: a newer one is there; or an alias (followed next)
                raise storage_error("record an outcome", exc) from exc

    def _apply_to_tombstone(self, event: LeadEvent, effect: EventEffect, now: datetime) -> bool | None:
        """The slow path: the event's lead was erased. An opt-in (`opts_in`: a form submission or
        a booked meeting from a form provider) replaces the tombstone with a new lead holding this
        event, in one transaction; any other event is dropped and its ledger item deleted, so
        nothing names the person afterwards. None when the tombstone was replaced meanwhile
        (the caller applies the event to the live lead)."""
        if not opts_in(event):
            self._ledger.forget(event.lead_id, event.event_id)
            return False
        marker = self._ledger.mark_applied(event.lead_id, event.event_id, now)
        stamp = f"{iso(event.occurred_at)}#{event.event_id}"
        expr = self._additions(event.lead_id, event, effect, now)
        for name, value in sorted(effect.attributes.items()):
            expr.set(f"{ATTRIBUTE_PREFIX}{name}", {"at": stamp, "v": value})
        if effect.attributes:
            expr.set(ATTRIBUTES_AT, stamp)
        expr.remove(ERASED)
        expr.remove(ERASE_PENDING)  # an erasure still running finishes from its own list
        outcome = self._transact(marker, event.lead_id, expr, f"attribute_exists({ERASED})", live=False)
        return None if outcome.profile_guard_failed else outcome.applied

    def new_lead_defaults(
        self,
        expr: Expression,
        lead_id: str,
        now: datetime,
        *,
        email: str | None,
        created_at: bool = True,
        touch: bool = True,
    ) -> None:
        """What a lead's first write sets (`if_not_exists`: `email` and `created_at` unless the
        caller sets them itself), and, with `touch`, what every write of events sets."""
        if email is not None:
            expr.set("email", email, if_missing=True)
        if created_at:
            expr.set("created_at", iso(now), if_missing=True)
        expr.set("stage", self._initial_stage, if_missing=True)
        expr.set("stage_seq", 0, if_missing=True)
        expr.set("score", 0, if_missing=True)
        expr.set("review_shard", review_shard_for(lead_id, self._shards), if_missing=True)
        if touch:
            expr.set("review_at", int(now.timestamp()))
            expr.set("updated_at", iso(now))
        else:
            expr.set("review_at", int(now.timestamp()), if_missing=True)

    def _additions(self, lead_id: str, event: LeadEvent, effect: EventEffect, now: datetime) -> Expression:
        expr = Expression()
        self.new_lead_defaults(expr, lead_id, now, email=event.email)
        for rule_id, amount in sorted(effect.accumulators.items()):
            expr.add(f"r:{rule_id}", amount)
        for key, count in sorted(effect.counts.items()):
            expr.add(f"n:{key}", count)
        if effect.active:
            expr.add("days", {day_number(event.occurred_at)})
        expr.add("version", 1)
        expr.add("revision", 1)
        return expr

    def _transact(
        self, marker: dict[str, Any], lead_id: str, expr: Expression, guard: str | None, *, live: bool = True
    ) -> _Outcome:
        """`live`: the lead must take events (neither an alias nor a tombstone), and `guard` too."""
        live_guard = LIVE if guard is None else f"{LIVE} AND ({guard})"
        condition = live_guard if live else guard
        update = {
            "Update": {
                "TableName": self._table.name,
                "Key": {"lead_id": lead_id},
                **expr.kwargs(condition),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",  # tells an alias from the guard
            }
        }
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.transact_write_items(TransactItems=[marker, update])
                return _Outcome(applied=True)
            except ClientError as exc:
                cancelled = exc.response.get("CancellationReasons") or []
                reasons = [r.get("Code") for r in cancelled]
                if error_code(exc) != "TransactionCanceledException" or len(reasons) != 2:
                    raise storage_error("update the lead profile", exc) from exc
                if reasons[0] == "ConditionalCheckFailed":
                    return _Outcome(applied=False)  # applied before (or no such ledger item)
                if reasons[1] == "ConditionalCheckFailed":
                    alias_of = old_attribute(cancelled[1], ALIAS_OF)
                    if live and alias_of is not None:
                        folded = old_attribute(cancelled[1], MERGED_AT) is not None
                        return _Outcome(applied=False, alias_of=alias_of, folded=folded)
                    if live and old_attribute(cancelled[1], ERASED) is not None:
                        return _Outcome(applied=False, erased=True)
                    return _Outcome(applied=False, profile_guard_failed=True)
                if "TransactionConflict" not in reasons or attempt == _CONFLICT_RETRIES - 1:
                    raise storage_error("update the lead profile", exc) from exc
                time.sleep(0.05 * 2**attempt)  # another write to this lead is in flight
        raise StorageUnavailable("could not update the lead profile (conflicts); please retry")

    def _set_attribute_if_newer(self, lead_id: str, name: str, value: AttributeValue, stamp: str) -> None:
        expr = Expression()
        attribute = expr.set(f"{ATTRIBUTE_PREFIX}{name}", {"at": stamp, "v": value})
        condition = (
            f"{LIVE} AND (attribute_not_exists({attribute}) OR "
            f"{attribute}.{expr.name('at')} < {expr.value(stamp)})"
        )
        try:
            self._table.update_item(Key={"lead_id": lead_id}, **expr.kwargs(condition))
        except ClientError as exc:
            # failed: a newer value is there, which is right; or the lead became an alias, which
            # the transaction that follows finds out and follows
            if not condition_failed(exc):
                raise storage_error("update a lead attribute", exc) from exc

    # --- deciders: threshold evaluation, decay, rescoring ----------------------------------------
    def save(
        self, profile: LeadProfile, evaluation: Evaluation, others: Mapping[str, Evaluation] | None = None
    ) -> bool:
        """Write an evaluation decided on `profile`, guarded by its stage sequence and revision:
        nothing changed since it was read, so the decision was made on the item as it is. Returns
        False when the guard failed: someone else moved first, and their change is evaluated in
        turn. `others`: the catalog's other models' evaluations (by model id), saved in the same
        write, with their rank entries (LeadRanksTable) in the same transaction."""
        expr = evaluation_expression(profile, evaluation, others or {}, self._shards)
        return self._write_evaluation(profile, evaluation, expr, self._rank_changes(profile, others or {}))

    def replace_scoring_state(
        self,
        profile: LeadProfile,
        accumulators: Mapping[str, float],
        counts: Mapping[str, int],
        evaluation: Evaluation,
        job_id: str,
        outcome: Mapping[str, Any],
        others: Mapping[str, Evaluation] | None = None,
    ) -> bool:
        """Swap the model-dependent state (rule accumulators and counters, of every model of the
        catalog) for one recomputed under new models, with their evaluations, in one guarded
        write (a rescore)."""
        evaluation = evaluation.model_copy(update={"settled": {}})
        expr = replacement_expression(
            profile, accumulators, counts, evaluation, job_id, outcome, others, self._shards
        )
        return self._write_evaluation(profile, evaluation, expr, self._rank_changes(profile, others or {}))

    def _rank_changes(self, profile: LeadProfile, others: Mapping[str, Evaluation]) -> list[dict[str, Any]]:
        """Rank entries to write with a save: a model that applies and whose stage or stored score
        changed is (re)ranked; one that stopped applying leaves its ranking."""
        if self._ranks_table is None:
            if others:
                raise ConfigurationError("RANKS_TABLE is not set, but the catalog ranks more than one model")
            return []
        changes: list[dict[str, Any]] = []
        for model_id, evaluation in sorted(others.items()):
            slot = profile.slot(model_id)
            score = round(evaluation.total, 6)
            if evaluation.applies and (evaluation.transition is not None or slot.score != score):
                entry = rank_put(self._ranks_table, profile.lead_id, model_id, evaluation.stage, score)
                changes.append(entry)
            elif not evaluation.applies and slot.score is not None:
                changes.append(rank_delete(self._ranks_table, profile.lead_id, model_id))
        return changes

    def _write_evaluation(
        self,
        profile: LeadProfile,
        evaluation: Evaluation,
        expr: Expression,
        ranks: Sequence[dict[str, Any]] = (),
    ) -> bool:
        revision = expr.name("revision")
        condition = f"stage_seq = {expr.value(profile.stage_seq)} AND " + (
            f"(attribute_not_exists({revision}) OR {revision} = {expr.value(profile.revision)})"
            if profile.revision == 0
            else f"{revision} = {expr.value(profile.revision)}"
        )
        tidy(profile, evaluation, expr)
        try:
            if not ranks:
                self._table.update_item(Key={"lead_id": profile.lead_id}, **expr.kwargs(condition))
                return True
            update = {"Update": {"TableName": self._table.name, "Key": {"lead_id": profile.lead_id}}}
            update["Update"].update(expr.kwargs(condition))
            self._client.transact_write_items(TransactItems=[update, *ranks])
        except ClientError as exc:
            if condition_failed(exc):
                return False
            cancelled = exc.response.get("CancellationReasons") or []
            if error_code(exc) == "TransactionCanceledException" and cancelled:
                if cancelled[0].get("Code") == "ConditionalCheckFailed":
                    return False
                if "TransactionConflict" in [r.get("Code") for r in cancelled]:
                    return False  # another write to this lead is in flight: it is evaluated in turn
            raise storage_error("save the lead evaluation", exc) from exc
        return True

    def clear_pending(self, lead_id: str, transition_id: str, model_id: str | None = None) -> None:
        """The transition was announced (or goes to no topic): take it off the sweeper's list
        (`model_id`: of a catalog's other model; None: the primary model's)."""
        attribute = PENDING if model_id is None else f"{PENDING}{SLOT_SEPARATOR}{model_id}"
        self._clear_mark(lead_id, attribute, transition_id, "clear the pending announcement")

    def clear_outcome_pending(self, lead_id: str, event_id: str) -> None:
        """The outcome was announced (or goes to no topic): take it off the sweeper's list."""
        self._clear_mark(lead_id, OUTCOME_PENDING, event_id, "clear the pending outcome announcement")

    def _clear_mark(self, lead_id: str, attribute: str, value: str, what: str) -> None:
        codec.remove_if_equal(self._table, {"lead_id": lead_id}, attribute, value, what)

    def postpone(self, lead_id: str, until: datetime) -> None:
        """Move a lead whose review failed to the back of the review index (no read, no guard)."""
        expr = Expression()
        expr.set("review_at", int(until.timestamp()))
        try:
            self._table.update_item(
                Key={"lead_id": lead_id}, **expr.kwargs(f"attribute_exists(lead_id) AND {LIVE}")
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error("postpone the lead's review", exc) from exc

    # --- reads ------------------------------------------------------------------------------------
    def get(self, lead_id: str) -> LeadProfile | None:
        """The lead, or None when there is none (or only its tombstone)."""
        item = self._table.get_item(Key={"lead_id": lead_id}, ConsistentRead=True).get("Item")
        return profile_from_item(item, self._initial_stage) if item and not is_tombstone(item) else None

    def get_lead(self, lead_id: str) -> LeadProfile | None:
        """The lead an id belongs to: its own profile, or the one its alias chain ends on."""
        item = self.get_lead_item(lead_id)
        return profile_from_item(item, self._initial_stage) if item else None

    def get_lead_item(self, lead_id: str) -> dict[str, Any] | None:
        """The raw item of the lead an id belongs to (None when unknown or erased): for readers
        of what `LeadProfile` does not decode (a catalog's other models' stages)."""
        walked: list[str] = []
        current = lead_id
        while True:
            item = self._table.get_item(Key={"lead_id": current}, ConsistentRead=True).get("Item")
            if not item or ALIAS_OF not in item:
                return dict(item) if item and not is_tombstone(item) else None
            walked.append(current)
            current = str(item[ALIAS_OF])
            check_hop(lead_id, walked, current)

    def get_many_items(self, lead_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """(lead id, raw item) of the leads that exist (tombstones left out), read in batches of
        100 (unprocessed keys asked again with backoff, `codec.batch_get`); decoding is the
        caller's, so one item that cannot be decoded spoils only itself."""
        keys = [{"lead_id": lead_id} for lead_id in dict.fromkeys(lead_ids)]
        items = codec.batch_get(self._client, self._table.name, keys)
        return [(str(item["lead_id"]), item) for item in items if not is_tombstone(item)]

    def get_page(self, lead_ids: Sequence[str]) -> dict[str, LeadProfile]:
        """Lead id -> profile of the leads that exist (tombstones left out), read consistently as
        `get` reads one, 100 a request (a rescore page: one BatchGetItem instead of a GetItem per
        lead; unprocessed keys are retried with backoff, see `codec.batch_get`)."""
        keys = [{"lead_id": lead_id} for lead_id in dict.fromkeys(lead_ids)]
        items = codec.batch_get(self._client, self._table.name, keys, consistent=True)
        return {
            str(item["lead_id"]): profile_from_item(item, self._initial_stage)
            for item in items
            if not is_tombstone(item)
        }

    def approximate_size(self) -> tuple[int, int]:
        """(ItemCount, TableSizeBytes) as DescribeTable reports them: DynamoDB refreshes both about
        every six hours, so they size work (a rescore's segments), never count it."""
        table = self._client.describe_table(TableName=self._table.name)["Table"]
        return int(table.get("ItemCount", 0)), int(table.get("TableSizeBytes", 0))

    def get_many(self, lead_ids: Sequence[str]) -> list[LeadProfile]:
        return [profile_from_item(item, self._initial_stage) for _, item in self.get_many_items(lead_ids)]

    def due_for_review(self, shard: str, now: datetime) -> Iterator[str]:
        """Lead ids in one shard of the sparse review index whose review time has come."""
        return codec.due_for_review(self._table, "lead_id", shard, now)

    def ranked(
        self, stage: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[LeadProfile], dict[str, Any] | None]:
        """Leads of one stage, highest stored score first (the `by_stage_score` index).

        The index projects keys only (so a profile update that leaves stage and score alone costs
        no index write); the page's leads are then read whole with BatchGetItem, in index order.
        A lead's stored score is the index's, the one the order and the cursor are made of."""
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
        keys = response.get("Items", [])
        found = {p.lead_id: p for p in self.get_many([str(key["lead_id"]) for key in keys])}
        ranked = [
            found[lead_id].model_copy(update={"score": float(key["score"])})
            for key in keys
            # gone, or folded into another lead (an email change), since the index was read
            if (lead_id := str(key["lead_id"])) in found and found[lead_id].alias_of is None
        ]
        return ranked, response.get("LastEvaluatedKey")

    def scan_page(
        self, segment: int, total_segments: int, start_key: Mapping[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]:
        """One page of lead ids from one parallel-scan segment (rescoring fans out over segments)."""
        kwargs: dict[str, Any] = {
            "Segment": segment,
            "TotalSegments": total_segments,
            "ProjectionExpression": "lead_id",
            "Limit": limit,
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        response = self._table.scan(**kwargs)
        return [str(item["lead_id"]) for item in response.get("Items", [])], response.get("LastEvaluatedKey")


# --- what deciders write -------------------------------------------------------------------------
def evaluation_expression(
    profile: LeadProfile, evaluation: Evaluation, others: Mapping[str, Evaluation], shards: int
) -> Expression:
    """A decider's write: every model's stage fields, the lead's next review."""
    expr = Expression()
    _slot_expression(expr, profile, None, evaluation)
    for model_id, other in sorted(others.items()):
        _slot_expression(expr, profile, model_id, other)
    review_at = evaluation.review_at
    transitions = [e.transition for e in (evaluation, *others.values()) if e.transition is not None]
    if transitions:
        expr.set(RECENT_TRANSITIONS, recent_transitions(profile, *transitions))
        # The sweeper (the decay job) announces it if the stream cannot: keep the lead due soon.
        soon = evaluation.at + timedelta(minutes=15)
        review_at = soon if review_at is None else min(review_at, soon)
    if review_at is None:
        expr.remove("review_at")
    else:
        expr.set("review_at", int(review_at.timestamp()))
        expr.set("review_shard", review_shard_for(profile.lead_id, shards))
    return expr


def _slot_expression(
    expr: Expression, profile: LeadProfile, model_id: str | None, evaluation: Evaluation
) -> None:
    """One model's stage fields (`model_id` None: the primary model's plain names). A model
    that does not apply to the lead keeps no stored score (the primary model's stays: its index
    needs one, and readers check applicability)."""
    suffix = "" if model_id is None else f"{SLOT_SEPARATOR}{model_id}"
    stored = ("score", "fit", "engagement", "negative", "grade", "model_version", "scored_at")
    if evaluation.applies or model_id is None:
        for field in ("total", "fit", "engagement", "negative"):
            name = "score" if field == "total" else field
            expr.set(f"{name}{suffix}", round(getattr(evaluation, field), 6))
        expr.set(f"grade{suffix}", evaluation.grade)
        expr.set(f"model_version{suffix}", evaluation.model_version)
        expr.set(f"scored_at{suffix}", iso(evaluation.at))
    else:
        for name in stored:
            expr.remove(f"{name}{suffix}")
    if evaluation.transition is not None:
        expr.set(f"stage{suffix}", evaluation.stage)
        expr.set(f"stage_seq{suffix}", profile.slot(model_id).stage_seq + 1)
        expr.set(f"last_transition{suffix}", evaluation.transition.model_dump(mode="json"))
        expr.set(f"{PENDING}{suffix}", evaluation.transition.id)


def replacement_expression(
    profile: LeadProfile,
    accumulators: Mapping[str, float],
    counts: Mapping[str, int],
    evaluation: Evaluation,
    job_id: str,
    outcome: Mapping[str, Any],
    others: Mapping[str, Evaluation] | None,
    shards: int,
) -> Expression:
    """A rescore's write: `evaluation_expression`, with the lead's model-dependent state replaced."""
    expr = evaluation_expression(profile, evaluation, others or {}, shards)
    for rule_id in set(profile.state.accumulators) - set(accumulators):
        expr.remove(f"r:{rule_id}")
    for key in set(profile.state.counts) - set(counts):
        expr.remove(f"n:{key}")
    for rule_id, value in accumulators.items():
        expr.set(f"r:{rule_id}", value)
    for key, n in counts.items():
        expr.set(f"n:{key}", n)
    expr.set("rescored_by", job_id)
    expr.set("rescore_outcome", dict(outcome))
    return expr


def tidy(profile: LeadProfile, evaluation: Evaluation, expr: Expression) -> None:
    """What only a writer that read the item as it is may do: overwrite accumulators with
    their settled values, fold legacy attribute snapshots, keep only the first and last
    active days. Bumps the revision, so deciders holding an older image must read again."""
    for rule_id, value in evaluation.settled.items():
        if value is None:
            expr.remove(f"r:{rule_id}")
        else:
            expr.set(f"r:{rule_id}", value)
    if profile.legacy_keys:
        for name, entry in profile.attribute_times.items():
            expr.set(f"{ATTRIBUTE_PREFIX}{name}", entry)
        for key in profile.legacy_keys:
            expr.remove(key)
    if len(profile.days) > 2:
        expr.delete("days", set(profile.days[1:-1]))
    expr.add("revision", 1)


# --- the bound -------------------------------------------------------------------------------------
MAX_NUMBER = Decimal("-9.9999999999999999999999999999999999999E+125")  # 38 digits: the largest
LONGEST_STAMP = "2026-01-01T00:00:00.000000Z#ev_" + "f" * 32
STORED_DAYS = 402  # first + last kept by every guarded save, plus a retention period of new days


def recent_transitions(profile: LeadProfile, *transitions: Transition) -> list[str]:
    """The profile's list of recent transitions with `transitions` added (one per model that
    moved): those of the last `RECENT_TRANSITIONS_KEPT`, at most `MAX_RECENT_TRANSITIONS` (the
    newest)."""
    horizon = iso(max(t.at for t in transitions) - RECENT_TRANSITIONS_KEPT)
    kept = {entry for entry in profile.recent_transitions if entry >= horizon}
    kept.update(f"{iso(t.at)}#{t.id}" for t in transitions)
    return sorted(kept)[-MAX_RECENT_TRANSITIONS:]


def transition_ids(profile_item: Mapping[str, Any]) -> set[str]:
    """Ids of the transitions a profile item names: its recent ones, and each model's last and
    pending one."""
    ids = {str(entry).rpartition("#")[2] for entry in profile_item.get(RECENT_TRANSITIONS) or []}
    for key, value in profile_item.items():
        name = key.partition(SLOT_SEPARATOR)[0]
        if name == "last_transition" and isinstance(value, Mapping) and value.get("id"):
            ids.add(str(value["id"]))
        elif name == PENDING and value:
            ids.add(str(value))
    return ids


def worst_case_item(models: ScoringModel | Catalog, retention_days: int = 400) -> dict[str, Any]:
    """The largest profile item `models` (one model, or a catalog: every model's accumulators and
    stage fields under its suffix, every applicability counter) can produce whatever arrives:
    every attribute it keeps at
    its longest (MAX_TEXT characters of 4-byte UTF-8), every counter and accumulator at 38 digits,
    the longest stage names, a full transition, rescore outcome and pending announcement, and
    an active day for every day of the ledger's retention (guarded saves keep first and last),
    and the identity bookkeeping of a lead that changed address more than MAX_MERGED times."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    model = catalog.primary.model
    text = "\U0001f600" * MAX_TEXT
    stage = max((s.name for s in model.stages), key=len)
    stamp = {"at": LONGEST_STAMP, "v": text}
    transition = {
        "from_stage": stage,
        "to_stage": stage,
        "at": LONGEST_STAMP[:27],
        "reason": "threshold",
        "score": MAX_NUMBER,
        "id": new_transition_id(),
    }
    item: dict[str, Any] = {
        "lead_id": "ld_" + "f" * 24,
        "email": "e" * 64 + "@" + "d" * 189,
        **dict.fromkeys(("created_at", "updated_at", "scored_at"), LONGEST_STAMP[:27]),
        **dict.fromkeys(
            ("score", "fit", "engagement", "negative", "stage_seq", "version", "revision", "review_at"),
            MAX_NUMBER,
        ),
        "stage": stage,
        "grade": max((g.grade for g in model.grades), key=len),
        "model_version": "v" * 64,
        "review_shard": "255",
        ATTRIBUTES_AT: LONGEST_STAMP,
        PENDING: new_transition_id(),
        "last_transition": transition,
        RECENT_TRANSITIONS: [f"{LONGEST_STAMP[:27]}#{new_transition_id()}"] * MAX_RECENT_TRANSITIONS,
        "rescored_by": str(uuid.uuid4()),
        "rescore_outcome": {
            "from_stage": stage,
            "to_stage": stage,
            "score_before": MAX_NUMBER,
            "score_after": MAX_NUMBER,
            "skipped": False,
        },
        "days": {Decimal(99_999 + day) for day in range(min(STORED_DAYS, retention_days + 2))},
        "email_at": LONGEST_STAMP,
        "merged": {f"ld_{n:024x}" for n in range(MAX_MERGED)},
        "merged_overflow": True,
        "addresses": {f"{n:064x}@" + "d" * 189 for n in range(MAX_MERGED + 1)},
    }
    for name in catalog.kept_attributes:
        item[f"{ATTRIBUTE_PREFIX}{name}"] = stamp
    for entry in catalog.models:
        for _, rule in entry.model.all_rules():
            if isinstance(rule, EventRule | AggregateRule):
                prefix = "r" if isinstance(rule, EventRule) else "n"
                item[f"{prefix}:{rule.id}{catalog.suffix(entry.id)}"] = MAX_NUMBER
        item[f"n:{applicability_counter(entry.id)}"] = MAX_NUMBER
        if entry is catalog.primary:
            continue
        longest = max((s.name for s in entry.model.stages), key=len)
        for name in ("score", "fit", "engagement", "negative", "stage_seq"):
            item[f"{name}{SLOT_SEPARATOR}{entry.id}"] = MAX_NUMBER
        item[f"stage{SLOT_SEPARATOR}{entry.id}"] = longest
        item[f"grade{SLOT_SEPARATOR}{entry.id}"] = max((g.grade for g in entry.model.grades), key=len)
        item[f"model_version{SLOT_SEPARATOR}{entry.id}"] = "v" * 64
        item[f"scored_at{SLOT_SEPARATOR}{entry.id}"] = LONGEST_STAMP[:27]
        item[f"last_transition{SLOT_SEPARATOR}{entry.id}"] = {
            **transition,
            "from_stage": longest,
            "to_stage": longest,
            "reason": "not_applicable",
        }
        item[f"{PENDING}{SLOT_SEPARATOR}{entry.id}"] = new_transition_id()
    item["rescore_outcome"]["others"] = {
        entry.id: "->".join([max((s.name for s in entry.model.stages), key=len)] * 2)
        for entry in catalog.models[1:]
    }
    for event_type in EventType:
        item[f"n:type:{event_type}"] = MAX_NUMBER
    item[OUTCOME] = {"at": LONGEST_STAMP, "v": max(OUTCOME_EVENT_TYPES, key=len).value}
    item[OUTCOME_EVENT] = {
        "id": LONGEST_STAMP[28:],
        "type": max(OUTCOME_EVENT_TYPES, key=len).value,
        "at": LONGEST_STAMP[:27],
    }
    item[OUTCOME_PENDING] = LONGEST_STAMP[28:]
    for outcome in OUTCOME_EVENT_TYPES:
        item[f"{OUTCOME_TYPE_PREFIX}{outcome}"] = LONGEST_STAMP
    return item


MAX_EXPRESSION_CHARS = 4096  # DynamoDB's limit on an UpdateExpression (the emulator holds it too)


def worst_case_update_length(catalog: Catalog) -> int:
    """Characters of the longest UpdateExpression the catalog's writers send: a rescore of a lead
    holding every accumulator and counter, every model moving stage (it sets all of them at once).
    Must stay within MAX_EXPRESSION_CHARS."""
    item = {k: v for k, v in worst_case_item(catalog).items() if k != "review_at"}  # as a time
    profile = profile_from_item(item, catalog.primary.model.initial_stage)
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def moved(model: ScoringModel) -> Evaluation:
        stage = model.stages[-1].name
        transition = Transition(
            from_stage=model.initial_stage, to_stage=stage, at=at, reason="rescore", score=1
        )
        return Evaluation(
            total=1,
            fit=1,
            engagement=1,
            negative=1,
            grade="A",
            model_version="v",
            at=at,
            stage=stage,
            transition=transition,
            review_at=at,
        )

    others = {entry.id: moved(entry.model) for entry in catalog.models[1:]}
    primary = moved(catalog.primary.model)
    state = profile.state
    expr = replacement_expression(profile, state.accumulators, state.counts, primary, "job", {}, others, 255)
    tidy(profile, primary, expr)
    return len(expr.kwargs()["UpdateExpression"])


def worst_case_size(models: ScoringModel | Catalog, retention_days: int = 400) -> int:
    """Bytes of `worst_case_item` by DynamoDB's rules: must stay below MAX_ITEM_BYTES."""
    return item_size(worst_case_item(models, retention_days))
