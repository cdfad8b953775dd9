"""A catalog of models: one effect feeds every model, each model's view equals its own replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from leadscore import lifecycle
from leadscore.domain import EventType
from leadscore.errors import ModelError
from leadscore.model_store import load_catalog, parse_catalog
from leadscore.repository import LeadProfile
from leadscore.scoring import catalog as cat
from leadscore.scoring import engine
from tests.unit.scoring.conftest import NOW
from tests.unit.scoring.helpers import event, state_from


def _fold(catalog: cat.Catalog, events: list) -> engine.LeadState:
    """The lead's whole state as the profile store folds catalog effects."""
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    attributes: dict[str, object] = {}
    for e in sorted(events, key=lambda e: e.occurred_at):
        effect = cat.effect_of(catalog, e)
        for key, value in effect.accumulators.items():
            accumulators[key] = accumulators.get(key, 0.0) + value
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
        attributes.update(effect.attributes)
    active = [e.occurred_at for e in events if cat.effect_of(catalog, e).active]
    return engine.LeadState(
        email=events[0].email,
        attributes=attributes,  # type: ignore[arg-type]
        accumulators=accumulators,
        counts=counts,
        last_activity_at=max(active) if active else None,
        first_seen_at=min(e.occurred_at for e in events),
    )


def _events() -> list:
    return [
        event(EventType.FORM_SUBMITTED, NOW - timedelta(days=20), job_title="VP Marketing", company_size=800),
        event(EventType.PAGE_VIEWED, NOW - timedelta(days=10), url="https://x.io/pricing"),
        event(EventType.PAGE_VIEWED, NOW - timedelta(days=3), url="https://x.io/upgrade/seats"),
        event(EventType.DEAL_WON, NOW - timedelta(days=5)),
        event(EventType.EMAIL_CLICKED, NOW - timedelta(days=1), url="https://x.io/upgrade"),
    ]


def test_every_models_view_scores_exactly_as_its_own_replay() -> None:
    catalog = load_catalog("bundled:catalog")
    events = _events()
    whole = _fold(catalog, events)
    for entry in catalog.models:
        own = state_from(entry.model, events)
        mine = cat.view(catalog, entry.id, whole)
        assert engine.score(entry.model, mine, NOW) == engine.score(entry.model, own, NOW)
    assert any(key.endswith("@expansion") for key in whole.accumulators)


def test_a_single_model_is_a_catalog_whose_effect_is_the_engines() -> None:
    catalog = load_catalog("bundled:default")
    assert catalog.single and catalog.ids == ["default"]
    for e in _events():
        assert cat.effect_of(catalog, e) == engine.effect_of(catalog.primary.model, e)


def test_lifecycle_applicability_follows_outcomes() -> None:
    catalog = load_catalog("bundled:catalog")
    before = _fold(catalog, _events()[:3])
    after = _fold(catalog, _events())
    assert [e.id for e in cat.applicable(catalog, before)] == ["prospect"]
    assert [e.id for e in cat.applicable(catalog, after)] == ["expansion"]


def test_attribute_and_event_conditions() -> None:
    catalog = parse_catalog(
        """
models:
  - id: everyone
    model: {name: a, version: "1", grades: [{grade: A, min_fit: 0}], stages: [{name: lead}]}
  - id: enterprise
    applies_when:
      attributes: [{attribute: company_size, lower: 1000}]
      events: [{event_types: [page_viewed], url_pattern: "*/enterprise*"}]
    model: {name: b, version: "1", grades: [{grade: A, min_fit: 0}], stages: [{name: lead}]}
  - id: leaders
    applies_when:
      attributes: [{attribute: seniority, values: [c_level, vp]}]
    model: {name: c, version: "1", grades: [{grade: A, min_fit: 0}], stages: [{name: lead}]}
""",
        "test",
    )
    big = [event(EventType.FORM_SUBMITTED, NOW, company_size=5000, job_title="CTO")]
    assert [e.id for e in cat.applicable(catalog, _fold(catalog, big))] == ["everyone", "leaders"]
    visited = [*big, event(EventType.PAGE_VIEWED, NOW, url="https://x.io/Enterprise/plans")]
    found = cat.applicable(catalog, _fold(catalog, visited))
    assert [e.id for e in found] == ["everyone", "enterprise", "leaders"]
    assert "company_size" in catalog.kept_attributes


TINY = "{name: a, version: '1', grades: [{grade: A, min_fit: 0}], stages: [{name: l}]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: []", "at least 1"),
        (
            f"models: [{{id: a, model: {TINY}}}, {{id: a, model: {TINY}}}]",
            "repeated: a",
        ),
        ("models: [{id: a, applies_when: {outcomes: [page_viewed]}, file: x.yaml}]", "names a file"),
        (
            f"models: [{{id: Bad Id, model: {TINY}}}]",
            "id",
        ),
    ],
)
def test_bad_catalogs_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_catalog(text, "test")


def test_applicability_refuses_non_outcomes_as_outcomes() -> None:
    with pytest.raises(ModelError, match="outcome events only"):
        parse_catalog(
            f"models: [{{id: a, applies_when: {{outcomes: [page_viewed]}}, model: {TINY}}}]",
            "test",
        )


PRODUCT = """
models:
  - id: everyone
    file: default.yaml
  - id: upgrade
    applies_when:
      events: [{event_types: [page_viewed], url_pattern: "*/upgrade*"}]
    file: expansion.yaml
"""


def _profile(catalog: cat.Catalog, events: list) -> LeadProfile:
    return LeadProfile(lead_id="ld_" + "0" * 24, state=_fold(catalog, events), stage="lead")


def _bundled(name: str) -> str:
    return (Path(cat.__file__).parent.parent / "models" / name).read_text()


def test_a_model_that_applies_through_events_is_decided_as_applying() -> None:
    catalog = parse_catalog(PRODUCT, "test", _bundled)
    events = [
        event(EventType.PAGE_VIEWED, NOW - timedelta(hours=3), url="https://x.io/upgrade/seats"),
        event(EventType.MEETING_BOOKED, NOW - timedelta(hours=2)),
        event(EventType.PAGE_VIEWED, NOW - timedelta(hours=1), url="https://x.io/pricing"),
    ]
    decision = lifecycle.decide(catalog, _profile(catalog, events), NOW, "threshold", None)
    upgrade = decision.others["upgrade"]
    assert upgrade.applies and upgrade.stage == "expansion_ready"  # 69.8 points
    assert upgrade.transition is not None and upgrade.transition.reason == "threshold"
    # and not before any upgrade page: the counter is the catalog's, never a model's rule
    without = lifecycle.decide(catalog, _profile(catalog, events[1:]), NOW, "threshold", None)
    assert not without.others["upgrade"].applies and without.others["upgrade"].transition is None


def test_a_model_that_does_not_apply_keeps_the_lead_reviewed_while_its_points_fade() -> None:
    catalog = load_catalog("bundled:catalog")
    events = [
        event(EventType.FORM_SUBMITTED, NOW - timedelta(days=3), job_title="CTO"),
        event(EventType.DEAL_WON, NOW - timedelta(days=2)),  # prospect no longer applies
    ]
    profile = _profile(catalog, events)
    later = NOW + timedelta(days=200)  # expansion scores no form; prospect's form still fades
    decision = lifecycle.decide(catalog, profile, later, "decay", timedelta(hours=24))
    assert not decision.primary.applies
    assert decision.primary.review_at is not None  # still due: its faded sums get settled
    assert "form_submission" in decision.primary.settled  # ...on the grid of the day, never lost
    assert decision.primary.settled["form_submission"] is not None


def test_a_rule_named_like_the_applicability_counter_never_makes_its_model_apply() -> None:
    catalog = parse_catalog(
        f"""
models:
  - id: everyone
    model: {TINY}
  - id: ent
    applies_when:
      events: [{{event_types: [page_viewed], url_pattern: "*/enterprise*"}}]
    model:
      name: e
      version: "1"
      grades: [{{grade: A, min_fit: 0}}]
      stages: [{{name: l}}]
      engagement:
        rules: [{{id: applies, event_types: [email_opened], bins: [{{lower: 1, points: 5}}]}}]
""",
        "test",
    )
    opened = _fold(catalog, [event(EventType.EMAIL_OPENED, NOW)])
    assert [e.id for e in cat.applicable(catalog, opened)] == ["everyone"]
    assert engine.score(catalog.entry("ent").model, cat.view(catalog, "ent", opened), NOW).total == 5


def test_a_model_that_does_not_apply_is_settled_once_a_horizon_not_at_every_run() -> None:
    catalog = load_catalog("bundled:catalog")
    events = [  # a hot prospect (well past SQL in `prospect`) who then wins the deal
        event(EventType.DEMO_REQUESTED, NOW - timedelta(hours=5), job_title="VP Sales", company_size=900),
        event(EventType.PAGE_VIEWED, NOW - timedelta(hours=4), url="https://x.io/pricing"),
        event(EventType.DEAL_WON, NOW - timedelta(hours=3)),
    ]
    decision = lifecycle.decide(catalog, _profile(catalog, events), NOW, "decay", timedelta(hours=24))
    assert not decision.primary.applies and decision.primary.stage == "lead"
    assert decision.primary.review_at is not None
    assert decision.primary.review_at >= NOW + timedelta(hours=23)  # not "its SQL crossing is now"
