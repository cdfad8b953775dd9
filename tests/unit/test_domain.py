from __future__ import annotations

import pytest

from leadscore.domain import MAX_ATTRIBUTES, MAX_TEXT, LeadAttributes, lead_id_for, normalize_email

pytestmark = pytest.mark.unit


def test_attributes_are_bounded_for_storage() -> None:
    attributes = LeadAttributes.model_validate(
        {
            "job_title": "CTO",
            "message": "x" * (MAX_TEXT + 100),
            "budget": 10**30,
            "ratio": float("inf"),
            "newsletter": True,
            "empty": "",
            **{f"field_{i}": i for i in range(MAX_ATTRIBUTES + 10)},
        }
    )

    kept = attributes.present()

    assert len(kept) == MAX_ATTRIBUTES
    assert kept["job_title"] == "CTO"
    assert kept["message"] == "x" * MAX_TEXT
    assert kept["budget"] == str(10**30)
    assert "ratio" not in kept and "empty" not in kept
    assert kept["newsletter"] is True


@pytest.mark.parametrize(
    ("raw", "size"), [("51-200", 51), ("1,000", 1000), ("1000+", 1000), (12.7, 12), (None, None)]
)
def test_company_size_keeps_the_lower_bound_of_a_range(raw: object, size: int | None) -> None:
    assert LeadAttributes.model_validate({"company_size": raw}).company_size == size


def test_email_identity_is_case_and_space_insensitive() -> None:
    assert normalize_email("  Ann@Acme.COM ") == "ann@acme.com"
    assert lead_id_for("ann@acme.com") == lead_id_for("ANN@acme.com")
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email("ann at acme")
