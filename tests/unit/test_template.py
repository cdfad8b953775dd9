"""template.yaml is the single source of truth: these tests pin what it must say.

They read the template as written (SAM) and as CloudFormation will see it after the SAM
transform, which is where policy templates, event source mappings and routes become concrete.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from leadscore.adapters import Channel, supported
from leadscore.local.template import (
    TEMPLATE_ENV,
    DynamoDBStreamSource,
    HttpRoute,
    ScheduleSource,
    SqsSource,
    TemplateError,
    default_template_path,
    function_specs,
    load_template,
    queue_specs,
    resources_of_type,
    subscription_specs,
    transform,
    ttl_attribute,
)

pytestmark = pytest.mark.unit

FUNCTIONS = {
    "IngestFormFunction": "functions/ingest_form",
    "IngestEmailFunction": "functions/ingest_email",
    "ScoreEventsFunction": "functions/score_events",
    "EvaluateThresholdsFunction": "functions/evaluate_thresholds",
    "EvaluateAccountsFunction": "functions/evaluate_accounts",
    "DecayScoresFunction": "functions/decay_scores",
    "LeadApiFunction": "functions/lead_api",
    "RescoreFunction": "functions/rescore",
    "MethodNotAllowedFunction": "functions/method_not_allowed",
    "ChatAlertsFunction": "functions/chat_alerts",  # only with ChatAlerts slack|teams
    "TrackFunction": "functions/track",
}
TABLES = ("EventLedgerTable", "LeadProfilesTable", "IdempotencyTable", "RescoreJobsTable")
COMMON_ENV = {
    "LEDGER_TABLE": {"Ref": "EventLedgerTable"},
    "PROFILES_TABLE": {"Ref": "LeadProfilesTable"},
    "IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
    "RESCORE_JOBS_TABLE": {"Ref": "RescoreJobsTable"},
    "NURTURE_TOPIC_ARN": {"Ref": "NurtureTopic"},
    "SALES_TOPIC_ARN": {"Ref": "SalesTopic"},
    "RESCORE_QUEUE_URL": {"Ref": "RescoreQueue"},
    "WEBHOOK_SECRET_NAME": {"Ref": "WebhookSecret"},
    "SCORING_MODEL": {"Ref": "ScoringModel"},
    "EVENT_RETENTION_DAYS": {"Ref": "EventRetentionDays"},
    "MAX_BODY_BYTES": {"Ref": "MaxBodyBytes"},
    "SIGNATURE_TOLERANCE_SECONDS": {"Ref": "SignatureToleranceSeconds"},
    "REVIEW_SHARDS": "8",
    "IDENTITY_TABLE": {"Ref": "IdentityTable"},
}
# Least privilege: the only template resources each function's inline policies may name.
# Functions that score may read the model from S3 or SSM, if configured.
MODEL = {"ModelBucket", "ModelParameterName"}
POLICY_SCOPE = {
    "IngestFormFunction": {
        "EventLedgerTable",
        "WebhookSecret",
        "LeadKeySecret",
        "RateLimitTable",
        "IdentityTable",
    },
    "IngestEmailFunction": {
        "EventLedgerTable",
        "WebhookSecret",
        "LeadKeySecret",
        "RateLimitTable",
        "IdentityTable",
        "SesHttpsTopicArns",  # sns:ConfirmSubscription, only on the topics the operator lists
        "SesEventsDLQ",  # failed SNS -> Lambda invocations
    },
    # the tracking snippet's beacons: the sites (webhook secret), browser links and parked views
    "TrackFunction": {"EventLedgerTable", "WebhookSecret", "LeadKeySecret", "IdentityTable"},
    "ScoreEventsFunction": {"EventLedgerTable", "LeadProfilesTable", "ScoreEventsDLQ", *MODEL},
    "EvaluateThresholdsFunction": {
        "LeadProfilesTable",
        "LeadRanksTable",
        "AccountsTable",  # each lead's member summary on its account
        "IdempotencyTable",
        "NurtureTopic",
        "SalesTopic",
        "EvaluateThresholdsDLQ",
        "EventLedgerTable",  # an announced lead's recent events, for the alert
        *MODEL,
    },
    "EvaluateAccountsFunction": {
        "AccountsTable",
        "IdempotencyTable",
        "NurtureTopic",
        "SalesTopic",
        "EvaluateAccountsDLQ",
        *MODEL,
    },
    "DecayScoresFunction": {
        "LeadProfilesTable",
        "LeadRanksTable",
        "AccountsTable",
        "IdempotencyTable",
        "NurtureTopic",
        "SalesTopic",
        "EventLedgerTable",  # an announced lead's recent events, for the alert
        *MODEL,
    },
    "LeadApiFunction": {
        "LeadProfilesTable",
        "LeadRanksTable",
        "AccountsTable",
        "EventLedgerTable",
        "LeadKeySecret",
        # erasure and export reach every table that names a lead
        "IdentityTable",
        "IdempotencyTable",
        "RateLimitTable",
        *MODEL,
    },
    "RescoreFunction": {
        "EventLedgerTable",
        "LeadProfilesTable",
        "LeadRanksTable",
        "RescoreJobsTable",
        "RescoreQueue",
        *MODEL,
    },
    "ChatAlertsFunction": {
        "ChatWebhookSecret",  # or the operator's ChatWebhookSecretArn
        "ChatWebhookSecretArn",
        "EventLedgerTable",
        "IdempotencyTable",
        "ChatAlertsDLQ",  # its on-failure destination
    },
}
# The exact DynamoDB access of each function: (action, table or "table/index/name").
IDEMPOTENCY = {
    (action, "IdempotencyTable")
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
}
# Identity links and parked events (leadscore.repository.identities).
IDENTITIES = {
    (action, "IdentityTable")
    for action in (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",  # a link checks the person was not erased
        "dynamodb:DeleteItem",  # an opt-in through a form clears that mark
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    )
}
# A catalog's other models: their rank entries, written with the stage decision (one transaction).
RANKS = {("dynamodb:PutItem", "LeadRanksTable"), ("dynamodb:DeleteItem", "LeadRanksTable")}
DYNAMODB_ACCESS = {
    "IngestFormFunction": {
        ("dynamodb:PutItem", "EventLedgerTable"),
        ("dynamodb:UpdateItem", "RateLimitTable"),  # per-site/per-IP/per-lead form rate limits
        *IDENTITIES,
    },
    "IngestEmailFunction": {
        ("dynamodb:PutItem", "EventLedgerTable"),
        ("dynamodb:PutItem", "RateLimitTable"),  # Mailgun's one-time signature tokens
        *IDENTITIES,
    },
    "TrackFunction": {("dynamodb:PutItem", "EventLedgerTable"), *IDENTITIES},
    "ScoreEventsFunction": {
        ("dynamodb:UpdateItem", "EventLedgerTable"),
        ("dynamodb:UpdateItem", "LeadProfilesTable"),
        ("dynamodb:DeleteItem", "EventLedgerTable"),  # an event dropped for an erased lead
        ("dynamodb:GetItem", "LeadProfilesTable"),  # an email change folds one lead into another
    },
    "EvaluateThresholdsFunction": {
        ("dynamodb:UpdateItem", "LeadProfilesTable"),
        ("dynamodb:UpdateItem", "AccountsTable"),  # member summaries: conditional, no read
        ("dynamodb:Query", "EventLedgerTable/index/by_time"),  # the alert's recent events
        *RANKS,
        *IDEMPOTENCY,
    },
    "EvaluateAccountsFunction": {("dynamodb:UpdateItem", "AccountsTable"), *IDEMPOTENCY},
    "DecayScoresFunction": {
        ("dynamodb:Query", "LeadProfilesTable/index/review_due"),
        ("dynamodb:GetItem", "LeadProfilesTable"),
        ("dynamodb:BatchGetItem", "LeadProfilesTable"),
        ("dynamodb:UpdateItem", "LeadProfilesTable"),
        *RANKS,
        ("dynamodb:Query", "AccountsTable/index/review_due"),
        ("dynamodb:BatchGetItem", "AccountsTable"),
        ("dynamodb:UpdateItem", "AccountsTable"),
        ("dynamodb:Query", "EventLedgerTable/index/by_time"),  # the alert's recent events
        *IDEMPOTENCY,
    },
    "LeadApiFunction": {
        ("dynamodb:GetItem", "LeadProfilesTable"),
        ("dynamodb:BatchGetItem", "LeadProfilesTable"),
        ("dynamodb:Query", "LeadProfilesTable/index/by_stage_score"),
        ("dynamodb:Query", "LeadRanksTable/index/by_model_stage_score"),  # a catalog's other models
        ("dynamodb:GetItem", "AccountsTable"),
        ("dynamodb:BatchGetItem", "AccountsTable"),
        ("dynamodb:Query", "AccountsTable/index/by_stage_score"),
        ("dynamodb:Query", "EventLedgerTable/index/by_time"),
        # erasure and export
        ("dynamodb:Query", "EventLedgerTable"),
        ("dynamodb:BatchWriteItem", "EventLedgerTable"),
        ("dynamodb:PutItem", "LeadProfilesTable"),
        ("dynamodb:UpdateItem", "LeadProfilesTable"),
        ("dynamodb:Query", "IdentityTable"),
        ("dynamodb:DeleteItem", "IdentityTable"),
        ("dynamodb:PutItem", "IdentityTable"),  # the erasure mark
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("dynamodb:Scan", "RateLimitTable"),
        ("dynamodb:DeleteItem", "RateLimitTable"),
        ("dynamodb:Query", "LeadRanksTable"),  # a lead's rank entries, found and deleted
        ("dynamodb:DeleteItem", "LeadRanksTable"),
    },
    "RescoreFunction": {
        ("dynamodb:Query", "EventLedgerTable"),
        ("dynamodb:DescribeTable", "LeadProfilesTable"),  # segments sized to the table
        ("dynamodb:Scan", "LeadProfilesTable"),
        ("dynamodb:BatchGetItem", "LeadProfilesTable"),  # a page's profiles
        ("dynamodb:GetItem", "LeadProfilesTable"),
        ("dynamodb:UpdateItem", "LeadProfilesTable"),
        *RANKS,
        ("dynamodb:GetItem", "RescoreJobsTable"),
        ("dynamodb:PutItem", "RescoreJobsTable"),
        ("dynamodb:UpdateItem", "RescoreJobsTable"),
        ("dynamodb:Query", "RescoreJobsTable"),
    },
    "ChatAlertsFunction": {("dynamodb:Query", "EventLedgerTable/index/by_time"), *IDEMPOTENCY},
}
# Webhook routes: one per provider that exists, each with its own throttling bucket, and the
# `{provider}` catch-alls (unknown providers get the product's 404) with a smaller one.
FORM_PROVIDERS = ("generic", "html", "typeform", "hubspot", "webflow", "calendly")
EMAIL_PROVIDERS = ("sendgrid", "mailgun", "postmark", "mailchimp", "ses")
PROVIDER_ROUTES = {
    *(f"POST /v1/forms/{name}" for name in FORM_PROVIDERS),
    *(f"POST /v1/email-events/{name}" for name in EMAIL_PROVIDERS),
    "GET /v1/email-events/mailchimp",  # Mailchimp's URL validator
}
CATCH_ALL_ROUTES = {"POST /v1/forms/{provider}", "POST /v1/email-events/{provider}"}
# Every webhook path also has an ANY route (the methods it does not serve answer 405), from the
# catch-alls' small bucket: a wrong method is a scanner or a typo, never a provider's delivery.
WEBHOOK_ANY_ROUTES = {f"ANY {route.split(' ')[1]}" for route in PROVIDER_ROUTES | CATCH_ALL_ROUTES}
LEAD_API_ROUTES = {
    ("GET", "/v1/leads"),
    ("GET", "/v1/leads/{lead_id}"),
    ("DELETE", "/v1/leads/{lead_id}"),
    ("GET", "/v1/leads/{lead_id}/export"),
    ("GET", "/v1/leads/{lead_id}/history"),
    ("GET", "/v1/accounts"),
    ("GET", "/v1/accounts/{account}"),
    ("GET", "/v1/models"),
}
INGEST_FUNCTIONS = ("IngestFormFunction", "IngestEmailFunction")
# The tracking snippet's routes: public, each with its own bucket (beacons, preflights, the script).
TRACK_ROUTES = {"POST /v1/track", "OPTIONS /v1/track", "GET /v1/track.js"}
TRACK_ANY_ROUTES = {"ANY /v1/track", "ANY /v1/track.js"}
STREAM_CONSUMERS = ("ScoreEventsFunction", "EvaluateThresholdsFunction", "EvaluateAccountsFunction")
DEAD_LETTER_QUEUES = {
    "SesEventsDLQ",
    "ScoreEventsDLQ",
    "EvaluateThresholdsDLQ",
    "EvaluateAccountsDLQ",
    "DecayScoresDLQ",
    "RescoreDLQ",
    "ChatAlertsDLQ",
}


# ------------------------------------------------------------------------------------- helpers
def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def _statements(node: Any) -> list[dict[str, Any]]:
    """Every policy statement anywhere below node (IAM, key, topic and queue policies; a WAF rule's
    `Statement` is not a policy statement)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if str(node.get("Type", "")).startswith("AWS::WAFv2::"):
            return found
        statement = node.get("Statement")
        if isinstance(statement, dict):
            found.append(statement)
        elif isinstance(statement, list):
            found.extend(s for s in statement if isinstance(s, dict))
        for value in node.values():
            found.extend(_statements(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_statements(value))
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z.]+)?\}")


def _referenced_ids(node: Any) -> set[str]:
    """Logical ids named by Ref / GetAtt / Sub anywhere below node (pseudo parameters excluded)."""
    ids: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str) and not node["Ref"].startswith("AWS::"):
            ids.add(node["Ref"])
        if isinstance(node.get("Fn::GetAtt"), list):
            ids.add(node["Fn::GetAtt"][0])
        sub = node.get("Fn::Sub")
        if isinstance(sub, str):
            ids |= set(_SUB_REFERENCE.findall(sub))
        for value in node.values():
            ids |= _referenced_ids(value)
    elif isinstance(node, list):
        for value in node:
            ids |= _referenced_ids(value)
    return ids


# ------------------------------------------------------------------------- validity and loading
def test_cfn_lint_finds_no_errors_or_warnings_in_the_template() -> None:
    # Given the template as written
    # When cfn-lint checks it
    matches = lint_file(default_template_path())
    # Then nothing at warning level or above is reported
    problems = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]
    assert [m for m in matches if m.rule.severity in {"error", "warning"}] == [], problems


def test_cfn_lint_finds_no_errors_in_the_transformed_template(
    transformed_template: dict[str, Any], tmp_path: Path
) -> None:
    # cfn-lint does not validate inside AWS::Serverless::* resources (a bad Runtime passes);
    # linting the transform's output checks the generated Lambda, IAM and mapping resources.
    rendered = tmp_path / "transformed.json"
    rendered.write_text(json.dumps(transformed_template), encoding="utf-8")
    matches = lint_file(rendered)
    problems = [f"{m.rule.id} {m.message}" for m in matches]
    assert [m for m in matches if m.rule.severity == "error"] == [], problems


def test_transform_replaces_every_serverless_resource(transformed_template: dict[str, Any]) -> None:
    types = {resource["Type"] for resource in transformed_template["Resources"].values()}
    assert not {t for t in types if t.startswith("AWS::Serverless::")}
    assert "Transform" not in transformed_template


def test_transform_reports_a_misspelled_policy_template_parameter(sam_template: dict[str, Any]) -> None:
    # Given a policy template with a misspelled parameter (cfn-lint does not notice this)
    policies = _props(sam_template, "IngestFormFunction")["Policies"]
    policies[0] = {"DynamoDBWritePolicy": {"Table": {"Ref": "EventLedgerTable"}}}
    # When / Then the offline transform names the function and the missing parameter
    with pytest.raises(TemplateError, match=r"IngestFormFunction.*TableName"):
        transform(sam_template)


def test_load_template_reads_short_form_tags_and_honours_the_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a template using short-form tags, selected through LEADSCORE_TEMPLATE
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      QueueName: !Sub '${AWS::StackName}-q'\n"
        "      RedrivePolicy:\n"
        "        deadLetterTargetArn: !GetAtt D.Arn\n"
        "        maxReceiveCount: !Ref Count\n"
        "      Tags: !If [IsProd, [], !Ref AWS::NoValue]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(TEMPLATE_ENV, str(path))
    # When it is loaded with no explicit path
    template = load_template()
    # Then each tag is in long form
    properties = template["Resources"]["Q"]["Properties"]
    assert properties["QueueName"] == {"Fn::Sub": "${AWS::StackName}-q"}
    assert properties["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["D", "Arn"]},
        "maxReceiveCount": {"Ref": "Count"},
    }
    assert properties["Tags"] == {"Fn::If": ["IsProd", [], {"Ref": "AWS::NoValue"}]}


# ----------------------------------------------------------------------- functions and globals
def test_globals_carry_powertools_settings_and_resource_names(sam_template: dict[str, Any]) -> None:
    function_globals = sam_template["Globals"]["Function"]
    variables = function_globals["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "leadscore"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "LeadScore"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert {name: variables.get(name) for name in COMMON_ENV} == COMMON_ENV
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    assert (function_globals["Tracing"], function_globals["MemorySize"], function_globals["Timeout"]) == (
        "Active",
        512,
        15,
    )


def test_parameters_have_the_documented_defaults(sam_template: dict[str, Any]) -> None:
    defaults = {name: spec.get("Default") for name, spec in sam_template["Parameters"].items()}
    assert defaults == {
        "LogLevel": "INFO",
        "ScoringModel": "bundled:catalog",
        "EventRetentionDays": 400,
        "MaxBodyBytes": 1048576,
        "SignatureToleranceSeconds": 300,
        "DecaySchedule": "rate(1 hour)",
        "ModelBucket": "",
        "ModelParameterName": "",
        "LogRetentionDays": 30,
        "WebhookRouteRateLimit": 50,
        "WebhookRouteBurstLimit": 100,
        "UnknownProviderRouteRateLimit": 2,
        "UnknownProviderRouteBurstLimit": 5,
        "IngestReservedConcurrency": 20,
        "TrackRouteRateLimit": 100,
        "TrackRouteBurstLimit": 200,
        "TrackReservedConcurrency": 10,
        "TrackAnonymousRetentionDays": 30,
        "TrackMaxParkedEvents": 200,
        "AlarmEmail": "",
        "AlarmTopicArn": "",
        "IteratorAgeAlarmSeconds": 600,
        "WafRequestsPer5Minutes": 0,
        "SesHttpsTopicArns": "",
        "SesLambdaTopicArn": "",
        "LeadIdScheme": "keyed",
        "RescoreMaxConcurrency": 50,
        "ConsoleUrl": "",
        "ChatAlerts": "none",
        "ChatWebhookSecretArn": "",
    }


def test_shared_layer_is_built_for_the_function_runtime(sam_template: dict[str, Any]) -> None:
    layer = sam_template["Resources"]["SharedLayer"]
    runtime = sam_template["Globals"]["Function"]["Runtime"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # Built by shared/Makefile's build-SharedLayer (leadscore.layer; tests/unit/test_layer.py)
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (Path(__file__).resolve().parents[2] / "shared" / "Makefile").read_text(encoding="utf-8")
    assert "\nbuild-SharedLayer:" in makefile


def test_functions_have_the_expected_code_folders_and_handlers(transformed_template: dict[str, Any]) -> None:
    specs = function_specs(transformed_template)
    assert {spec.logical_id: spec.code_dir for spec in specs.values()} == FUNCTIONS
    assert {spec.handler for spec in specs.values()} == {"handler.lambda_handler"}
    assert (specs["DecayScoresFunction"].timeout, specs["RescoreFunction"].timeout) == (300, 120)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_runs_python_312_or_newer_on_arm64_with_tracing_and_the_layer(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    properties = _props(transformed_template, logical_id)
    family, _, version = properties["Runtime"].partition("python")
    assert family == ""
    assert tuple(int(part) for part in version.split(".")) >= (3, 12)
    assert properties["Architectures"] == ["arm64"]
    assert properties["TracingConfig"] == {"Mode": "Active"}
    assert [_referenced_ids(layer) for layer in properties["Layers"]] == [
        set(resources_of_type(transformed_template, "AWS::Lambda::LayerVersion"))
    ]
    variables = properties["Environment"]["Variables"]
    assert {name: variables.get(name) for name in COMMON_ENV} == COMMON_ENV
    assert variables["POWERTOOLS_SERVICE_NAME"] == "leadscore"


# ----------------------------------------------------------------------------------------- tables
@pytest.mark.parametrize("logical_id", TABLES)
def test_table_is_on_demand_encrypted_and_recoverable(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    properties = _props(transformed_template, logical_id)
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_event_ledger_keys_time_index_stream_and_ttl(transformed_template: dict[str, Any]) -> None:
    properties = _props(transformed_template, "EventLedgerTable")
    assert properties["KeySchema"] == [
        {"AttributeName": "lead_id", "KeyType": "HASH"},
        {"AttributeName": "event_id", "KeyType": "RANGE"},
    ]
    (by_time,) = properties["LocalSecondaryIndexes"]
    assert by_time["IndexName"] == "by_time"
    assert [k["AttributeName"] for k in by_time["KeySchema"]] == ["lead_id", "occurred_at"]
    # What the lead API's recent events show, no more (an ALL projection doubles the write cost
    # and copies each event's email and attributes into the index)
    assert by_time["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["event_type", "provider", "received_at", "url"],
    }
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert ttl_attribute(transformed_template, "EventLedgerTable") == "expires_at"


def test_lead_profiles_stream_images_and_indexes(transformed_template: dict[str, Any]) -> None:
    properties = _props(transformed_template, "LeadProfilesTable")
    assert properties["KeySchema"] == [{"AttributeName": "lead_id", "KeyType": "HASH"}]
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    indexes = {
        index["IndexName"]: (
            [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]],
            index["Projection"]["ProjectionType"],
        )
        for index in properties["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        # the ranked listing reads keys, then the leads by BatchGetItem: no index write per event
        "by_stage_score": ([("stage", "HASH"), ("score", "RANGE")], "KEYS_ONLY"),
        "review_due": ([("review_shard", "HASH"), ("review_at", "RANGE")], "KEYS_ONLY"),
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert types == {"lead_id": "S", "stage": "S", "score": "N", "review_shard": "S", "review_at": "N"}


def test_idempotency_table_matches_the_powertools_persistence_layer(
    transformed_template: dict[str, Any],
) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters
    properties = _props(transformed_template, "IdempotencyTable")
    assert properties["KeySchema"] == [{"AttributeName": defaults["key_attr"].default, "KeyType": "HASH"}]
    assert ttl_attribute(transformed_template, "IdempotencyTable") == defaults["expiry_attr"].default


def test_rescore_jobs_table_tracks_fan_out_parts(transformed_template: dict[str, Any]) -> None:
    properties = _props(transformed_template, "RescoreJobsTable")
    assert properties["KeySchema"] == [
        {"AttributeName": "job_id", "KeyType": "HASH"},
        {"AttributeName": "part", "KeyType": "RANGE"},
    ]


# ----------------------------------------------------------------------------------- IAM and policies
def test_no_policy_statement_grants_a_wildcard_action(transformed_template: dict[str, Any]) -> None:
    statements = _statements(transformed_template["Resources"])
    assert len(statements) > 20  # the walk really reached IAM, key, topic and queue policies
    assert not [s for s in statements if "NotAction" in s]
    actions = [action for s in statements for action in _as_list(s.get("Action"))]
    wildcards = [a for a in actions if not isinstance(a, str) or a == "*" or a.endswith(":*")]
    assert wildcards == []


@pytest.mark.parametrize("logical_id", sorted(POLICY_SCOPE))
def test_function_inline_policies_name_only_the_resources_it_uses(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    role = _props(transformed_template, f"{logical_id}Role")
    statements = _statements(role.get("Policies", []))
    assert statements, "the function has no inline policy"
    assert not [s for s in statements if "*" in _as_list(s.get("Resource"))]
    expected = set(POLICY_SCOPE[logical_id])
    assert _referenced_ids([s["Resource"] for s in statements]) == expected


def test_lead_api_writes_only_in_its_erasure_statements(transformed_template: dict[str, Any]) -> None:
    role = _props(transformed_template, "LeadApiFunctionRole")
    statements = _statements(role["Policies"])
    writes = {"dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    erasing = [s for s in statements if str(s.get("Sid", "")).startswith(("Erase", "LeaveTombstones"))]
    assert {a for s in statements if s not in erasing for a in _as_list(s["Action"])}.isdisjoint(writes)
    actions = {a for s in statements for a in _as_list(s["Action"])} - writes
    assert actions <= {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "secretsmanager:GetSecretValue",  # the lead-id key (GET /v1/leads?email=)
        # reading the scoring model, granted only when it lives in S3 or SSM (Fn::If)
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:GetLifecycleConfiguration",
        "ssm:GetParameter",
    }


# ------------------------------------------------------------------------------------ triggers
@pytest.mark.parametrize(
    ("logical_id", "table", "event_names", "dead_letter_queue"),
    [
        ("ScoreEventsFunction", "EventLedgerTable", ["INSERT"], "ScoreEventsDLQ"),
        ("EvaluateThresholdsFunction", "LeadProfilesTable", ["INSERT", "MODIFY"], "EvaluateThresholdsDLQ"),
        ("EvaluateAccountsFunction", "AccountsTable", ["INSERT", "MODIFY"], "EvaluateAccountsDLQ"),
    ],
)
def test_stream_consumer_reports_failures_retries_and_dead_letters(
    transformed_template: dict[str, Any],
    logical_id: str,
    table: str,
    event_names: list[str],
    dead_letter_queue: str,
) -> None:
    (stream,) = function_specs(transformed_template)[logical_id].events_of("dynamodb")
    assert isinstance(stream, DynamoDBStreamSource)
    assert stream.table == table
    assert (stream.starting_position, stream.batch_size, stream.maximum_retry_attempts) == (
        "TRIM_HORIZON",
        100,
        5,
    )
    assert stream.bisect_batch_on_function_error
    assert stream.report_batch_item_failures
    assert stream.filter_patterns == ({"eventName": event_names},)
    assert stream.on_failure == dead_letter_queue
    assert dead_letter_queue in queue_specs(transformed_template)


def test_every_event_source_mapping_reports_partial_failures_and_has_a_dead_letter_path(
    transformed_template: dict[str, Any],
) -> None:
    queues = queue_specs(transformed_template)
    sources = [event for spec in function_specs(transformed_template).values() for event in spec.events]
    mapped = [e for e in sources if isinstance(e, (DynamoDBStreamSource, SqsSource))]
    assert len(mapped) == len(resources_of_type(transformed_template, "AWS::Lambda::EventSourceMapping"))
    assert all(e.report_batch_item_failures for e in mapped)
    for event in mapped:
        if isinstance(event, SqsSource):
            assert queues[event.queue].dead_letter_queue in queues, event
        else:
            assert event.on_failure in queues, event


def test_sqs_consumers_queues_outlast_six_function_timeouts(transformed_template: dict[str, Any]) -> None:
    queues = queue_specs(transformed_template)
    consumers = {
        event.queue: spec
        for spec in function_specs(transformed_template).values()
        for event in spec.events
        if isinstance(event, SqsSource)
    }
    assert {queue: spec.logical_id for queue, spec in consumers.items()} == {
        "SesEventsQueue": "IngestEmailFunction",
        "RescoreQueue": "RescoreFunction",
    }
    for queue, spec in consumers.items():
        assert queues[queue].visibility_timeout >= 6 * spec.timeout, queue
        assert queues[queue].max_receive_count == 5
    assert all(q.sqs_managed_sse for q in queues.values())


def test_decay_schedule_retries_then_dead_letters_into_a_queue_only_its_rule_may_use(
    transformed_template: dict[str, Any],
) -> None:
    (schedule,) = function_specs(transformed_template)["DecayScoresFunction"].events_of("schedule")
    assert isinstance(schedule, ScheduleSource)
    assert schedule.expression == {"Ref": "DecaySchedule"}
    assert schedule.retry_policy is not None
    assert schedule.retry_policy["MaximumRetryAttempts"] >= 1
    assert schedule.dead_letter_queue == "DecayScoresDLQ"
    (statement,) = _statements(_props(transformed_template, "DecayScoresDLQPolicy"))
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [schedule.rule, "Arn"]}


def test_webhook_routes_are_public_and_lead_routes_need_iam(transformed_template: dict[str, Any]) -> None:
    routes = {
        (spec.logical_id, event.method, event.path, event.auth)
        for spec in function_specs(transformed_template).values()
        for event in spec.events
        if isinstance(event, HttpRoute)
    }
    webhooks = {
        ("IngestFormFunction" if "/forms/" in route else "IngestEmailFunction", *route.split(" "), "NONE")
        for route in PROVIDER_ROUTES | CATCH_ALL_ROUTES
    }
    lead_api = {("LeadApiFunction", method, path, "AWS_IAM") for method, path in LEAD_API_ROUTES}
    track = {("TrackFunction", *route.split(" "), "NONE") for route in TRACK_ROUTES}
    # and each path's ANY route (405 for the other methods) is as public, or as private, as its routes
    any_routes = {
        ("MethodNotAllowedFunction", "ANY", path, auth) for _, _, path, auth in webhooks | lead_api | track
    }
    assert routes == webhooks | lead_api | track | any_routes


def test_every_path_answers_405_with_the_methods_its_routes_serve(
    transformed_template: dict[str, Any],
) -> None:
    # Given the template's routes, by path
    specs = function_specs(transformed_template)
    served: dict[str, set[str]] = {}
    with_any = set()
    for spec in specs.values():
        for event in spec.events_of("http"):
            assert isinstance(event, HttpRoute)
            if event.method == "ANY":
                assert spec.logical_id == "MethodNotAllowedFunction", event
                with_any.add(event.path)
            else:
                served.setdefault(event.path, set()).add(event.method)
    # Then every path has an ANY route, to the function that answers 405
    assert with_any == set(served)
    # And that function's ALLOWED_METHODS names exactly each path's methods, as the Allow header wants
    variables = specs["MethodNotAllowedFunction"].environment
    allowed = json.loads(variables["ALLOWED_METHODS"])
    assert allowed == {path: ", ".join(sorted(methods)) for path, methods in served.items()}


def test_http_api_logs_access_and_throttles_by_default(transformed_template: dict[str, Any]) -> None:
    (stage,) = resources_of_type(transformed_template, "AWS::ApiGatewayV2::Stage").values()
    properties = stage["Properties"]
    assert properties["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["LeadScoreApiAccessLogs", "Arn"]
    }
    assert "$context.requestId" in properties["AccessLogSettings"]["Format"]
    throttle = properties["DefaultRouteSettings"]
    assert throttle["ThrottlingBurstLimit"] > 0
    assert throttle["ThrottlingRateLimit"] > 0


# ------------------------------------------------------------------------ messaging and secrets
def test_stage_change_topics_are_encrypted(transformed_template: dict[str, Any]) -> None:
    assert _props(transformed_template, "NurtureTopic")["KmsMasterKeyId"] == "alias/aws/sns"
    assert _props(transformed_template, "SalesTopic")["KmsMasterKeyId"] == "alias/aws/sns"


def test_ses_events_flow_through_an_encrypted_topic_that_only_ses_may_publish_to(
    transformed_template: dict[str, Any],
) -> None:
    # The topic uses a rotating customer managed key that SES and SNS may use.
    assert _props(transformed_template, "SesEventsTopic")["KmsMasterKeyId"] == {
        "Fn::GetAtt": ["SesEventsKey", "Arn"]
    }
    key = _props(transformed_template, "SesEventsKey")
    assert key["EnableKeyRotation"] is True
    service_use = [s for s in _statements(key["KeyPolicy"]) if "Service" in s["Principal"]]
    assert {p for s in service_use for p in _as_list(s["Principal"]["Service"])} == {
        "ses.amazonaws.com",
        "sns.amazonaws.com",
    }
    assert {a for s in service_use for a in s["Action"]} == {"kms:GenerateDataKey*", "kms:Decrypt"}
    # ... each only on behalf of this account's own resources (confused deputy)
    for statement in service_use:
        condition = statement["Condition"]
        assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
        source_arn = condition["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
        assert source_arn.endswith(":${AWS::AccountId}:configuration-set/*") or source_arn.endswith(
            ":sns:${AWS::Region}:${AWS::AccountId}:*"
        )
    # Only SES of this account may publish.
    (publish,) = _statements(_props(transformed_template, "SesEventsTopicPolicy"))
    assert publish["Principal"] == {"Service": "ses.amazonaws.com"}
    assert publish["Condition"]["StringEquals"]["AWS:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The queue is subscribed and accepts messages from that topic only.
    subscription = subscription_specs(transformed_template)["SesEventsSubscription"]
    assert (subscription.topic, subscription.protocol, subscription.endpoint) == (
        "SesEventsTopic",
        "sqs",
        "SesEventsQueue",
    )
    (send,) = _statements(_props(transformed_template, "SesEventsQueuePolicy"))
    assert send["Action"] == "sqs:SendMessage"
    assert send["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "SesEventsTopic"}


def test_webhook_secret_is_generated_with_one_object_per_provider(sam_template: dict[str, Any]) -> None:
    properties = _props(sam_template, "WebhookSecret")
    assert "SecretString" not in properties  # no plaintext secret in the template
    generated = properties["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "bootstrap"
    providers = json.loads(generated["SecretStringTemplate"])
    assert providers == {"generic": {}, "html": {"sites": {}}, "typeform": {}, "sendgrid": {}}


# Functions that compute lead ids (ingest keys each event; the lead API finds a lead by email).
LEAD_ID_FUNCTIONS = ("IngestFormFunction", "IngestEmailFunction", "LeadApiFunction", "TrackFunction")


def test_lead_id_key_is_generated_never_in_plaintext_and_outlives_the_stack(
    sam_template: dict[str, Any],
) -> None:
    resource = sam_template["Resources"]["LeadKeySecret"]
    assert resource["Type"] == "AWS::SecretsManager::Secret"
    # Losing or replacing the key gives every person a new id: it survives deletion and replacement.
    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = resource["Properties"]
    assert "SecretString" not in properties
    generated = properties["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and "SecretStringTemplate" not in generated
    assert "RotationRules" not in properties  # an id key must never rotate
    rotations = [r for r in sam_template["Resources"].values() if "Rotation" in str(r["Type"])]
    assert rotations == []


def test_lead_id_scheme_parameter_offers_keyed_and_the_legacy_ids(sam_template: dict[str, Any]) -> None:
    parameter = sam_template["Parameters"]["LeadIdScheme"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("keyed", ["keyed", "legacy-sha256"])


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_only_the_functions_that_compute_lead_ids_get_the_key_and_may_read_it(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    variables = _props(transformed_template, logical_id)["Environment"]["Variables"]
    statements = _statements(_props(transformed_template, f"{logical_id}Role").get("Policies", []))
    key_grants = {
        action
        for s in statements
        if "LeadKeySecret" in _referenced_ids(s.get("Resource"))
        for action in _as_list(s["Action"])
    }
    if logical_id in LEAD_ID_FUNCTIONS:
        assert variables["LEAD_KEY_SECRET"] == {"Ref": "LeadKeySecret"}
        assert variables["LEAD_ID_SCHEME"] == {"Ref": "LeadIdScheme"}
        assert key_grants == {"secretsmanager:GetSecretValue"}
    else:
        assert "LEAD_KEY_SECRET" not in variables
        assert key_grants == set()


def _dead_letter_queues(template: dict[str, Any]) -> list[str]:
    return [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SQS::Queue" and name.endswith("DLQ")
    ]


def test_every_dead_letter_queue_is_an_output_for_leadscore_replay(sam_template: dict[str, Any]) -> None:
    queues = _dead_letter_queues(sam_template)

    assert len(queues) == 7
    for name in queues:
        assert sam_template["Outputs"][f"{name}Url"]["Value"] == {"Ref": name}


def test_outputs_expose_what_operators_and_subscribers_need(sam_template: dict[str, Any]) -> None:
    assert set(sam_template["Outputs"]) == {
        "ApiUrl",
        "NurtureTopicArn",
        "SalesTopicArn",
        "SesEventsTopicArn",
        "EventLedgerTableName",
        "LeadProfilesTableName",
        "LeadRanksTableName",
        "AccountsTableName",
        "WebhookSecretArn",
        "RescoreQueueUrl",
        "RescoreJobsTableName",
        "RescoreFunctionName",
        "WebAclArn",
        "IdempotencyTableName",
        "SesEventsQueueUrl",
        "LeadKeySecretArn",
        "LeadIdScheme",
        "ChatWebhookSecretArn",
        "ChatAlertsFunctionName",
        "TrackSnippetUrl",
        *(f"{name}Url" for name in _dead_letter_queues(sam_template)),
    }
    assert sam_template["Outputs"]["WebAclArn"]["Condition"] == "CreateWaf"
    assert "${LeadScoreApi}" in sam_template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert sam_template["Outputs"]["TrackSnippetUrl"]["Value"]["Fn::Sub"].endswith("/v1/track.js")


@pytest.mark.parametrize(
    "logical_id", ["ScoreEventsFunction", "EvaluateThresholdsFunction", "RescoreFunction"]
)
def test_model_read_access_is_granted_only_for_a_configured_model_location(
    sam_template: dict[str, Any], logical_id: str
) -> None:
    policies = sam_template["Resources"][logical_id]["Properties"]["Policies"]
    conditional = [p["Fn::If"] for p in policies if isinstance(p, dict) and "Fn::If" in p]
    assert sorted(c[0] for c in conditional) == ["ModelInS3", "ModelInSsm"]
    assert all(c[2] == {"Ref": "AWS::NoValue"} for c in conditional)


# ------------------------------------------------------------------------- least privilege (IAM)
def _resource_name(resource: Any) -> str:
    """`Table`, `Table/index/name` or a topic/queue id, from GetAtt X.Arn, Ref X or Sub ${X.Arn}/..."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if isinstance(resource, dict) and "Ref" in resource:
        return str(resource["Ref"])
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        return re.sub(r"\$\{([A-Za-z0-9]+)\.Arn\}", r"\1", resource["Fn::Sub"])
    return str(resource)


def _grants(transformed: dict[str, Any], logical_id: str, service: str) -> set[tuple[str, str]]:
    """(action, resource) pairs of one service that the function's inline policies allow."""
    statements = _statements(_props(transformed, f"{logical_id}Role").get("Policies", []))
    return {
        (action, _resource_name(resource))
        for s in statements
        if s["Effect"] == "Allow"
        for action in _as_list(s["Action"])
        if action.startswith(f"{service}:")
        for resource in _as_list(s["Resource"])
    }


@pytest.mark.parametrize("logical_id", sorted(DYNAMODB_ACCESS))
def test_function_gets_exactly_the_dynamodb_actions_it_calls_on_the_tables_and_indexes_it_uses(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    # Ingest: PutItem on the ledger only; score_events: UpdateItem only; evaluate/decay: no
    # PutItem, DeleteItem or Scan on profiles; lead_api: reads on the indexes it queries.
    expected = set(DYNAMODB_ACCESS[logical_id])
    assert _grants(transformed_template, logical_id, "dynamodb") == expected


@pytest.mark.parametrize("logical_id", ["EventLedgerTable", "LeadProfilesTable"])
def test_ledger_and_profiles_survive_stack_deletion_and_table_replacement(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    table = transformed_template["Resources"][logical_id]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_ses_events_are_polled_below_the_reserved_concurrency(
    transformed_template: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    (mapping,) = [
        m["Properties"]
        for m in resources_of_type(transformed_template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["SesEventsQueue", "Arn"]}
    ]
    reserved = sam_template["Parameters"]["IngestReservedConcurrency"]["Default"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] < reserved


@pytest.mark.parametrize("logical_id", ["EvaluateThresholdsFunction", "DecayScoresFunction"])
def test_stage_keepers_can_neither_create_delete_nor_scan_profiles(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    on_profiles = {
        a for a, r in _grants(transformed_template, logical_id, "dynamodb") if r == "LeadProfilesTable"
    }
    assert on_profiles & {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"} == set()
    assert "dynamodb:UpdateItem" in on_profiles


@pytest.mark.parametrize("logical_id", ["EvaluateThresholdsFunction", "DecayScoresFunction"])
def test_stage_keepers_publish_to_the_stage_change_topics_only(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    assert _grants(transformed_template, logical_id, "sns") == {
        ("sns:Publish", "NurtureTopic"),
        ("sns:Publish", "SalesTopic"),
    }


def test_no_statement_of_ours_allows_every_resource(transformed_template: dict[str, Any]) -> None:
    # Given every policy statement of the stack except key policies, where "*" means "this key"
    keys = resources_of_type(transformed_template, "AWS::KMS::Key")
    others = {k: v for k, v in transformed_template["Resources"].items() if k not in keys}
    statements = _statements(others)
    assert len(statements) > 20
    # Then each names its resources (managed policies SAM attaches are not statements of ours)
    assert [s for s in statements if "*" in _as_list(s.get("Resource"))] == []
    # And key policies give services access only with source conditions
    for key in keys.values():
        for statement in _statements(key["Properties"]["KeyPolicy"]):
            if "Service" in statement["Principal"]:
                assert {"StringEquals", "ArnLike"} <= set(statement["Condition"]), statement["Sid"]


# ------------------------------------------------------------------------- throttling and concurrency
@pytest.mark.parametrize("channel", ["form", "email"])
def test_every_provider_has_a_route_of_its_own(channel: Channel) -> None:
    """A provider left to the catch-all would share its small throttle with every scanner."""
    prefix = {"form": "POST /v1/forms/", "email": "POST /v1/email-events/"}[channel]
    assert {f"{prefix}{name}" for name in supported(channel)} <= PROVIDER_ROUTES


def test_each_provider_route_has_its_own_throttle_and_unknown_providers_a_smaller_one(
    transformed_template: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    # Given the API stage's per-route settings
    (stage,) = resources_of_type(transformed_template, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["RouteSettings"]
    defaults = {name: spec.get("Default") for name, spec in sam_template["Parameters"].items()}
    # Then every webhook route has a bucket of its own, set by parameters
    assert (
        set(settings)
        == PROVIDER_ROUTES | CATCH_ALL_ROUTES | WEBHOOK_ANY_ROUTES | TRACK_ROUTES | TRACK_ANY_ROUTES
    )
    for route in PROVIDER_ROUTES:
        assert settings[route] == {
            "ThrottlingBurstLimit": {"Ref": "WebhookRouteBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "WebhookRouteRateLimit"},
        }, route
    for route in TRACK_ROUTES:  # the snippet's routes: a bucket of their own, set by their parameters
        assert settings[route] == {
            "ThrottlingBurstLimit": {"Ref": "TrackRouteBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "TrackRouteRateLimit"},
        }, route
    for route in CATCH_ALL_ROUTES | WEBHOOK_ANY_ROUTES | TRACK_ANY_ROUTES:
        assert settings[route] == {
            "ThrottlingBurstLimit": {"Ref": "UnknownProviderRouteBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "UnknownProviderRouteRateLimit"},
        }, route
    # And by default the catch-alls get far less than a real provider's route
    assert defaults["UnknownProviderRouteRateLimit"] * 10 <= defaults["WebhookRouteRateLimit"]
    assert defaults["UnknownProviderRouteBurstLimit"] * 10 <= defaults["WebhookRouteBurstLimit"]


@pytest.mark.parametrize("logical_id", INGEST_FUNCTIONS)
def test_ingest_functions_reserve_concurrency_unless_the_parameter_is_zero(
    transformed_template: dict[str, Any], sam_template: dict[str, Any], logical_id: str
) -> None:
    assert _props(transformed_template, logical_id)["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveIngestConcurrency", {"Ref": "IngestReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert sam_template["Conditions"]["ReserveIngestConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "IngestReservedConcurrency"}, 0]}]
    }
    assert sam_template["Parameters"]["IngestReservedConcurrency"]["Default"] > 0


def test_the_track_function_reserves_concurrency_of_its_own_unless_the_parameter_is_zero(
    transformed_template: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    assert _props(transformed_template, "TrackFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveTrackConcurrency", {"Ref": "TrackReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert sam_template["Conditions"]["ReserveTrackConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TrackReservedConcurrency"}, 0]}]
    }
    assert sam_template["Parameters"]["TrackReservedConcurrency"]["Default"] > 0


def test_optional_waf_rate_rule_is_cloudfront_scoped_and_only_in_us_east_1(
    transformed_template: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    # HTTP APIs cannot be associated with WAF: the ACL is for a CloudFront distribution in front.
    (acl,) = resources_of_type(transformed_template, "AWS::WAFv2::WebACL").values()
    assert acl["Condition"] == "CreateWaf"
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": {"Ref": "WafRequestsPer5Minutes"},
    }
    assert not resources_of_type(transformed_template, "AWS::WAFv2::WebACLAssociation")
    assertion = sam_template["Rules"]["WafOnlyInUsEast1"]["Assertions"][0]["Assert"]
    assert assertion == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}


# ------------------------------------------------------------------------------ alarms
def _alarms(transformed: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources_of_type(transformed, "AWS::CloudWatch::Alarm").values()]


def _alarmed(transformed: dict[str, Any], namespace: str, metric: str) -> set[str]:
    """Logical ids of the queues or functions alarmed on for that metric."""
    return {
        _resource_name(dimension["Value"])
        for alarm in _alarms(transformed)
        if (alarm["Namespace"], alarm["MetricName"]) == (namespace, metric)
        for dimension in alarm["Dimensions"]
    }


def test_every_dead_letter_queue_and_on_failure_destination_has_an_alarm(
    transformed_template: dict[str, Any],
) -> None:
    # Given every queue something dead-letters into (redrive, stream on-failure, schedule DLQ)
    queues = queue_specs(transformed_template)
    targets = {q.dead_letter_queue for q in queues.values() if q.dead_letter_queue}
    for spec in function_specs(transformed_template).values():
        for event in spec.events:
            if isinstance(event, DynamoDBStreamSource):
                targets.add(event.on_failure)
            if isinstance(event, ScheduleSource):
                targets.add(event.dead_letter_queue)
    for config in resources_of_type(transformed_template, "AWS::Lambda::EventInvokeConfig").values():
        destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        targets.add(destination["Fn::GetAtt"][0])  # asynchronous invocations' on-failure queue
    assert targets == DEAD_LETTER_QUEUES
    # Then each has an alarm on its visible messages
    assert _alarmed(transformed_template, "AWS/SQS", "ApproximateNumberOfMessagesVisible") == targets


def test_both_stream_consumers_alarm_on_iterator_age(transformed_template: dict[str, Any]) -> None:
    consumers = {
        spec.logical_id
        for spec in function_specs(transformed_template).values()
        if spec.events_of("dynamodb")
    }
    assert consumers == set(STREAM_CONSUMERS)
    assert _alarmed(transformed_template, "AWS/Lambda", "IteratorAge") == consumers


def test_every_function_alarms_on_errors_and_ingest_on_throttles(
    transformed_template: dict[str, Any],
) -> None:
    assert _alarmed(transformed_template, "AWS/Lambda", "Errors") == set(FUNCTIONS)
    throttled = {*INGEST_FUNCTIONS, "TrackFunction"}  # the functions with reserved concurrency
    assert _alarmed(transformed_template, "AWS/Lambda", "Throttles") == throttled


def test_alarms_fire_on_any_occurrence_treat_no_data_as_fine_and_notify_the_operator_topic(
    transformed_template: dict[str, Any],
) -> None:
    alarms = _alarms(transformed_template)
    assert len(alarms) == len(DEAD_LETTER_QUEUES) + len(STREAM_CONSUMERS) + len(FUNCTIONS) + 3
    target = {"Fn::If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "OperatorAlarmTopic"}]}
    for alarm in alarms:
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["AlarmActions"] == {"Fn::If": ["NotifyOperators", [target], {"Ref": "AWS::NoValue"}]}
    # The operator topic and its email subscription exist only when an email (and no ARN) is given
    conditional = ("OperatorAlarmTopic", "OperatorAlarmTopicPolicy", "OperatorAlarmEmail")
    assert {transformed_template["Resources"][r]["Condition"] for r in conditional} == {"CreateAlarmTopic"}
    assert _props(transformed_template, "OperatorAlarmEmail")["Endpoint"] == {"Ref": "AlarmEmail"}


# ------------------------------------------------------------------------------ logs and tracing
@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_logs_to_a_stack_owned_log_group_with_the_retention_parameter(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    # Given the log group the function is configured to write to
    group_id = _props(transformed_template, logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
    group = transformed_template["Resources"][group_id]
    # Then it is created by the stack (not by Lambda on first run, which would race the stack)
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{logical_id}"}


def test_every_log_group_has_the_retention_parameter(transformed_template: dict[str, Any]) -> None:
    groups = resources_of_type(transformed_template, "AWS::Logs::LogGroup")
    assert len(groups) == len(FUNCTIONS) + 1  # and the API access logs
    retention = [g["Properties"]["RetentionInDays"] for g in groups.values()]
    assert retention == [{"Ref": "LogRetentionDays"}] * len(groups)


def test_lead_api_does_not_record_its_answers_in_x_ray(transformed_template: dict[str, Any]) -> None:
    # Given the function's environment and its handler's tracer decorators
    variables = _props(transformed_template, "LeadApiFunction")["Environment"]["Variables"]
    source = (Path(__file__).resolve().parents[2] / FUNCTIONS["LeadApiFunction"] / "handler.py").read_text()
    decorators = [
        d
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef)
        for d in node.decorator_list
        if isinstance(d, ast.Call) and ast.unparse(d.func).startswith("tracer.capture_")
    ]
    # Then responses (personal data) are never captured, by configuration and in code
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert len(decorators) == 5
    for decorator in decorators:
        keywords = {k.arg: ast.literal_eval(k.value) for k in decorator.keywords}
        assert keywords.get("capture_response") is False, ast.unparse(decorator)


def test_rescore_workers_are_bounded_by_one_parameter_the_job_also_reads(
    transformed_template: dict[str, Any],
) -> None:
    (mapping,) = [
        resource["Properties"]
        for resource in transformed_template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::EventSourceMapping"
        and resource["Properties"]["FunctionName"] == {"Ref": "RescoreFunction"}
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RescoreMaxConcurrency"}}
    variables = _props(transformed_template, "RescoreFunction")["Environment"]["Variables"]
    assert variables["RESCORE_MAX_CONCURRENCY"] == {"Ref": "RescoreMaxConcurrency"}
    parameter = transformed_template["Parameters"]["RescoreMaxConcurrency"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (2, 1000)  # what Lambda accepts


def test_every_function_skips_pydantic_plugin_discovery_and_the_bench_sees_it() -> None:
    # pydantic scans every installed distribution's entry points for plugins at its first model
    # build, on each cold start: the product uses none, so the template turns the scan off, and
    # the import bench runs handlers with the template's constant environment.
    from leadscore.bench.startup import template_constants

    assert template_constants()["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


# ------------------------------------------------------------------------------------ chat alerts
CHAT_RESOURCES = (
    "ChatAlertsFunction",
    "ChatAlertsFunctionRole",
    "ChatAlertsFunctionSalesTopic",  # the SNS subscription SAM generates
    "ChatAlertsFunctionSalesTopicPermission",
    "ChatAlertsFunctionEventInvokeConfig",
    "ChatAlertsDLQ",
    "ChatAlertsDLQAlarm",
    "ChatAlertsFunctionErrorsAlarm",
    "ChatAlertsLogs",
)


def test_chat_alerts_exist_only_when_a_chat_tool_is_chosen(transformed_template: dict[str, Any]) -> None:
    resources = transformed_template["Resources"]
    assert {resources[name].get("Condition") for name in CHAT_RESOURCES} == {"ChatAlertsOn"}
    assert resources["ChatWebhookSecret"]["Condition"] == "CreateChatWebhookSecret"
    conditions = transformed_template["Conditions"]
    assert conditions["ChatAlertsOn"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ChatAlerts"}, "none"]}]}
    assert {"Fn::Equals": [{"Ref": "ChatWebhookSecretArn"}, ""]} in conditions["CreateChatWebhookSecret"][
        "Fn::And"
    ]
    assert transformed_template["Parameters"]["ChatAlerts"]["AllowedValues"] == ["none", "slack", "teams"]


def test_chat_alerts_hear_only_stage_changes_of_the_sales_topic_and_dead_letter_failures(
    transformed_template: dict[str, Any],
) -> None:
    (subscription,) = [
        s for s in subscription_specs(transformed_template).values() if s.endpoint == "ChatAlertsFunction"
    ]
    assert (subscription.topic, subscription.protocol) == ("SalesTopic", "lambda")
    assert subscription.filter_policy == {"schema": ["leadscore.stage_changed"]}
    invoke = _props(transformed_template, "ChatAlertsFunctionEventInvokeConfig")
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["ChatAlertsDLQ", "Arn"]}
    assert ("sqs:SendMessage", "ChatAlertsDLQ") in _grants(transformed_template, "ChatAlertsFunction", "sqs")
    variables = _props(transformed_template, "ChatAlertsFunction")["Environment"]["Variables"]
    secret = {
        "Fn::If": ["CreateChatWebhookSecret", {"Ref": "ChatWebhookSecret"}, {"Ref": "ChatWebhookSecretArn"}]
    }
    assert variables["CHAT_WEBHOOK_SECRET"] == secret
    assert "CHAT_WEBHOOK_ALLOW_LOOPBACK" not in variables  # plain http is for tests only


@pytest.mark.parametrize(
    "logical_id", ["EvaluateThresholdsFunction", "DecayScoresFunction", "ChatAlertsFunction"]
)
def test_every_function_that_words_alerts_knows_the_console_address(
    transformed_template: dict[str, Any], logical_id: str
) -> None:
    variables = _props(transformed_template, logical_id)["Environment"]["Variables"]
    assert variables["CONSOLE_URL"] == {"Ref": "ConsoleUrl"}


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("http://127.0.0.1:8421", True),
        ("https://console.example.com/leadscore/", True),
        ("javascript:alert(1)", False),
        ("https://console.example.com/?next=evil", False),
        ("https://a b", False),
        ("https://x.example/<script>", False),
    ],
)
def test_console_url_parameter_allows_exactly_what_the_functions_accept(
    sam_template: dict[str, Any], value: str, valid: bool
) -> None:
    from pydantic import ValidationError

    from leadscore.config import Settings

    pattern = sam_template["Parameters"]["ConsoleUrl"]["AllowedPattern"]
    try:
        Settings.model_validate({"LEDGER_TABLE": "l", "PROFILES_TABLE": "p", "CONSOLE_URL": value})
        accepted = True
    except ValidationError:
        accepted = False
    assert (re.fullmatch(pattern, value) is not None, accepted) == (valid, valid)
