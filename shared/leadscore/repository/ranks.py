"""Rank entries of a catalog's other models (LeadRanksTable): one item per lead and model that
applies to it, `model_stage` = "<model id>#<stage>" and the stored `score`, ranked by the
`by_model_stage_score` index. They are written in the same transaction as the stage decision that
changes them (`LeadProfiles.save`), so an entry never says what the lead's item does not."""

from __future__ import annotations

from typing import Any


def model_stage(model_id: str, stage: str) -> str:
    return f"{model_id}#{stage}"


def rank_put(table: str, lead_id: str, model_id: str, stage: str, score: float) -> dict[str, Any]:
    """A TransactWriteItems entry (resource-layer values) that ranks a lead in a model's stage."""
    from leadscore.repository.codec import to_dynamo

    item = {
        "lead_id": lead_id,
        "model": model_id,
        "model_stage": model_stage(model_id, stage),
        "score": score,
    }
    return {"Put": {"TableName": table, "Item": to_dynamo(item)}}


def rank_delete(table: str, lead_id: str, model_id: str) -> dict[str, Any]:
    """A TransactWriteItems entry that takes a lead out of a model's ranking."""
    return {"Delete": {"TableName": table, "Key": {"lead_id": lead_id, "model": model_id}}}
