"""Lead ids are keyed with the deployment's secret: stable, opaque, not the plain SHA-256 of the
email a list of addresses could be hashed into."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest

from leadscore.config import Settings
from leadscore.domain import (
    LEAD_ID_PATTERN,
    EventType,
    LeadEvent,
    LeadIdUnassigned,
    Provider,
    event_id_for,
    lead_id_for,
    legacy_lead_id_for,
)
from leadscore.errors import LeadKeyUnavailable
from leadscore.keys import LeadKeys

pytestmark = pytest.mark.unit

KEY = b"unit-test-lead-id-key-0123456789abcdef"
OTHER_KEY = b"another-deployment-key-0123456789abcdef"


def _event(email: str = "Ann@Acme.example") -> LeadEvent:
    return LeadEvent(
        event_id=event_id_for("generic", "keys-1"),
        email=email,
        event_type=EventType.FORM_SUBMITTED,
        occurred_at=datetime(2026, 1, 5, tzinfo=UTC),
        provider=Provider.GENERIC,
    )


def test_a_lead_id_is_the_truncated_hmac_of_the_normalized_email_in_the_usual_format() -> None:
    expected = "ld_" + hmac.new(KEY, b"ann@acme.example", hashlib.sha256).hexdigest()[:24]

    assert lead_id_for("  ANN@acme.example. ", KEY) == expected
    assert LeadKeys.keyed(KEY).lead_id_for("ann@acme.example") == expected
    assert re.fullmatch(LEAD_ID_PATTERN, expected)


def test_a_lead_id_is_stable_and_differs_per_key_and_per_person() -> None:
    assert lead_id_for("ann@acme.example", KEY) == lead_id_for("ann@acme.example", KEY)
    assert lead_id_for("ann@acme.example", KEY) != lead_id_for("ann@acme.example", OTHER_KEY)
    assert lead_id_for("ann@acme.example", KEY) != lead_id_for("bob@acme.example", KEY)


def test_a_lead_id_is_not_the_sha256_of_the_email_anyone_can_compute() -> None:
    plain = "ld_" + hashlib.sha256(b"ann@acme.example").hexdigest()[:24]

    assert legacy_lead_id_for("ann@acme.example") == plain  # what deployments before keyed ids stored
    assert lead_id_for("ann@acme.example", KEY) != plain


@pytest.mark.parametrize("key", [b"", b"short-key"])
def test_a_short_key_is_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        lead_id_for("ann@acme.example", key)
    with pytest.raises(LeadKeyUnavailable):
        LeadKeys.keyed(key)


def test_the_legacy_scheme_keeps_the_unkeyed_ids_until_the_migration() -> None:
    assert LeadKeys.legacy().lead_id_for("Ann@acme.example") == legacy_lead_id_for("ann@acme.example")


def test_an_event_gets_its_lead_id_from_the_pipeline_never_from_its_email_alone() -> None:
    event = _event()

    with pytest.raises(LeadIdUnassigned):
        _ = event.lead_id
    (keyed,) = LeadKeys.keyed(KEY).assign([event])
    assert keyed.lead_id == lead_id_for("ann@acme.example", KEY)
    assert keyed.model_copy(update={}) == keyed and keyed.email == event.email


def test_a_malformed_lead_id_cannot_be_assigned() -> None:
    with pytest.raises(ValueError, match="not a lead id"):
        _event().with_lead_id("ld_not-hex")


def test_the_key_never_shows_in_a_repr() -> None:
    assert "unit-test" not in repr(LeadKeys.keyed(KEY))


def test_a_keyed_deployment_without_its_key_secret_is_a_503_not_an_unkeyed_id() -> None:
    settings = Settings.model_validate({"LEDGER_TABLE": "l", "PROFILES_TABLE": "p"})

    with pytest.raises(LeadKeyUnavailable) as raised:
        LeadKeys.from_settings(settings)
    assert raised.value.status == 503


def test_a_legacy_deployment_needs_no_key() -> None:
    settings = Settings.model_validate(
        {"LEDGER_TABLE": "l", "PROFILES_TABLE": "p", "LEAD_ID_SCHEME": "legacy-sha256"}
    )

    assert LeadKeys.from_settings(settings).scheme == "legacy-sha256"
