"""A catalog of scoring models: several models at once, each applying to the leads it is for.

A deployment scores every lead with every model of its catalog that applies to it (a persona, a
product, a lifecycle: prospects vs existing customers). Each model keeps its own rules, grades,
stages, thresholds and topics; all of them are fed by the one profile update per event.

How a catalog's state sits on one profile item (`slot_key`):
- the first model is the **primary** model: its accumulators, counters and stage fields use the
  names a single-model deployment always used (`r:<rule>`, `n:<rule>`, `stage`, `score`, ...), so a
  plain model file is a one-model catalog and nothing stored before catalogs changes meaning;
- every other model's names carry its id after an `@` (`r:<rule>@enterprise`, `stage@enterprise`),
  which no rule id or attribute name can contain.

Applicability is exact and replayable: every event feeds every model's accumulators whether or
not the model applies yet, so a model that starts to apply (a prospect wins a deal and enters the
expansion model) scores the lead exactly as the replay of all its events would. Whether a model
applies is a pure function of the lead's state (`applies`): attributes (derived ones included),
events seen (counted by `applicability_counter`), outcomes. A lead a model stops applying to
leaves that model: its stage there returns to the first stage (a transition with reason
`not_applicable`, announced only on the model's `on_leave` topic, none by default) and it drops out
of that model's ranking.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from leadscore.domain import OUTCOME_EVENT_TYPES, EventType, LeadEvent
from leadscore.schema import Model
from leadscore.scoring import engine
from leadscore.scoring.account_model import ACCOUNT_ATTRIBUTES, ACCOUNT_SOURCES, AccountModel
from leadscore.scoring.model import (
    CACHED,
    ScoringModel,
    SegmentCondition,
    Topic,
    engaged_enough,
    engaged_only,
    event_matches,
)

SLOT_SEPARATOR = "@"
MAX_MODELS = 12
ModelId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
SINGLE_MODEL_ID = "default"  # the id a plain model file gets as a one-model catalog


class _Strict(Model):
    model_config = CACHED


class EventCondition(_Strict):
    """Events of these types (optionally on pages matching `url_pattern`, a case-insensitive glob;
    for page_engaged alone, optionally with at least `min_engaged_seconds` of engaged time)."""

    event_types: list[EventType] = Field(min_length=1)
    url_pattern: str | None = None
    min_engaged_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _not_outcomes(self) -> EventCondition:
        named = sorted(t.value for t in self.event_types if t in OUTCOME_EVENT_TYPES)
        if named:
            raise ValueError(f"outcomes ({', '.join(named)}) go under outcomes / not_outcomes, not events")
        if self.min_engaged_seconds is not None:
            engaged_only("event condition", self.event_types, "min_engaged_seconds")
        return self

    def matches(self, event: LeadEvent) -> bool:
        return engaged_enough(self.min_engaged_seconds, event.engaged_seconds) and event_matches(
            self.event_types, self.url_pattern, event.event_type, event.url
        )


class Applicability(_Strict):
    """When a model applies to a lead: every part given must hold (an empty one: every lead).

    - `attributes`: conditions on the lead's attributes, derived ones included (seniority,
      email_domain_class, region...), each as a segment rule's condition;
    - `events`: the lead did at least one event matching one of these, ever (a form, pages of a
      product: `{event_types: [page_viewed], url_pattern: "*/enterprise*"}`);
    - `outcomes`: the lead has had at least one of these outcomes (an existing customer: deal_won);
    - `not_outcomes`: the lead has had none of these (a prospect).
    """

    attributes: list[SegmentCondition] = Field(default_factory=list, max_length=8)
    events: list[EventCondition] = Field(default_factory=list, max_length=8)
    outcomes: list[EventType] = Field(default_factory=list)
    not_outcomes: list[EventType] = Field(default_factory=list)

    @model_validator(mode="after")
    def _outcome_types(self) -> Applicability:
        wrong = sorted(t.value for t in [*self.outcomes, *self.not_outcomes] if t not in OUTCOME_EVENT_TYPES)
        if wrong:
            raise ValueError(
                f"outcomes / not_outcomes name outcome events only "
                f"({', '.join(sorted(t.value for t in OUTCOME_EVENT_TYPES))}), not {', '.join(wrong)}"
            )
        return self


class CatalogModel(_Strict):
    """One model of a catalog: its id (in messages, the API and storage), when it applies, where
    leaving it is announced, and the model itself."""

    id: ModelId
    applies_when: Applicability = Field(default_factory=Applicability)
    on_leave: Topic | None = None
    model: ScoringModel


class Catalog(_Strict):
    """The models a deployment scores leads with; the first is the primary model."""

    name: str = "catalog"
    description: str | None = None
    models: list[CatalogModel] = Field(min_length=1, max_length=MAX_MODELS)
    accounts: AccountModel | None = None  # account scores (see leadscore.scoring.accounts)
    single: bool = Field(default=False, exclude=True)  # a plain model file, loaded as a catalog

    @model_validator(mode="after")
    def _distinct(self) -> Catalog:
        ids = [entry.id for entry in self.models]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"model ids must be unique, repeated: {', '.join(repeated)}")
        if self.accounts is not None:
            feeding = self.accounts.model or self.models[0].id
            if feeding not in ids:
                known = ", ".join(ids)
                raise ValueError(f"accounts.model {feeding!r} is not a model of this catalog ({known})")
            changing = engine.time_dependent_rules(self.entry(feeding).model.fit)
            if changing:
                raise ValueError(
                    f"accounts: model {feeding!r} has fit rules that change with time "
                    f"({', '.join(changing)}); an account's best fit must not (move them to engagement)"
                )
        return self

    @classmethod
    def of(cls, model: ScoringModel) -> Catalog:
        """A plain model as a one-model catalog (every lead, id `default`)."""
        return cls(name=model.name, models=[CatalogModel(id=SINGLE_MODEL_ID, model=model)], single=True)

    @property
    def primary(self) -> CatalogModel:
        return self.models[0]

    def entry(self, model_id: str) -> CatalogModel:
        for entry in self.models:
            if entry.id == model_id:
                return entry
        raise KeyError(model_id)

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.models]

    def suffix(self, model_id: str) -> str:
        """What a model's names on the profile item end with: nothing for the primary model."""
        return "" if model_id == self.primary.id else f"{SLOT_SEPARATOR}{model_id}"

    @cached_property
    def kept_attributes(self) -> frozenset[str]:
        """The attributes a lead profile keeps: every model's, and those applicability reads."""
        names: set[str] = set()
        for entry in self.models:
            names |= engine.profile_attributes(entry.model)
            names.update(condition.attribute for condition in entry.applies_when.attributes)
        if self.accounts is not None:
            names |= ACCOUNT_ATTRIBUTES | {self.accounts.roles.attribute}
        return frozenset(names)


def slot_key(name: str, suffix: str) -> str:
    """A model's name for an accumulator, counter or stage field (`suffix` from `Catalog.suffix`)."""
    return f"{name}{suffix}"


APPLICABILITY_PREFIX = "applies#"  # no rule id holds a "#": never a rule's counter


def applicability_counter(model_id: str) -> str:
    """The counter (`n:<key>`) of events that meet a model's `applies_when.events`."""
    return f"{APPLICABILITY_PREFIX}{model_id}"


def effect_of(catalog: Catalog, event: LeadEvent, recorded_at: datetime | None = None) -> engine.EventEffect:
    """The additions one event makes to its lead's state under every model of the catalog: each
    model's accumulators and counters under its own names, the counts by type once, the
    attributes any model (or applicability) reads. Still pure additions: they commute."""
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    for entry in catalog.models:
        added, counted = engine.additions(entry.model, event, recorded_at)
        suffix = catalog.suffix(entry.id)
        accumulators.update({slot_key(k, suffix): v for k, v in added.items()})
        for key, n in counted.items():
            counts[key if key.startswith("type:") else slot_key(key, suffix)] = n
        if any(condition.matches(event) for condition in entry.applies_when.events):
            counts[applicability_counter(entry.id)] = 1
    if event.event_type in OUTCOME_EVENT_TYPES:  # counted by type, nothing else (engine.effect_of)
        return engine.EventEffect(counts=counts, active=False)
    kept = catalog.kept_attributes
    if event.provider not in ACCOUNT_SOURCES:  # a public form cannot put anyone in an account
        kept -= ACCOUNT_ATTRIBUTES
    return engine.EventEffect(
        accumulators=accumulators,
        counts=counts,
        attributes=engine.event_attributes(event, kept),
        active=event.event_type not in engine.PASSIVE_EVENTS,
    )


def view(catalog: Catalog, model_id: str, state: engine.LeadState) -> engine.LeadState:
    """One model's state out of a lead's whole state: its own accumulators and counters under
    their rule ids, the shared counts by type, attributes and activity."""
    suffix = catalog.suffix(model_id)
    if not suffix:
        accumulators = {k: v for k, v in state.accumulators.items() if SLOT_SEPARATOR not in k}
        counts = {
            k: v
            for k, v in state.counts.items()
            if SLOT_SEPARATOR not in k and not k.startswith(APPLICABILITY_PREFIX)
        }
    else:
        accumulators = {k[: -len(suffix)]: v for k, v in state.accumulators.items() if k.endswith(suffix)}
        counts = {
            (k[: -len(suffix)] if k.endswith(suffix) else k): v
            for k, v in state.counts.items()
            if k.endswith(suffix) or k.startswith("type:")
        }
    return state.model_copy(update={"accumulators": accumulators, "counts": counts})


def applies(catalog: Catalog, model_id: str, state: engine.LeadState) -> bool:
    """Whether a model applies to a lead in this state (time plays no part: attributes, counts).
    `state` is the lead's whole state (it holds the applicability counters), not a model's view."""
    entry = catalog.entry(model_id)
    when = entry.applies_when
    if when.attributes and not engine.conditions_hold(
        when.attributes, engine.derived_attributes(entry.model, state)
    ):
        return False
    if when.events and state.counts.get(applicability_counter(model_id), 0) <= 0:
        return False
    had = {t for t in OUTCOME_EVENT_TYPES if state.counts.get(f"type:{t}", 0) > 0}
    if when.outcomes and not had & set(when.outcomes):
        return False
    return not had & set(when.not_outcomes)


def applicable(catalog: Catalog, state: engine.LeadState) -> list[CatalogModel]:
    """The models that apply to a lead in this state, in catalog order."""
    return [entry for entry in catalog.models if applies(catalog, entry.id, state)]


class ModelScore(Model):
    """One model's score of a lead (what the API and reports show per model)."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    applies: bool
    result: engine.ScoreResult


def score_all(catalog: Catalog, state: engine.LeadState, at: datetime) -> list[ModelScore]:
    """Every model's score of the lead at `at`, in catalog order, each saying whether it applies."""
    return [
        ModelScore(
            model_id=entry.id,
            applies=applies(catalog, entry.id, state),
            result=engine.score(entry.model, view(catalog, entry.id, state), at),
        )
        for entry in catalog.models
    ]
