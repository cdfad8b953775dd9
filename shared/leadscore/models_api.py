"""Model API (IAM-authorized, routed from functions/lead_api): GET /v1/models, the catalog the
deployment scores leads with, as JSON: each model's rules by section with their points, caps and
half-lives, its grades and its stages with their thresholds (what the console's model page reads).

The reference lists (free and disposable email domains, seniority patterns, regions) are left out:
they are lookup data shipped with the code, thousands of entries that explain no score."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import Field

from leadscore.config import Settings
from leadscore.http import json_response
from leadscore.model_store import load_catalog
from leadscore.schema import Model
from leadscore.scoring.catalog import Catalog

router = Router()


class CatalogModelView(Model):
    id: str = Field(description="The model id (`default` for a one-model deployment)")
    primary: bool = Field(description="The first model of the catalog: its stage is the lead's stage")
    applies_when: dict[str, Any] = Field(description="Which leads the model scores (empty: every lead)")
    model: dict[str, Any] = Field(description="The scoring model (leadscore.scoring.model.ScoringModel)")


class CatalogView(Model):
    name: str
    description: str | None
    models: list[CatalogModelView] = Field(description="In catalog order, the primary model first")


def catalog_view(catalog: Catalog) -> CatalogView:
    return CatalogView(
        name=catalog.name,
        description=catalog.description,
        models=[
            CatalogModelView(
                id=entry.id,
                primary=entry.id == catalog.primary.id,
                applies_when=entry.applies_when.model_dump(mode="json", exclude_defaults=True),
                model=entry.model.model_dump(mode="json", exclude={"reference"}),
            )
            for entry in catalog.models
        ],
    )


@router.get("/v1/models")
def list_models() -> Response:
    catalog = load_catalog(Settings.from_env().scoring_model)
    return json_response(200, catalog_view(catalog).model_dump(mode="json"))
