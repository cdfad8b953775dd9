"""Lead ranks: the only place that reads and writes LeadRanksTable.

A catalog's models other than the primary one rank their leads here (the primary model ranks in
LeadProfilesTable's `by_stage_score`, as a single model always did): a GSI key can hold one
stage per item, so each (lead, model) pair gets its own small item:

  lead_id       partition key (the lead's keyed id: nothing personal)
  model         sort key: the model id
  model_stage   "<model id>#<stage>": the `by_model_stage_score` index's partition key
  score         the stored score the ranking orders by (the index's sort key)

An item exists while the model applies to the lead; the stage decisions write it (`rank_put`) or
remove it (`rank_delete`) in the same transaction as the profile save, so a rank entry never
outlives the decision that made it. The index projects keys only: readers take the page's lead ids
and read the profiles whole (the ranking's order is the index's, the truth is the profile's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from pydantic import ConfigDict

from leadscore.schema import Model

RANK_INDEX = "by_model_stage_score"
STAGE_SEPARATOR = "#"
SCORE_DIGITS = 6  # what the profile's own `score` keeps


def model_stage(model_id: str, stage: str) -> str:
    """The index partition of one model's stage."""
    return f"{model_id}{STAGE_SEPARATOR}{stage}"


def _number(score: float | Decimal) -> Decimal:
    return score if isinstance(score, Decimal) else Decimal(repr(round(float(score), SCORE_DIGITS)))


# The transaction entries are in the resource layer's values (str, Decimal), like every entry of
# `LeadProfiles`' transactions: they go through a table's `meta.client`, which types them itself
# (already typed values would be typed twice, as maps).
def rank_put(table: str, lead_id: str, model_id: str, stage: str, score: float | Decimal) -> dict[str, Any]:
    """A TransactWriteItems entry that ranks the lead in `stage` of the model with `score`
    (replacing its previous entry for that model)."""
    item = {
        "lead_id": lead_id,
        "model": model_id,
        "model_stage": model_stage(model_id, stage),
        "score": _number(score),
    }
    return {"Put": {"TableName": table, "Item": item}}


def rank_delete(table: str, lead_id: str, model_id: str) -> dict[str, Any]:
    """A TransactWriteItems entry that takes the lead out of the model's ranking (nothing happens
    if it was not in it)."""
    return {"Delete": {"TableName": table, "Key": {"lead_id": lead_id, "model": model_id}}}


class RankEntry(Model):
    """One index entry of a ranking page: which lead, and the stored score it is ranked by."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    score: Decimal


class LeadRanks:
    """Reads one model's ranking, and finds or erases a lead's entries."""

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)

    @property
    def table_name(self) -> str:
        return str(self._table.name)

    def ranked(
        self, model_id: str, stage: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[RankEntry], dict[str, Any] | None]:
        """One page of the model's leads in `stage`, highest stored score first, and the
        LastEvaluatedKey to continue from (None on the last page)."""
        kwargs: dict[str, Any] = {
            "IndexName": RANK_INDEX,
            "KeyConditionExpression": Key("model_stage").eq(model_stage(model_id, stage)),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        response = self._table.query(**kwargs)
        entries = [
            RankEntry(lead_id=str(item["lead_id"]), score=item["score"]) for item in response.get("Items", [])
        ]
        return entries, response.get("LastEvaluatedKey")

    def entries(self, lead_id: str) -> list[dict[str, Any]]:
        """Every rank item of the lead (one per model it is ranked in), as stored."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("lead_id").eq(lead_id),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._table.query(**kwargs)
            items.extend(dict(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def leave(self, lead_id: str, model_ids: Iterable[str]) -> None:
        """Take a lead out of these models' rankings (idempotent: no read, no condition)."""
        for model_id in sorted(set(model_ids)):
            self._table.delete_item(Key={"lead_id": lead_id, "model": model_id})

    def erase(self, lead_id: str) -> int:
        """Delete every rank item of the lead; how many there were."""
        found = self.entries(lead_id)
        for item in found:
            self._table.delete_item(Key={"lead_id": item["lead_id"], "model": item["model"]})
        return len(found)
