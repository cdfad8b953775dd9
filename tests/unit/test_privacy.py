"""The pure parts of erasure: which events re-create an erased lead, how a profile keeps the ids of
its recent transitions (bounded), and the key of a transition's idempotency record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
from leadscore.notifications import ANNOUNCEMENT_KEY_PREFIX, announcement_record_key
from leadscore.repository.profiles import (
    MAX_RECENT_TRANSITIONS,
    LeadProfile,
    Transition,
    opts_in,
    recent_transitions,
    transition_ids,
)
from leadscore.scoring.engine import LeadState

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _event(provider: Provider, event_type: EventType) -> LeadEvent:
    return LeadEvent(
        event_id=event_id_for(provider, "k"),
        email="dana@globex.com",
        event_type=event_type,
        provider=provider,
        occurred_at=T0,
    )


@pytest.mark.parametrize(
    ("provider", "event_type", "expected"),
    [
        (Provider.HTML, EventType.FORM_SUBMITTED, True),
        (Provider.TYPEFORM, EventType.FORM_SUBMITTED, True),
        (Provider.GENERIC, EventType.DEMO_REQUESTED, True),
        (Provider.CALENDLY, EventType.MEETING_BOOKED, True),
        (Provider.WEBFLOW, EventType.FORM_SUBMITTED, True),
        (Provider.HUBSPOT, EventType.FORM_SUBMITTED, True),
        (Provider.GENERIC, EventType.PAGE_VIEWED, False),  # activity is not consent
        (Provider.SENDGRID, EventType.EMAIL_OPENED, False),
        (Provider.MAILCHIMP, EventType.FORM_SUBMITTED, False),  # not a form provider
        (Provider.HUBSPOT, EventType.PROFILE_UPDATED, False),  # a CRM update is not an opt-in
    ],
)
def test_only_a_form_or_a_booking_from_a_form_provider_opts_in_again(
    provider: Provider, event_type: EventType, expected: bool
) -> None:
    assert opts_in(_event(provider, event_type)) is expected


def _profile(recent: list[str]) -> LeadProfile:
    return LeadProfile(
        lead_id="ld_" + "a" * 24,
        state=LeadState(email="d@globex.com"),
        stage="lead",
        recent_transitions=recent,
    )


def _transition(at: datetime, n: int) -> Transition:
    return Transition(
        from_stage="lead", to_stage="MQL", at=at, reason="threshold", score=40, id=f"tr_{n:032x}"
    )


def test_recent_transitions_keep_30_days_and_at_most_50() -> None:
    # Given a profile that changed stage every hour for three days, and once 40 days ago
    profile = _profile([])
    old = _transition(T0 - timedelta(days=40), 999)
    profile = _profile(recent_transitions(profile, old))
    for n in range(72):
        profile = _profile(recent_transitions(profile, _transition(T0 + timedelta(hours=n), n)))

    # Then the list holds the newest 50, and the 40-day-old one is gone
    assert len(profile.recent_transitions) == MAX_RECENT_TRANSITIONS
    assert profile.recent_transitions[-1].endswith(f"#tr_{71:032x}")
    assert not any(entry.endswith(f"#tr_{999:032x}") for entry in profile.recent_transitions)
    assert transition_ids({"recent_transitions": profile.recent_transitions}) == {
        f"tr_{n:032x}" for n in range(22, 72)
    }


def test_transition_ids_include_the_last_and_the_pending_one() -> None:
    item = {
        "recent_transitions": ["2026-03-01T00:00:00.000000Z#tr_a"],
        "last_transition": {"id": "tr_b", "to_stage": "MQL"},
        "announce_pending": "tr_c",
    }
    assert transition_ids(item) == {"tr_a", "tr_b", "tr_c"}


def test_the_announcement_record_key_is_the_one_powertools_writes() -> None:
    # Given the persistence layer configured as the Notifier configures it
    layer = DynamoDBPersistenceLayer(
        table_name="idempotency",
        boto3_session=boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        ),
    )
    layer.configure(IdempotencyConfig(event_key_jmespath="transition_id"), key_prefix=ANNOUNCEMENT_KEY_PREFIX)

    # Then the record of a transition has the key an erasure computes
    envelope = {"transition_id": "tr_0123456789abcdef0123456789abcdef", "topic_arn": "arn", "body": "{}"}
    assert layer._get_hashed_idempotency_key(envelope) == announcement_record_key(envelope["transition_id"])
