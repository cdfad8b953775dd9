"""Explanations a marketer reads: relative to the average lead, at most `limit` readable reasons,
the rest folded into `other`, and the figures as shown add up."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.domain import EventType
from leadscore.scoring import engine
from leadscore.scoring.engine import LeadState
from leadscore.scoring.explain import MAX_LABEL, Explanation, average_lead, coverage, duration, explain
from leadscore.scoring.explain import _label as explain_label
from leadscore.scoring.model import ScoringModel
from tests.unit.scoring.conftest import NOW
from tests.unit.scoring.helpers import event, state_from

pytestmark = pytest.mark.unit

TITLES = ["VP Sales", "Student", "Head of Marketing", "Engineer", ""]
SIZES = [None, 5, 30, 120, 500, 5000]
COUNTRIES = ["Germany", "United States", "Brazil", "Narnia", ""]
EMAILS = ["ann@acme.io", "bob@gmail.com", "info@globex.com", "eve@mailinator.com"]
ACTIONS = [
    (EventType.DEMO_REQUESTED, None),
    (EventType.PAGE_VIEWED, "https://acme.io/pricing"),
    (EventType.PAGE_VIEWED, "https://acme.io/careers"),
    (EventType.PAGE_VIEWED, "https://acme.io/blog"),
    (EventType.EMAIL_OPENED, None),
    (EventType.EMAIL_CLICKED, None),
    (EventType.WEBINAR_ATTENDED, None),
    (EventType.EMAIL_UNSUBSCRIBED, None),
    (EventType.FORM_SUBMITTED, None),
]


def _lead(
    model: ScoringModel,
    email: str = "ann@acme.io",
    actions: list[tuple[int, int]] | None = None,
    **attributes: object,
) -> LeadState:
    """A lead who filled a form 100 days ago (with `attributes`), then did `actions`:
    (index into ACTIONS, days ago)."""
    events = [event(EventType.FORM_SUBMITTED, NOW - timedelta(days=100), email=email, **attributes)]
    for index, days in actions or []:
        kind, url = ACTIONS[index]
        events.append(event(kind, NOW - timedelta(days=days), email=email, url=url))
    return state_from(model, events)


def _population(model: ScoringModel) -> list[LeadState]:
    return [
        _lead(
            model, "ann@acme.io", [(0, 2), (1, 3)], job_title="VP Sales", company_size=120, country="Germany"
        ),
        _lead(model, "bob@gmail.com", [(4, 1), (4, 2)], job_title="Student"),
        _lead(model, "cy@globex.com", [(1, 20), (5, 4)], job_title="Head of Marketing", company_size=30),
        _lead(model, "dee@initech.com", [(3, 1)], company_size=5000, country="United States"),
    ]


def _with_average(model: ScoringModel, leads: list[LeadState]) -> ScoringModel:
    results = [engine.score(model, lead, NOW) for lead in leads]
    return model.model_copy(update={"average": average_lead(results)})


def _explained(model: ScoringModel, lead: LeadState, limit: int = 8, at: datetime = NOW) -> Explanation:
    return explain(model, engine.score(model, lead, at), limit, state=lead)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.sampled_from(TITLES),
    size=st.sampled_from(SIZES),
    country=st.sampled_from(COUNTRIES),
    email=st.sampled_from(EMAILS),
    actions=st.lists(st.tuples(st.integers(0, len(ACTIONS) - 1), st.integers(0, 400)), max_size=12),
    limit=st.integers(0, 10),
)
def test_the_shown_figures_add_up_and_reasons_come_largest_first(
    model: ScoringModel,
    title: str,
    size: int | None,
    country: str,
    email: str,
    actions: list[tuple[int, int]],
    limit: int,
) -> None:
    # Given a model with an average lead (the fixture is read-only), and any lead
    averaged = _with_average(model, _population(model))
    lead = _lead(averaged, email, actions, job_title=title, company_size=size, country=country)

    # When it is explained
    explanation = _explained(averaged, lead, limit)

    # Then score - average == sum(reasons) + other, for the rounded figures a reader sees
    shown = [r.points for r in explanation.reasons]
    assert explanation.score - explanation.average == pytest.approx(sum(shown) + explanation.other, abs=1e-9)
    assert len(shown) <= limit
    assert [abs(p) for p in shown] == sorted((abs(p) for p in shown), reverse=True)
    for value in [*shown, explanation.other, explanation.score, explanation.average]:
        assert value == round(value, 1) and len(repr(value).partition(".")[2]) <= 1  # no float noise
        assert repr(value) != "-0.0"
    assert all(r.points for r in explanation.reasons)  # nothing worth ~0 is listed
    assert all(len(r.label) <= MAX_LABEL for r in explanation.reasons)
    assert not {"baseline", "fit:bound", "total:bound", "engagement:bound"} & {
        r.rule_id for r in explanation.reasons
    }
    assert all("baseline" not in r.label and "limited to" not in r.label for r in explanation.reasons)
    assert 0.0 <= coverage(explanation) <= 1.0


def test_a_reason_is_the_leads_points_for_a_rule_minus_the_average_leads(model: ScoringModel) -> None:
    averaged = _with_average(model, _population(model))
    assert averaged.average is not None
    lead = _lead(averaged, "ann@acme.io", [(0, 1)], job_title="VP Sales", company_size=120, country="Germany")
    result = engine.score(averaged, lead, NOW)

    explanation = explain(averaged, result, limit=20, state=lead)

    seniority = next(r for r in explanation.reasons if r.rule_id == "seniority")
    assert seniority.points == round(18 - averaged.average.rules["seniority"], 1)
    assert seniority.label == "Job title is VP Sales"
    assert explanation.average == round(averaged.average.score, 1)
    assert explanation.relative_to == "average_lead"


def test_what_is_not_listed_is_folded_into_other(model: ScoringModel) -> None:
    # Given a lead with many reasons
    averaged = _with_average(model, _population(model))
    lead = _lead(averaged, "ann@acme.io", [(0, 1), (1, 2), (4, 3)], job_title="VP Sales", company_size=120)
    result = engine.score(averaged, lead, NOW)
    everything = explain(averaged, result, limit=50, state=lead)
    assert len(everything.reasons) > 3

    # When only the top three are listed
    top = explain(averaged, result, limit=3, state=lead)

    # Then they are the largest three, and `other` holds exactly the rest
    assert top.reasons == everything.reasons[:3]
    rest = sum(r.points for r in everything.reasons[3:]) + everything.other
    assert top.other == pytest.approx(rest, abs=0.05 * len(everything.reasons))
    assert top.folded_size == pytest.approx(
        sum(abs(r.points) for r in everything.reasons[3:]) + everything.folded_size,
        abs=0.1 * len(everything.reasons),
    )
    assert coverage(top) < coverage(everything)


def test_limits_of_a_section_are_folded_never_a_reason(model: ScoringModel) -> None:
    # The default model caps fit at 35: a perfect fit is limited, and the limit goes to `other`.
    lead = _lead(
        model, "ann@acme.io", [], job_title="CEO", company_size=5000, country="Germany", industry="software"
    )
    result = engine.score(model, lead, NOW)
    bound = next(c.points for c in result.contributions if c.rule_id == "fit:bound")

    explanation = explain(model, result, state=lead)

    assert bound < 0
    assert explanation.other == pytest.approx(round(bound, 1), abs=0.15)
    assert sum(r.points for r in explanation.reasons) == pytest.approx(result.total - bound, abs=0.3)


def test_a_model_without_an_average_is_explained_relative_to_zero_without_the_baseline(
    model: ScoringModel,
) -> None:
    with_offset = model.model_copy(update={"offset": 5.0})
    lead = _lead(with_offset, "ann@acme.io", [(0, 1)], job_title="VP Sales")
    result = engine.score(with_offset, lead, NOW)

    explanation = explain(with_offset, result, state=lead)

    assert explanation.relative_to == "zero"
    assert explanation.average == 0.0
    assert {r.rule_id for r in explanation.reasons} == {c.rule_id for c in result.contributions if c.category}
    assert explanation.other == pytest.approx(5.0, abs=0.1 * len(explanation.reasons))  # the baseline
    assert explanation.folded == 1 and explanation.folded_size == 5.0
    assert explanation.reasons[0].label == "Requested a demo (recent)"


def test_labels_name_the_leads_own_values(model: ScoringModel) -> None:
    averaged = _with_average(model, _population(model))
    keen = _lead(averaged, "ann@acme.io", [(0, 2)], job_title="VP Sales", company_size=120)
    quiet = _lead(averaged, "zed@acme.io", [], company_size=5000)

    keen_labels = {r.rule_id: r.label for r in _explained(averaged, keen, 50).reasons}
    quiet_labels = {r.rule_id: r.label for r in _explained(averaged, quiet, 50).reasons}

    assert keen_labels["seniority"] == "Job title is VP Sales"
    assert keen_labels["company_size"] == "Company size is 50-199 employees"
    assert keen_labels["region"] == "Country not given"
    assert keen_labels["demo_request"] == "Requested a demo (recent)"
    assert quiet_labels["demo_request"] == "No demo requested"
    assert quiet_labels["seniority"] == "Job title not given"
    assert quiet_labels["company_size"] == "Company size is 1000+ employees"


def test_an_old_action_says_it_has_faded(model: ScoringModel) -> None:
    lead = _lead(model, "ann@acme.io", [(0, 75)])

    labels = {r.rule_id: r.label for r in _explained(model, lead).reasons}

    assert labels["demo_request"] == "Requested a demo (a while ago)"


def test_without_the_lead_state_labels_come_from_the_scored_values(model: ScoringModel) -> None:
    lead = _lead(model, "ann@acme.io", [], company_size=120, industry="Retail")

    labels = {r.rule_id: r.label for r in explain(model, engine.score(model, lead, NOW)).reasons}

    assert labels["company_size"] == "Company size is 50-199 employees"
    assert labels["industry"] == "Industry is Retail"


SEGMENT_MODEL = {
    "name": "segments",
    "version": "1",
    "grades": [{"grade": "A", "min_fit": 0}],
    "stages": [{"name": "lead"}],
    "fit": {
        "rules": [
            {
                "id": "sources",
                "conditions": [
                    {
                        "attribute": "lead_source",
                        "label": "Lead Source",
                        "values": [
                            "Google",
                            "Olark Chat",
                            "Direct Traffic",
                            "Organic Search",
                            "Referral Sites",
                        ]
                        + [f"Partner {i:03d} with a long name" for i in range(30)],
                    },
                    {
                        "attribute": "total_time",
                        "label": "Total Time",
                        "lower": 900.0,
                        "upper": 1.2599999904632568e3,
                    },
                ],
                "points": 12,
            },
            {
                "id": "origin_x_size",
                "attributes": [
                    {"attribute": "lead_origin", "label": "Lead Origin", "values": {"api": "api"}},
                    {
                        "attribute": "company_size",
                        "label": "Company size",
                        "bins": [{"upper": 50}, {"lower": 50}],
                    },
                ],
                "points": {"api": {">= 50": 7}},
            },
        ]
    },
}


def test_segment_and_pair_rules_read_as_short_sentences() -> None:
    model = ScoringModel.model_validate(SEGMENT_MODEL)
    lead = LeadState(
        email="ann@acme.io",
        attributes={"lead_source": "Google", "total_time": "1000", "lead_origin": "API", "company_size": 80},
    )

    explanation = explain(model, engine.score(model, lead, NOW), state=lead)
    labels = {r.rule_id: r.label for r in explanation.reasons}

    assert (
        labels["sources"] == "Lead Source is one of Google, Olark Chat and 33 others and Total Time 900-1260"
    )
    assert labels["origin_x_size"] == "Lead Origin is API and Company size is >= 50"
    assert explanation.score == 19.0


def test_reasons_with_the_same_sentence_are_one_line(model: ScoringModel) -> None:
    # business_email and personal_email both read "Free email address" for a gmail lead.
    averaged = _with_average(model, _population(model))
    lead = _lead(averaged, "bob@gmail.com", [])

    reasons = _explained(averaged, lead, 50).reasons

    free = [r for r in reasons if r.label == "Free email address"]
    assert len(free) == 1
    assert set(free[0].rule_id.split("+")) == {"business_email", "personal_email"}


def test_actions_not_taken_beyond_the_list_become_one_line(model: ScoringModel) -> None:
    # Given an average lead that did a bit of everything, and a lead who did nothing
    busy = [
        _lead(model, f"busy{i}@acme.io", [(0, 2), (1, 3), (4, 1), (5, 2), (6, 4), (2, 5)], job_title="CEO")
        for i in range(3)
    ]
    averaged = _with_average(model, [*busy, _lead(model, "idle@acme.io", [])])
    idle = _lead(averaged, "idle2@acme.io", [], job_title="CEO")
    result = engine.score(averaged, idle, NOW)
    separate = explain(averaged, result, limit=50, state=idle)
    missing = [r for r in separate.reasons if r.label.startswith("No ")]
    assert len(missing) >= 4

    # When only three lines are listed
    short = explain(averaged, result, limit=3, state=idle)

    # Then the actions beyond the top two not taken share one line per direction, summed
    merged = [r for r in short.reasons if "," in r.label or " or " in r.label]
    assert len(merged) == 1 and merged[0].label.startswith("No ")
    parts = [r for r in separate.reasons if r.rule_id in merged[0].rule_id.split("+")]
    assert len(parts) >= 2 and all(r.points < 0 for r in parts)
    assert merged[0].points == pytest.approx(sum(r.points for r in parts), abs=0.05 * len(parts))
    assert not any(r.rule_id == "careers_page" for r in parts)  # a positive absence never cancels a negative
    assert coverage(short) > sum(abs(r.points) for r in separate.reasons[:3]) / (
        sum(abs(r.points) for r in separate.reasons) + separate.folded_size
    )


WEBSITE_MODEL = {
    "name": "website",
    "version": "1",
    "grades": [{"grade": "A", "min_fit": 0}],
    "stages": [{"name": "lead"}],
    "engagement": {
        "rules": [
            {
                "id": "pricing_read",
                "event_types": ["page_engaged"],
                "url_pattern": "*/pricing*",
                "min_engaged_seconds": 30,
                "points": 5,
                "repeatable": False,
            },
            {"id": "long_read", "event_types": ["page_engaged"], "min_engaged_seconds": 90, "points": 2},
            {"id": "returns", "event_types": ["visit_returned"], "points": 5, "repeatable": False},
            {"id": "firsts", "event_types": ["visit_started"], "points": 1},
            {
                "id": "time_on_site",
                "event_types": ["page_engaged"],
                "measure": "engaged_seconds",
                "bins": [{"lower": 300, "points": 4}],
            },
            {
                "id": "pricing_time",
                "event_types": ["page_engaged"],
                "url_pattern": "*/pricing*",
                "measure": "engaged_seconds",
                "bins": [{"lower": 60, "points": 2}],
            },
        ]
    },
}


def test_website_rules_read_as_sentences_about_visits_and_engaged_time() -> None:
    # Given a lead who came back and read pricing for 4 minutes, and one who only arrived once
    model = ScoringModel.model_validate(WEBSITE_MODEL)
    pricing = "https://acme.io/pricing"
    keen = state_from(
        model,
        [
            event(EventType.VISIT_RETURNED, NOW - timedelta(days=1)),
            event(EventType.PAGE_ENGAGED, NOW - timedelta(days=1), url=pricing, engaged_seconds=240),
            event(
                EventType.PAGE_ENGAGED,
                NOW - timedelta(days=1),
                url="https://acme.io/docs",
                engaged_seconds=500,
            ),
        ],
    )
    brief = state_from(model, [event(EventType.VISIT_STARTED, NOW)])

    keen_labels = {
        r.rule_id: r.label for r in explain(model, engine.score(model, keen, NOW), state=keen).reasons
    }
    brief_result = engine.score(model, brief, NOW)
    everything = {
        rule.id: explain_label(rule, 0.0, None, None, brief)
        for _, rule in model.all_rules()
        if rule.id != "firsts"
    }

    # Then each says what the lead did, with engaged time as a reader says it
    assert keen_labels == {
        "pricing_read": "Read a pricing page for 30 s or more",
        "long_read": "Read a page for 1 min 30 s or more",
        "returns": "Came back to the website",
        "time_on_site": "Time on the website: 12 min",
        "pricing_time": "Time on pricing pages: 4 min",
    }
    # and what it has not done yet
    assert everything == {
        "pricing_read": "No pricing page read for 30 s or more",
        "long_read": "No page read for 1 min 30 s or more",
        "returns": "No return visit",
        "time_on_site": "No time on the website",
        "pricing_time": "No time on pricing pages",
    }
    assert [r.label for r in explain(model, brief_result, state=brief).reasons] == [
        "First visit to the website"
    ]


def test_time_on_site_reads_from_the_scored_line_without_the_lead_state() -> None:
    model = ScoringModel.model_validate(WEBSITE_MODEL)
    lead = state_from(
        model, [event(EventType.PAGE_ENGAGED, NOW, url="https://acme.io/a", engaged_seconds=1800)] * 3
    )

    labels = {r.rule_id: r.label for r in explain(model, engine.score(model, lead, NOW)).reasons}

    assert labels["time_on_site"] == "Time on the website: 1 h 30 min"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (90, "1 min 30 s"),
        (754, "12 min"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
    ],
)
def test_engaged_time_reads_in_seconds_minutes_and_hours(seconds: int, text: str) -> None:
    assert duration(seconds) == text
