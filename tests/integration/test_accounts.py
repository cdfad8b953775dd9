"""Account scores through the real pipeline (issue 11, section 2): an account's score equals its
definition recomputed from its members' profiles; replayed and reversed stream records give the
same account; each account transition is announced once; erasure removes the member."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from leadscore import accounts
from leadscore.config import Settings
from leadscore.local.glue import LambdaContext
from leadscore.model_store import load_catalog
from leadscore.repository import from_dynamo, profile_from_item
from leadscore.repository.accounts import account_from_item, member_attribute
from leadscore.scoring.accounts import member_of, score_account

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}
PEOPLE = {
    "vp@acme.io": ("demo_requested", {"job_title": "VP Marketing", "company_size": 800, "country": "US"}),
    "cto@acme.io": ("contact_requested", {"job_title": "CTO", "industry": "Software"}),
    "ic@acme.io": ("demo_requested", {"job_title": "Analyst"}),
}


def _use_catalog(stack: Stack) -> Settings:
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = "bundled:catalog"
    return Settings.from_env(stack.runner.environments["EvaluateThresholdsFunction"])


def _account_item(stack: Stack, account: str) -> dict[str, Any] | None:
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["AccountsTable"])
    return table.get_item(Key={"account": account}).get("Item")


def _post_people(stack: Stack) -> None:
    for email, (event, attributes) in PEOPLE.items():
        status, _ = stack.post_generic({"email": email, "event": "form_submitted", "attributes": attributes})
        assert status == 202
        status, _ = stack.post_generic({"email": email, "event": event})
        assert status == 202
    stack.settle()


def test_account_score_equals_its_definition_recomputed_from_the_members_profiles(stack: Stack) -> None:
    _use_catalog(stack)
    catalog = load_catalog("bundled:catalog")

    _post_people(stack)

    item = _account_item(stack, "acme.io")
    assert item is not None
    record = account_from_item(item, "unengaged")
    profiles = {lead_id_for(e): profile_from_item(stack.profile(lead_id_for(e)) or {}, "") for e in PEOPLE}
    assert set(record.members) == set(profiles)
    recomputed = [member_of(catalog, lead, p.state, p.revision) for lead, p in profiles.items()]
    for summary in recomputed:  # what the account keeps is the profile's own summary, exactly
        assert record.members[summary.lead].same_as(summary)
    at = stack.clock.now()
    assert score_account(catalog, record.members.values(), at) == score_account(catalog, recomputed, at)
    assert "@" not in json.dumps(from_dynamo(dict(item)), default=str)  # no email on the account


def test_each_account_transition_is_announced_once_with_its_engaged_people(stack: Stack) -> None:
    _use_catalog(stack)
    sales = stack.subscribe("SalesTopic", {"schema": ["leadscore.account_stage_changed"]})

    _post_people(stack)
    stack.settle()  # nothing more to do: the announcement is not repeated

    record = account_from_item(_account_item(stack, "acme.io") or {}, "unengaged")
    assert record.stage == "sales_ready" and record.stage_seq == 1 and record.announce_pending is None
    messages = stack.messages(sales)
    assert len(messages) == 1
    (message,) = messages
    assert message["account"] == "acme.io" and message["to_stage"] == "sales_ready"
    assert message["top_reasons"][0] == "3 people engaged, incl. CTO"
    assert {p["lead_id"] for p in message["engaged"]} == {lead_id_for(e) for e in PEOPLE}
    assert "email" not in json.dumps(message)


def test_replayed_and_reversed_profile_stream_records_give_the_same_account(stack: Stack) -> None:
    settings = _use_catalog(stack)
    catalog = load_catalog("bundled:catalog")
    email = "vp@acme.io"
    lead = lead_id_for(email)
    images: list[dict[str, Any]] = []
    for event in ("form_submitted", "demo_requested", "meeting_booked"):
        stack.post_generic({"email": email, "event": event, "attributes": {"job_title": "VP Sales"}})
        stack.settle()
        images.append(from_dynamo(dict(stack.profile(lead) or {})))
    in_order = account_from_item(_account_item(stack, "acme.io") or {}, "").members[lead]
    # The records as the stream delivered them, give or take the stage saves between them
    records = list(zip([None, *images[:-1]], images, strict=True))

    # Replayed in order: the same member (a record's summary is never stored over a newer one)
    for old, new in records:
        accounts.on_member_change(settings, catalog, old, new)
    assert account_from_item(_account_item(stack, "acme.io") or {}, "").members[lead].same_as(in_order)

    # Reversed, from scratch: the same member summary
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["AccountsTable"])
    table.delete_item(Key={"account": "acme.io"})
    for old, new in reversed(records):
        accounts.on_member_change(settings, catalog, old, new)
    again = account_from_item(_account_item(stack, "acme.io") or {}, "").members[lead]
    assert again.same_as(in_order) and again.rev == images[-1]["revision"]


def test_a_lead_that_moves_to_another_account_leaves_the_old_one(stack: Stack) -> None:
    settings = _use_catalog(stack)
    catalog = load_catalog("bundled:catalog")
    email = "ann@gmail.com"
    lead = lead_id_for(email)
    # Distinct times: the newer attribute wins (two events of the same second would tie on time)
    at = stack.clock.now().replace(microsecond=0)
    told = {"email": email, "event": "demo_requested", "attributes": {"company_domain": "acme.io"}}
    stack.post_generic({**told, "occurred_at": (at - timedelta(minutes=5)).isoformat()})
    stack.settle()
    first = from_dynamo(dict(stack.profile(lead) or {}))
    moved = {"event": "form_submitted", "attributes": {"company_domain": "beta.io"}}
    stack.post_generic({**told, **moved, "occurred_at": at.isoformat()})
    stack.settle()
    second = from_dynamo(dict(stack.profile(lead) or {}))

    assert set(account_from_item(_account_item(stack, "acme.io") or {}, "").members) == set()
    assert set(account_from_item(_account_item(stack, "beta.io") or {}, "").members) == {lead}
    # A replay of the older record cannot bring the lead back to its old account
    accounts.on_member_change(settings, catalog, None, first)
    assert set(account_from_item(_account_item(stack, "acme.io") or {}, "").members) == set()
    assert account_from_item(_account_item(stack, "acme.io") or {}, "").left.keys() == {lead}
    accounts.on_member_change(settings, catalog, first, second)
    assert set(account_from_item(_account_item(stack, "beta.io") or {}, "").members) == {lead}


def test_erasing_a_lead_removes_it_from_its_account(stack: Stack) -> None:
    _use_catalog(stack)
    _post_people(stack)
    lead = lead_id_for("vp@acme.io")
    assert member_attribute(lead) in (_account_item(stack, "acme.io") or {})

    status, _, _ = stack.runner.handle_http("DELETE", f"/v1/leads/{lead}", SIGNED, b"")
    stack.settle()

    assert status == 200
    item = _account_item(stack, "acme.io") or {}
    assert member_attribute(lead) not in item and lead not in item["ids"]
    assert lead not in json.dumps(from_dynamo(dict(item)), default=str)
    assert len(account_from_item(item, "").members) == 2


def test_a_single_model_deployment_keeps_no_accounts(stack: Stack) -> None:
    _post_people(stack)

    table = stack.session.resource("dynamodb").Table(stack.physical.tables["AccountsTable"])
    assert table.scan()["Items"] == []
    assert stack.profile(lead_id_for("vp@acme.io")) is not None


def test_an_account_whose_engagement_fades_is_demoted_by_the_decay_job_and_announced_once(
    stack: Stack,
) -> None:
    settings = _use_catalog(stack)
    sales = stack.subscribe("SalesTopic", {"schema": ["leadscore.account_stage_changed"]})
    _post_people(stack)
    assert [m["direction"] for m in stack.messages(sales)] == ["promotion"]

    later = stack.clock.advance(timedelta(days=120))
    stack.runner.fire_schedule("DecayScoresFunction", later)  # the decay job's handler reviews accounts too
    stack.settle()
    again = accounts.run_account_decay(settings, now=later + timedelta(hours=1))  # reviewed again: no change
    stack.settle()

    assert again.reviewed == 1 and again.transitions == 0
    record = account_from_item(_account_item(stack, "acme.io") or {}, "")
    assert record.stage == "unengaged" and record.scored_at is not None
    catalog = load_catalog("bundled:catalog")
    assert record.score == pytest.approx(
        score_account(catalog, record.members.values(), record.scored_at).total, abs=1e-6
    )
    (message,) = stack.messages(sales)
    assert (message["from_stage"], message["to_stage"], message["reason"]) == (
        "sales_ready",
        "unengaged",
        "decay",
    )


def _get(stack: Stack, path: str, query: str = "") -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.runner.handle_http("GET", path, SIGNED, b"", query)
    return status, json.loads(raw or b"{}")


def test_the_account_api_shows_score_members_and_reasons_and_ranks_accounts(stack: Stack) -> None:
    _use_catalog(stack)
    _post_people(stack)
    for email in ("solo@beta.io", "solo@gamma.io"):
        stack.post_generic({"email": email, "event": "form_submitted"})
    stack.settle()

    status, account = _get(stack, "/v1/accounts/ACME.io")
    assert status == 200, account
    assert account["account"] == "acme.io" and account["stage"] == "sales_ready"
    assert {m["lead_id"] for m in account["members"]} == {lead_id_for(e) for e in PEOPLE}
    assert all(m["engaged"] for m in account["members"]) and account["reasons"][0].startswith("3 people")
    assert account["total"] == account["stored_score"]  # scored now = at the stage change (same clock)

    _, lead = _get(stack, f"/v1/leads/{lead_id_for('vp@acme.io')}")
    assert lead["account"] == "acme.io"

    status, page = _get(stack, "/v1/accounts", "stage=sales_ready")
    assert status == 200 and [a["account"] for a in page["items"]] == ["acme.io"]
    status, first = _get(stack, "/v1/accounts", "stage=unengaged&limit=1")
    assert status == 200 and len(first["items"]) == 1 and first["next_cursor"]
    status, second = _get(stack, "/v1/accounts", f"stage=unengaged&limit=1&cursor={first['next_cursor']}")
    assert status == 200, second
    assert {a["account"] for a in first["items"] + second["items"]} == {"beta.io", "gamma.io"}


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/v1/accounts/nobody.example", "", 404),
        ("/v1/accounts/not%20a%20key!", "", 400),
        ("/v1/accounts", "stage=nope", 400),
        ("/v1/accounts", "", 400),
        ("/v1/accounts", "stage=engaged&cursor=zzz", 400),
        ("/v1/accounts", "stage=engaged&limit=0", 400),
    ],
)
def test_the_account_api_answers_bad_requests_with_a_4xx(
    stack: Stack, path: str, query: str, status: int
) -> None:
    _use_catalog(stack)
    answer_status, answer = _get(stack, path, query)
    assert answer_status == status and answer["error"]


def test_a_single_model_deployment_answers_404_for_accounts(stack: Stack) -> None:
    status, answer = _get(stack, "/v1/accounts/acme.io")
    assert status == 404 and "no accounts" in answer["message"]


def test_an_address_folded_into_another_lead_leaves_the_account_and_no_one_counts_twice(
    stack: Stack,
) -> None:
    from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
    from leadscore.repository import EventLedger

    from ..conftest import TEST_LEAD_KEYS

    _use_catalog(stack)
    old, new = "ann@acme.io", "ann.b@acme.io"
    for email in (old, new):
        stack.post_generic(
            {"email": email, "event": "demo_requested", "attributes": {"job_title": "VP Sales"}}
        )
    stack.settle()
    assert set(account_from_item(_account_item(stack, "acme.io") or {}, "").members) == {
        lead_id_for(old),
        lead_id_for(new),
    }

    moved = LeadEvent(
        event_id=event_id_for("accounts-test", "change-1"),
        email=new,
        previous_email=old,
        event_type=EventType.EMAIL_CHANGED,
        occurred_at=stack.clock.now(),
        provider=Provider.MAILCHIMP,
    )
    EventLedger(stack.physical.tables["EventLedgerTable"], 400).record(
        TEST_LEAD_KEYS.assign([moved])[0], stack.clock.now()
    )
    stack.settle()

    record = account_from_item(_account_item(stack, "acme.io") or {}, "")
    canonical = profile_from_item(stack.profile(lead_id_for(old)) or {}, "")
    assert set(record.members) == {canonical.lead_id} and set(canonical.merged) == {lead_id_for(new)}
    assert lead_id_for(new) in record.left  # for good: no older record of it can come back
    catalog = load_catalog("bundled:catalog")
    summary = member_of(catalog, canonical.lead_id, canonical.state, canonical.revision)
    assert record.members[canonical.lead_id].same_as(summary)

    # Erasing the person leaves nothing of either address on the account
    status, _, _ = stack.runner.handle_http("DELETE", f"/v1/leads/{canonical.lead_id}", SIGNED, b"")
    stack.settle()
    assert status == 200
    left = json.dumps(from_dynamo(dict(_account_item(stack, "acme.io") or {})), default=str)
    assert lead_id_for(old) not in left and lead_id_for(new) not in left


def test_the_sample_account_stream_record_is_evaluated_without_failures(stack: Stack) -> None:
    from leadscore.local.glue import repo_root

    _use_catalog(stack)
    sample = json.loads((repo_root() / "events" / "evaluate_accounts_account_stream.json").read_text())

    result = stack.runner.invoke("EvaluateAccountsFunction", sample, "test")

    assert result == {"batchItemFailures": []}


def test_a_lead_known_only_from_delivered_email_is_not_a_member(stack: Stack) -> None:
    _use_catalog(stack)
    stack.post_generic({"email": "list@acme.io", "event": "email_delivered"})
    stack.post_generic({"email": "vp@acme.io", "event": "demo_requested"})
    stack.settle()

    record = account_from_item(_account_item(stack, "acme.io") or {}, "")
    assert set(record.members) == {lead_id_for("vp@acme.io")}


def test_the_decay_job_reviews_accounts_only_in_the_time_it_has_left(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_catalog(stack)
    _post_people(stack)
    later = stack.clock.advance(timedelta(days=120))  # the account has faded below its exit

    # A run with 5 s left (the leads' review took the rest): nothing more is started...
    with monkeypatch.context() as short:
        short.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 5_000)
        stack.runner.fire_schedule("DecayScoresFunction", later)
    record = account_from_item(_account_item(stack, "acme.io") or {}, "")
    assert record.stage == "sales_ready"  # ...the account stays due, for the next run
    # ...which has the time, and demotes it
    stack.runner.fire_schedule("DecayScoresFunction", later + timedelta(hours=1))
    assert account_from_item(_account_item(stack, "acme.io") or {}, "").stage == "unengaged"
