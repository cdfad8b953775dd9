"""A backtest of a catalog whose models overlap measures each model on every lead it applies to."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from leadscore.learn import catalogs
from leadscore.model_store import parse_catalog
from leadscore.scoring import engine

AT = datetime(2026, 6, 1, tzinfo=UTC)
MODEL = "{name: m, version: '1', grades: [{grade: A, min_fit: 0}], stages: [{name: l}, {name: q, enter: 10}],"
MODEL += " fit: {rules: [{id: size, attribute: company_size, bins: [{lower: 1000, points: 20}], other: 0}]}}"
PERSONAS = f"""
models:
  - id: everyone
    model: {MODEL}
  - id: enterprise
    applies_when: {{attributes: [{{attribute: company_size, lower: 1000}}]}}
    model: {MODEL}
"""


def test_a_model_that_overlaps_the_primary_one_is_measured_on_its_own_leads() -> None:
    catalog = parse_catalog(PERSONAS, "test")
    sizes = [5000, 5000, 5000, 20, 20, 20, 20, 3000]
    converted = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    every = []
    for n, size in enumerate(sizes):
        state = engine.LeadState(email=f"p{n}@x.io", attributes={"company_size": size})
        every.append(
            {
                e.id: engine.score(e.model, state, AT)
                for e in catalog.models
                if e.id == "everyone" or size >= 1000
            }
        )
    model_of = [next(iter(e)) for e in every]
    results = [e[m] for e, m in zip(every, model_of, strict=True)]
    first_only, _, _ = catalogs.evaluate_catalog(catalog, model_of, results, converted)
    overlapping, _, _ = catalogs.evaluate_catalog(catalog, model_of, results, converted, every)

    leads = {row["model"]: row["leads"] for row in overlapping["models"]}
    assert leads == {"everyone": 8, "enterprise": 4}  # the four large companies
    enterprise = next(row for row in overlapping["models"] if row["model"] == "enterprise")
    assert enterprise["conversions"] == 2 and enterprise["base_rate"] == 0.5
    assert {row["model"]: row["leads"] for row in first_only["models"]} == {"everyone": 8, "enterprise": 0}
    assert overlapping["auc"] == first_only["auc"]  # the overall ranking is each lead's first model's
