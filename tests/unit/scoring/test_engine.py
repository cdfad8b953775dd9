from __future__ import annotations

import random
from datetime import timedelta

import pytest

from leadscore.domain import EventType
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel

from .conftest import NOW
from .helpers import event, state_from

pytestmark = pytest.mark.unit

VP = {"job_title": "VP of Marketing", "company_size": "500", "industry": "Software", "country": "US"}


def test_fit_of_a_decision_maker_at_a_target_company_is_capped_at_the_section_max(
    model: ScoringModel,
) -> None:
    state = state_from(model, [event(EventType.FORM_SUBMITTED, NOW, **VP)])

    result = engine.score(model, state, NOW)

    assert result.fit == 35  # 18 + 12 + 8 + 7 + 8 = 53, section max 35
    assert result.grade == "A"
    assert any(c.rule_id == "fit:bound" and c.points == -18 for c in result.contributions)


def test_contributions_add_up_exactly_to_the_total_and_come_largest_first(model: ScoringModel) -> None:
    events = [
        event(EventType.DEMO_REQUESTED, NOW - timedelta(days=3), **VP),
        event(EventType.PAGE_VIEWED, NOW - timedelta(days=1), url="https://acme.io/pricing"),
        *[event(EventType.EMAIL_OPENED, NOW - timedelta(hours=h)) for h in range(12)],
    ]
    result = engine.score(model, state_from(model, events), NOW)

    assert sum(c.points for c in result.contributions) == pytest.approx(result.total, abs=1e-9)
    magnitudes = [abs(c.points) for c in result.contributions]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert result.total == pytest.approx(result.fit + result.engagement + result.negative)
    assert result.contributions[0].rule_id == "demo_request"


def test_points_fade_by_the_rule_half_life(model: ScoringModel) -> None:
    state = state_from(model, [event(EventType.DEMO_REQUESTED, NOW)])

    fresh = engine.score(model, state, NOW).engagement
    after_one_half_life = engine.score(model, state, NOW + timedelta(days=30)).engagement

    assert fresh == pytest.approx(25)
    assert after_one_half_life == pytest.approx(12.5)


def test_a_late_event_gets_the_points_its_age_deserves(model: ScoringModel) -> None:
    late = state_from(model, [event(EventType.DEMO_REQUESTED, NOW - timedelta(days=60))])

    assert engine.score(model, late, NOW).engagement == pytest.approx(25 / 4)


def test_event_order_does_not_change_the_score(model: ScoringModel) -> None:
    events = [
        event(EventType.EMAIL_CLICKED, NOW - timedelta(days=d), url=f"https://acme.io/blog/{d}")
        for d in range(10)
    ] + [event(EventType.WEBINAR_ATTENDED, NOW - timedelta(days=4)), event(EventType.EMAIL_BOUNCED_SOFT, NOW)]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)

    in_order = engine.score(model, state_from(model, events), NOW)
    reordered = engine.score(model, state_from(model, shuffled), NOW)

    assert reordered.total == pytest.approx(in_order.total, abs=1e-9)


def test_a_once_only_rule_counts_once_however_often_it_happens(model: ScoringModel) -> None:
    demos = [event(EventType.DEMO_REQUESTED, NOW) for _ in range(3)]

    result = engine.score(model, state_from(model, demos), NOW)

    assert result.engagement == pytest.approx(25)


def test_a_booked_meeting_outweighs_a_demo_request_once_and_fades_like_one(model: ScoringModel) -> None:
    demo = engine.score(model, state_from(model, [event(EventType.DEMO_REQUESTED, NOW)]), NOW)
    # Given a meeting booked, then booked again (a reschedule is a new booking)
    booked = state_from(model, [event(EventType.MEETING_BOOKED, NOW), event(EventType.MEETING_BOOKED, NOW)])

    result = engine.score(model, booked, NOW)

    assert result.engagement == pytest.approx(30) and result.engagement >= demo.engagement
    assert result.contributions[0].rule_id == "meeting_booked"
    once = state_from(model, [event(EventType.MEETING_BOOKED, NOW)])
    assert engine.score(model, once, NOW + timedelta(days=30)).engagement == pytest.approx(15)


def test_a_canceled_meeting_takes_back_half_of_the_booking_in_any_order(model: ScoringModel) -> None:
    booked = event(EventType.MEETING_BOOKED, NOW - timedelta(days=2))
    canceled = event(EventType.MEETING_CANCELED, NOW - timedelta(days=1))

    in_order = engine.score(model, state_from(model, [booked, canceled]), NOW)
    reordered = engine.score(model, state_from(model, [canceled, booked]), NOW)

    assert in_order.negative == pytest.approx(-15 * 2 ** (-1 / 30))
    assert in_order.engagement + in_order.negative > 0  # the interest was real
    assert reordered.total == pytest.approx(in_order.total, abs=1e-9)


def test_repeatable_rules_stop_at_their_cap(model: ScoringModel) -> None:
    opens = [event(EventType.EMAIL_OPENED, NOW) for _ in range(40)]

    result = engine.score(model, state_from(model, opens), NOW)

    opens_points = next(c.points for c in result.contributions if c.rule_id == "email_opens")
    assert opens_points == 5


def test_url_patterns_select_the_rule(model: ScoringModel) -> None:
    pricing = state_from(model, [event(EventType.PAGE_VIEWED, NOW, url="https://acme.io/Pricing?plan=pro")])
    careers = state_from(model, [event(EventType.PAGE_VIEWED, NOW, url="https://acme.io/careers/engineer")])

    pricing_rules = {c.rule_id for c in engine.score(model, pricing, NOW).contributions}
    careers_result = engine.score(model, careers, NOW)

    assert "pricing_page" in pricing_rules
    assert any(c.rule_id == "careers_page" and c.points == -15 for c in careers_result.contributions)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("ann@acme.io", "corporate"),
        ("ann@gmail.com", "free"),
        ("ann@mailinator.com", "disposable"),
        ("sales@acme.io", "role"),
    ],
)
def test_email_domain_class(model: ScoringModel, email: str, expected: str) -> None:
    state = engine.LeadState(email=email)

    assert engine.derived_attributes(model, state)["email_domain_class"] == expected


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("Chief Executive Officer", "c_level"),
        ("CTO", "c_level"),
        ("Co-Founder", "c_level"),
        ("SVP Sales", "vp"),
        ("Head of Growth", "vp"),
        ("Director, Demand Generation", "director"),
        ("Marketing Manager", "manager"),
        ("Software Engineer", "individual"),
        ("Marketing Intern", "student_intern"),
        ("MBA Student", "student_intern"),
    ],
)
def test_job_titles_normalize_to_seniority_levels(model: ScoringModel, title: str, level: str) -> None:
    state = engine.LeadState(email="a@acme.io", attributes={"job_title": title})

    assert engine.derived_attributes(model, state)["seniority"] == level


def test_student_with_free_email_scores_low(model: ScoringModel) -> None:
    state = state_from(
        model,
        [event(EventType.FORM_SUBMITTED, NOW, email="kid@gmail.com", job_title="Student", country="India")],
    )

    result = engine.score(model, state, NOW)

    assert result.grade == "D"
    assert result.total < 40


def test_negative_signals_pull_the_score_down_and_suppress(model: ScoringModel) -> None:
    base = [event(EventType.DEMO_REQUESTED, NOW, **VP)]
    unsubscribed = base + [event(EventType.EMAIL_UNSUBSCRIBED, NOW)]

    before = engine.score(model, state_from(model, base), NOW)
    after = engine.score(model, state_from(model, unsubscribed), NOW)

    assert after.total == pytest.approx(before.total - 20)
    assert after.suppressed and not before.suppressed


def test_resubscribing_lifts_the_unsubscribe_suppression(model: ScoringModel) -> None:
    events = [event(EventType.EMAIL_UNSUBSCRIBED, NOW), event(EventType.EMAIL_RESUBSCRIBED, NOW)]

    assert not state_from(model, events).suppressed


def test_the_latest_consent_change_wins_so_a_subscriber_who_unsubscribes_is_suppressed(
    model: ScoringModel,
) -> None:
    # A Mailchimp member's history starts with a subscribe (email_resubscribed): one subscribe
    # and one later unsubscribe is an opt-out, not a tie
    subscribed_then_left = [
        event(EventType.EMAIL_RESUBSCRIBED, NOW - timedelta(days=30)),
        event(EventType.EMAIL_UNSUBSCRIBED, NOW),
    ]
    left_then_came_back = [
        event(EventType.EMAIL_UNSUBSCRIBED, NOW - timedelta(days=30)),
        event(EventType.EMAIL_RESUBSCRIBED, NOW - timedelta(days=2)),
        event(EventType.EMAIL_RESUBSCRIBED, NOW),
    ]

    assert state_from(model, subscribed_then_left).suppressed
    assert not state_from(model, left_then_came_back).suppressed


def test_no_sender_can_set_consent_through_an_events_attributes(model: ScoringModel) -> None:
    # A form cannot say "this person consents again": only consent events set it
    claim = event(EventType.FORM_SUBMITTED, NOW, email_consent=True)
    state = state_from(model, [event(EventType.EMAIL_UNSUBSCRIBED, NOW - timedelta(days=1)), claim])

    assert engine.CONSENT_ATTRIBUTE not in engine.effect_of(model, claim).attributes
    assert state.suppressed


def test_inactivity_rule_fires_after_its_delay(model: ScoringModel) -> None:
    state = state_from(model, [event(EventType.FORM_SUBMITTED, NOW, **VP)])

    at_89_days = engine.score(model, state, NOW + timedelta(days=89))
    at_91_days = engine.score(model, state, NOW + timedelta(days=91))

    assert all(c.rule_id != "inactive_90d" for c in at_89_days.contributions)
    assert any(c.rule_id == "inactive_90d" and c.points == -10 for c in at_91_days.contributions)


def test_total_never_leaves_the_model_bounds(model: ScoringModel) -> None:
    events = [
        event(EventType.EMAIL_COMPLAINED, NOW, email="x@mailinator.com"),
        event(EventType.EMAIL_BOUNCED_HARD, NOW, email="x@mailinator.com"),
    ]

    result = engine.score(model, state_from(model, events), NOW)

    assert result.total == 0
    assert sum(c.points for c in result.contributions) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        ("lead", 39.9, "lead"),
        ("lead", 40, "MQL"),
        ("lead", 75, "SQL"),
        ("MQL", 31, "MQL"),  # hysteresis: stays until below 30
        ("MQL", 29.9, "lead"),
        ("SQL", 61, "SQL"),
        ("SQL", 45, "MQL"),
        ("SQL", 10, "lead"),
        ("unknown-stage", 50, "MQL"),
    ],
)
def test_stage_thresholds_have_hysteresis(
    model: ScoringModel, current: str, total: float, expected: str
) -> None:
    assert engine.next_stage(model, current, total) == expected


def test_next_review_finds_when_a_lead_will_decay_out_of_its_stage(model: ScoringModel) -> None:
    state = state_from(
        model,
        [
            event(EventType.DEMO_REQUESTED, NOW, email="a@gmail.com"),
            event(EventType.PAGE_VIEWED, NOW, email="a@gmail.com", url="https://x.io/pricing"),
        ],
    )
    assert engine.next_stage(model, "lead", engine.score(model, state, NOW).total) == "MQL"

    review = engine.next_review(model, state, NOW, "MQL", timedelta(days=60))

    assert review is not None
    just_before = engine.score(model, state, review - timedelta(minutes=2)).total
    at_review = engine.score(model, state, review).total
    assert just_before >= 30 > at_review


def test_a_lead_with_nothing_left_to_decay_needs_no_review(model: ScoringModel) -> None:
    state = engine.LeadState(email="a@acme.io", attributes={"job_title": "CEO"})

    assert engine.next_review(model, state, NOW, "lead", timedelta(days=1)) is None


def test_calibration_interpolates_probability() -> None:
    model = ScoringModel.model_validate(
        {
            "name": "t",
            "version": "1",
            "grades": [{"grade": "A", "min_fit": 0}],
            "stages": [{"name": "lead"}],
            "calibration": [{"score": 0, "probability": 0.1}, {"score": 100, "probability": 0.9}],
        }
    )

    assert engine.probability_for(model, 50) == pytest.approx(0.5)
    assert engine.probability_for(model, -5) == pytest.approx(0.1)
    assert engine.probability_for(model, 500) == pytest.approx(0.9)
