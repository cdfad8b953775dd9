"""An account item stays below DynamoDB's 400 KB whatever its members send: at most
`accounts.max_members` entries, each of bounded size (issue 5's rules)."""

from __future__ import annotations

import pytest

from leadscore.accounts import definition_of
from leadscore.config import ConfigurationError
from leadscore.model_store import load_catalog, parse_catalog
from leadscore.repository.accounts import worst_case_item, worst_case_member, worst_case_size
from leadscore.repository.sizes import MAX_ITEM_BYTES, item_size
from leadscore.scoring.accounts import feeding_model

pytestmark = pytest.mark.unit


def test_the_shipped_catalogs_account_item_is_bounded_below_400_kb() -> None:
    catalog = load_catalog("bundled:catalog")
    assert catalog.accounts is not None and catalog.accounts.max_members == 100
    model = feeding_model(catalog)[1]
    member = item_size({"m:ld_" + "f" * 24: worst_case_member(catalog.accounts, model)})
    size = worst_case_size(catalog.accounts, model)
    print(f"worst-case member {member} bytes, account item {size} bytes")  # the README's figures
    assert size < MAX_ITEM_BYTES
    assert len([k for k in worst_case_item(catalog.accounts, model) if k.startswith("m:")]) == 100


def test_a_catalog_whose_accounts_could_outgrow_an_item_is_refused_before_any_write() -> None:
    catalog = parse_catalog(
        """
models:
  - id: main
    model:
      name: m
      version: "1"
      grades: [{grade: A, min_fit: 0}]
      stages: [{name: new}]
      engagement:
        rules:
"""
        + "".join(
            f"          - {{id: r{n:03d}_{'x' * 40}, event_types: [page_viewed], points: 1}}\n"
            for n in range(60)
        )
        + """
accounts:
  max_members: 400
  stages: [{name: cold}, {name: hot, enter: 50}]
""",
        "test",
    )
    with pytest.raises(ConfigurationError, match="lower max_members"):
        definition_of(catalog)
