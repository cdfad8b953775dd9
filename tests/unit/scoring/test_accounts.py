"""Account scores: the definition from member summaries equals recomputation from the members' own
engine scores at any time; the account key; what public forms may not claim."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadscore.domain import EventType, Provider
from leadscore.errors import ModelError
from leadscore.model_store import load_catalog, parse_catalog
from leadscore.scoring import accounts, engine
from leadscore.scoring import catalog as cat
from tests.unit.scoring.conftest import NOW
from tests.unit.scoring.helpers import event
from tests.unit.scoring.test_catalog import _fold

pytestmark = pytest.mark.unit


def _people() -> dict[str, list]:
    """Three people at acme.io, engaged to different degrees, and one who did little."""
    vp, ic, cto, quiet = "vp@acme.io", "ic@acme.io", "cto@acme.io", "quiet@acme.io"
    return {
        vp: [
            event(EventType.FORM_SUBMITTED, NOW - timedelta(days=20), email=vp, job_title="VP Marketing"),
            event(EventType.DEMO_REQUESTED, NOW - timedelta(days=6), email=vp),
            event(EventType.PAGE_VIEWED, NOW - timedelta(days=2), email=vp, url="https://acme.io/pricing"),
        ],
        ic: [
            event(EventType.FORM_SUBMITTED, NOW - timedelta(days=9), email=ic, job_title="Analyst"),
            event(EventType.PAGE_VIEWED, NOW - timedelta(days=1), email=ic, url="https://acme.io/pricing"),
        ],
        cto: [
            event(EventType.FORM_SUBMITTED, NOW - timedelta(days=40), email=cto, job_title="CTO"),
            event(EventType.CONTACT_REQUESTED, NOW - timedelta(days=30), email=cto),
        ],
        quiet: [event(EventType.EMAIL_OPENED, NOW - timedelta(days=3), email=quiet)],
    }


def test_member_engagement_at_any_time_equals_the_engines_score_of_the_lead() -> None:
    catalog = load_catalog("bundled:catalog")
    model_id, model = accounts.feeding_model(catalog)
    for index, events in enumerate(_people().values()):
        state = _fold(catalog, events)
        member = accounts.member_of(catalog, f"ld_{index}", state, revision=3)
        assert "@" not in member.model_dump_json()  # no email in what the account keeps
        for days in (0, 1, 7, 30, 90, 400):
            at = NOW + timedelta(days=days)
            own = engine.score(model, cat.view(catalog, model_id, state), at)
            assert accounts.member_engagement(catalog, member, at) == own.engagement
            assert member.fit == own.fit


def test_account_score_equals_its_definition_recomputed_from_the_members_scores() -> None:
    catalog = load_catalog("bundled:catalog")
    definition = catalog.accounts
    assert definition is not None
    model_id, model = accounts.feeding_model(catalog)
    states = {email: _fold(catalog, events) for email, events in _people().items()}
    members = [accounts.member_of(catalog, email.split("@")[0], s, 1) for email, s in states.items()]
    for days in (0, 5, 20, 60):
        at = NOW + timedelta(days=days)
        scores = {e: engine.score(model, cat.view(catalog, model_id, s), at) for e, s in states.items()}
        engaged = [e for e, r in scores.items() if r.engagement >= definition.engaged_at]
        roles = {engine.derived_attributes(model, states[e]).get("seniority") for e in engaged}
        expected = (
            definition.fit.weight * max(r.fit for r in scores.values())
            + definition.engagement.weight
            * sum(sorted((r.engagement for r in scores.values()), reverse=True)[: definition.engagement.top])
            + min(definition.people.max, definition.people.points * len(engaged))
            + min(definition.roles.max, sum(definition.roles.points.get(str(r), 0) for r in roles))
        )
        got = accounts.score_account(catalog, members, at)
        assert got.total == pytest.approx(min(expected, definition.total_max), abs=1e-9)
        assert sorted(m.lead_id for m in got.engaged) == sorted(e.split("@")[0] for e in engaged)
        assert got == accounts.score_account(catalog, list(reversed(members)), at)  # order-free
    assert (
        accounts.score_account(catalog, members, NOW).total
        > accounts.score_account(catalog, members, NOW + timedelta(days=60)).total
    )  # engagement decays


def test_people_and_roles_count_distinct_engaged_members_and_name_the_senior_one() -> None:
    catalog = load_catalog("bundled:catalog")
    people = _people()
    states = [_fold(catalog, people[e]) for e in ("vp@acme.io", "ic@acme.io")]
    members = [accounts.member_of(catalog, f"ld_{i}", s, 1) for i, s in enumerate(states)]
    score = accounts.score_account(catalog, members, NOW)
    assert len(score.engaged) == 2 and score.people == 10
    assert score.roles == 8  # vp: 8; an individual contributor's role is worth nothing
    assert score.reasons[0] == "2 people engaged, incl. VP Marketing"
    # The same person twice (two summaries of one lead id cannot exist: the account keys by lead id)
    twice = accounts.score_account(catalog, [members[0], members[0].model_copy(update={"lead": "ld_x"})], NOW)
    assert twice.roles == 8  # a role counts once, however many people hold it


@pytest.mark.parametrize(
    ("email", "attributes", "expected"),
    [
        ("ann@acme.io", {}, "acme.io"),
        ("ann@ACME.io", {}, "acme.io"),
        ("ann@gmail.com", {}, None),  # free mailboxes never form an account
        ("ann@mailinator.com", {}, None),  # nor disposable ones
        ("ann@gmail.com", {"company_domain": "https://www.Acme.io/about"}, "acme.io"),
        ("ann@gmail.com", {"company_domain": "gmail.com"}, None),
        ("ann@acme.io", {"company_domain": "not a domain"}, "acme.io"),
        ("ann@acme.io", {"account_id": "CRM-0042", "company_domain": "beta.io"}, "crm-0042"),
    ],
)
def test_account_key(email: str, attributes: dict, expected: str | None) -> None:
    catalog = load_catalog("bundled:catalog")
    state = engine.LeadState(email=email, attributes=attributes)
    assert accounts.account_key(catalog, state) == expected


def test_no_accounts_without_an_accounts_section() -> None:
    catalog = load_catalog("bundled:default")
    assert accounts.account_key(catalog, engine.LeadState(email="ann@acme.io")) is None
    assert "company_domain" not in catalog.kept_attributes


@pytest.mark.parametrize("provider", [Provider.HTML, Provider.TYPEFORM, Provider.WEBFLOW, Provider.CALENDLY])
def test_a_public_form_claiming_a_company_domain_does_not_join_that_account(provider: Provider) -> None:
    catalog = load_catalog("bundled:catalog")
    forged = event(
        EventType.FORM_SUBMITTED,
        NOW,
        email="mallory@gmail.com",
        job_title="CEO",
        company_domain="bigcorp.com",
        account_id="bigcorp",
    ).model_copy(update={"provider": provider})
    state = _fold(catalog, [forged])
    assert "company_domain" not in state.attributes and "account_id" not in state.attributes
    assert state.attributes.get("job_title") == "CEO"  # the rest of the form is kept
    assert accounts.account_key(catalog, state) is None


@pytest.mark.parametrize("provider", [Provider.GENERIC, Provider.HUBSPOT])
def test_trusted_sources_may_name_the_account(provider: Provider) -> None:
    catalog = load_catalog("bundled:catalog")
    told = event(EventType.FORM_SUBMITTED, NOW, email="ann@gmail.com", company_domain="bigcorp.com")
    state = _fold(catalog, [told.model_copy(update={"provider": provider})])
    assert accounts.account_key(catalog, state) == "bigcorp.com"


def test_accounts_need_a_time_independent_fit_and_a_known_model() -> None:
    base = """
models:
  - id: main
    model:
      name: m
      version: "1"
      grades: [{grade: A, min_fit: 0}]
      stages: [{name: new}]
      fit:
        rules: [{id: pricing_fit, event_types: [page_viewed], points: 5, half_life_days: 30}]
accounts:
  stages: [{name: cold}, {name: hot, enter: 50}]
"""
    with pytest.raises(ModelError, match="fit rules that change with time"):
        parse_catalog(base, "test")
    with pytest.raises(ModelError, match="not a model of this catalog"):
        parse_catalog(base.replace("accounts:\n", "accounts:\n  model: other\n"), "test")
    with pytest.raises(ModelError, match="strictly increasing"):
        parse_catalog(
            base.replace("half_life_days: 30", "half_life_days: null").replace(
                "{name: hot, enter: 50}", "{name: hot, enter: 50}, {name: hotter, enter: 40}"
            ),
            "test",
        )


def test_a_lead_known_only_from_email_plumbing_takes_no_members_place() -> None:
    catalog = load_catalog("bundled:catalog")
    delivered = _fold(catalog, [event(EventType.EMAIL_DELIVERED, NOW, email="list@acme.io")])
    opened = _fold(
        catalog,
        [
            event(EventType.EMAIL_DELIVERED, NOW, email="list@acme.io"),
            event(EventType.EMAIL_OPENED, NOW, email="list@acme.io"),
        ],
    )
    assert accounts.account_key(catalog, delivered) == "acme.io"  # it belongs to the company...
    assert accounts.member_account(catalog, delivered) is None  # ...but counts once it does something
    assert accounts.member_account(catalog, opened) == "acme.io"
