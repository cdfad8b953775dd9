"""Every sample event in events/*.json is what AWS would deliver: it validates against the Powertools
parser model of its trigger (so `sam local invoke -e` and the tests use realistic events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    EventBridgeModel,
    SnsModel,
    SnsNotificationModel,
    SqsModel,
)
from pydantic import BaseModel

from leadscore import leads
from leadscore.adapters import get_adapter, read_delivery
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.domain import EventType
from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.model_store import load_catalog
from leadscore.rescore import RescoreCommand, WorkItem

pytestmark = pytest.mark.unit
EVENTS = repo_root() / "events"
MODELS: dict[str, type[BaseModel]] = {
    "ingest_form_generic.json": APIGatewayProxyEventV2Model,
    "ingest_email_sendgrid.json": APIGatewayProxyEventV2Model,
    "ingest_email_ses_sqs.json": SqsModel,
    "ingest_email_ses_sns.json": SnsModel,
    "score_events_ledger_stream.json": DynamoDBStreamModel,
    "evaluate_thresholds_profile_stream.json": DynamoDBStreamModel,
    "evaluate_accounts_account_stream.json": DynamoDBStreamModel,
    "decay_scores_schedule.json": EventBridgeModel,
    "lead_api_get_lead.json": APIGatewayProxyEventV2Model,
    "lead_api_list_stage.json": APIGatewayProxyEventV2Model,
    "lead_api_list_stage_model.json": APIGatewayProxyEventV2Model,
    "lead_api_erase_lead.json": APIGatewayProxyEventV2Model,
    "lead_api_export_lead.json": APIGatewayProxyEventV2Model,
    "lead_api_get_account.json": APIGatewayProxyEventV2Model,
    "lead_api_list_accounts.json": APIGatewayProxyEventV2Model,
    "lead_api_list_models.json": APIGatewayProxyEventV2Model,
    "rescore_work_item_sqs.json": SqsModel,
    "rescore_start_dry_run.json": RescoreCommand,
    "method_not_allowed_post_lead.json": APIGatewayProxyEventV2Model,
    "chat_alerts_sales_topic.json": SnsModel,
    "track_beacon.json": APIGatewayProxyEventV2Model,
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def test_every_sample_event_has_a_parser_model() -> None:
    on_disk = {path.name for path in EVENTS.glob("*.json")}

    assert on_disk == set(MODELS)


@pytest.mark.parametrize(("name", "model"), sorted(MODELS.items()), ids=sorted(MODELS))
def test_sample_event_validates_against_its_parser_model(name: str, model: type[BaseModel]) -> None:
    model.model_validate(_load(name))


def test_http_samples_route_to_the_template_routes() -> None:
    keys = {
        name: _load(name)["routeKey"]
        for name, model in MODELS.items()
        if model is APIGatewayProxyEventV2Model
    }

    assert keys == {
        "ingest_form_generic.json": "POST /v1/forms/{provider}",
        "ingest_email_sendgrid.json": "POST /v1/email-events/{provider}",
        "lead_api_get_lead.json": "GET /v1/leads/{lead_id}",
        "lead_api_list_stage.json": "GET /v1/leads",
        "lead_api_list_stage_model.json": "GET /v1/leads",
        "lead_api_erase_lead.json": "DELETE /v1/leads/{lead_id}",
        "lead_api_export_lead.json": "GET /v1/leads/{lead_id}/export",
        "lead_api_get_account.json": "GET /v1/accounts/{account}",
        "lead_api_list_accounts.json": "GET /v1/accounts",
        "method_not_allowed_post_lead.json": "ANY /v1/leads/{lead_id}",
        "lead_api_list_models.json": "GET /v1/models",
        "track_beacon.json": "POST /v1/track",
    }


def test_ses_sample_carries_an_sns_envelope_of_an_ses_click() -> None:
    record = SqsModel.model_validate(_load("ingest_email_ses_sqs.json")).Records[0]

    envelope = SnsNotificationModel.model_validate_json(record.body)

    assert json.loads(envelope.Message)["eventType"] == "Click"


def test_ses_sns_lambda_sample_is_the_same_click_as_the_queue_sample() -> None:
    queued = SnsNotificationModel.model_validate_json(
        SqsModel.model_validate(_load("ingest_email_ses_sqs.json")).Records[0].body
    )

    direct = SnsModel.model_validate(_load("ingest_email_ses_sns.json")).Records[0].Sns

    assert (direct.MessageId, direct.Message) == (queued.MessageId, queued.Message)


def test_stream_samples_have_the_images_their_view_type_promises() -> None:
    ledger = DynamoDBStreamModel.model_validate(_load("score_events_ledger_stream.json")).Records[0]
    profile = DynamoDBStreamModel.model_validate(_load("evaluate_thresholds_profile_stream.json")).Records[0]

    assert ledger.eventName == "INSERT" and ledger.dynamodb is not None and ledger.dynamodb.NewImage
    assert profile.eventName == "MODIFY" and profile.dynamodb is not None
    assert profile.dynamodb.OldImage and profile.dynamodb.NewImage


def test_sample_paths_exist() -> None:
    assert all((EVENTS / name).is_file() for name in MODELS)
    assert Path(EVENTS / "local" / "secrets.json").is_file()


def test_rescore_work_item_sample_carries_a_work_item() -> None:
    record = SqsModel.model_validate(_load("rescore_work_item_sqs.json")).Records[0]

    item = WorkItem.model_validate_json(record.body)

    assert (item.segment, item.page) == (3, 2)


# --- outcome samples (issue 10): signed as `leadscore sign` signs them, read through the gate -------
OUTCOME_SAMPLES = {"generic": "generic/deal_won.json", "hubspot": "hubspot/deal_stage_batch.json"}


def _signed_sample(provider: str) -> Delivery:
    secret = json.loads((EVENTS / "local" / "secrets.json").read_text(encoding="utf-8"))[provider]
    body = (EVENTS / "providers" / OUTCOME_SAMPLES[provider]).read_bytes()
    now = datetime.now(UTC)
    signed = signing.sign(provider, body, secret, signing.SignContext(timestamp=int(now.timestamp())))
    request = WebhookRequest(
        provider=provider,
        body=signed.body,
        headers={k.lower(): v for k, v in signed.headers.items()},
        received_at=now,
        method="POST",
        path=f"/v1/forms/{provider}",
    )
    return read_delivery(get_adapter(provider, "form"), request, secret)


def test_the_generic_outcome_sample_is_a_signed_deal_won() -> None:
    [event] = _signed_sample("generic").events
    assert (event.event_type, event.email) == (EventType.DEAL_WON, "ann.lee@northwind-analytics.example")


def test_the_hubspot_deal_sample_is_a_signed_batch_acknowledged_without_a_token() -> None:
    delivery = _signed_sample("hubspot")
    assert (delivery.events, delivery.pending) == ([], [])
    assert delivery.note is not None and "private_app_token" in delivery.note


def test_the_model_ranking_sample_asks_for_a_stage_of_another_model() -> None:
    query = leads.parse_query(_load("lead_api_list_stage_model.json")["queryStringParameters"])

    assert (query.model, query.stage, query.limit) == ("expansion", "expansion_SQL", 25)
    catalog = load_catalog("bundled:catalog")
    entry = leads.resolve_model(catalog, query.model)
    assert entry is not catalog.primary
    assert leads.resolve_stage(entry.model, query.stage, entry.id) == "expansion_SQL"
