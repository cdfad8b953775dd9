from __future__ import annotations

import pytest

from leadscore.domain import MAX_ATTRIBUTES, MAX_TEXT, LeadAttributes, lead_id_for, normalize_email

KEY = b"unit-test-lead-id-key-0123456789abcdef"

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
    assert lead_id_for("ann@acme.com", KEY) == lead_id_for("ANN@acme.com", KEY)
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email("ann at acme")


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 50_000 + "@x",
        "a" * 65 + "@acme.example",  # local part over 64
        "ann@" + "a" * 250 + ".example",  # address over 254
        "ann@acme",
        "ann@.example",
        "a@b@acme.example",
        "ann@acme.example\x00",
        "ann\u200b@acme.example",
        "a@b..c",  # empty domain labels
        "a@acme.example..",
        "a@.",
    ],
)
def test_invalid_or_oversized_emails_are_refused(hostile: str) -> None:
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email(hostile)


def test_a_50kb_pathological_email_is_refused_by_its_length_before_any_pattern_runs() -> None:
    # Given the input the old regex backtracked over quadratically (about 20 s of CPU for 50 KB)
    hostile = "a@" + "." * 50_000 + "@"
    # When validating it, Then it is refused for its length (no pattern ever sees it)
    with pytest.raises(ValueError, match="too long"):
        normalize_email(hostile)


def test_longest_valid_local_part_is_accepted() -> None:
    assert normalize_email("A" * 64 + "@acme.example") == "a" * 64 + "@acme.example"


def test_numbers_dynamodb_cannot_store_are_kept_as_text_or_dropped_never_raising() -> None:
    # Given numbers outside DynamoDB's range (1e-130..1e126, 38 digits) and one whose str() raises
    attributes = LeadAttributes.model_validate(
        {"tiny": 1e-140, "denormal": 5e-324, "huge_int": 10**4400, "zero": 0.0, "fine": -2.5}
    )
    # When bounding them for storage
    kept = attributes.present()
    # Then nothing unstorable is a number, and the 4,400-digit integer is dropped instead of raising
    assert kept == {"tiny": "1e-140", "denormal": "5e-324", "zero": 0.0, "fine": -2.5}


def test_attribute_names_outside_plain_snake_case_are_dropped() -> None:
    attributes = LeadAttributes.model_validate({"x" * 65: 1, "Job Title": "CEO", "名前": "Ann", "ok_1": 2})
    assert attributes.present() == {"ok_1": 2}


def test_a_fully_qualified_domain_is_the_same_lead() -> None:
    # "acme.example." names the same domain: it must not make a second lead for the same person
    assert normalize_email("Ann@Acme.Example.") == "ann@acme.example"
    assert lead_id_for("ann@acme.example.", KEY) == lead_id_for("ann@acme.example", KEY)
