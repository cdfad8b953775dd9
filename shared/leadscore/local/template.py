"""Read `template.yaml`, the single source of truth for tables, queues, topics and functions.

Pure helpers, no AWS calls: tests and the local runner build their resources from what these
return instead of repeating key schemas or triggers by hand.

- `load_template` parses the YAML, turning CloudFormation short-form tags (`!Ref`, `!GetAtt`,
  `!Sub`, ...) into their long form (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`, ...).
- `transform` runs the AWS SAM translator offline, which is what CloudFormation does on deploy
  (and what catches SAM mistakes cfn-lint misses: unknown runtimes, bad policy templates).
- `table_specs`, `ttl_attribute`, `function_specs`, `queue_specs`, `topic_specs` and
  `subscription_specs` read the transformed template. Values that are intrinsics (a `Ref` to a
  parameter or a resource) are returned raw; the local runner resolves them.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

TEMPLATE_ENV = "LEADSCORE_TEMPLATE"
# Stand-in S3 bucket for local CodeUri/ContentUri folders: the translator only accepts S3 URIs
# (`sam build`/`sam deploy` normally rewrite them). The folder is kept as the S3 key.
LOCAL_CODE_BUCKET = "leadscore-local-code"

Template = dict[str, Any]

_FUNCTION_TYPE = "AWS::Lambda::Function"
_TABLE_TYPE = "AWS::DynamoDB::Table"
_QUEUE_TYPE = "AWS::SQS::Queue"
_TOPIC_TYPE = "AWS::SNS::Topic"
_SUBSCRIPTION_TYPE = "AWS::SNS::Subscription"
_ESM_TYPE = "AWS::Lambda::EventSourceMapping"
_RULE_TYPE = "AWS::Events::Rule"
_HTTP_API_TYPE = "AWS::ApiGatewayV2::Api"
_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
_INTEGRATION_FUNCTION = re.compile(r"/functions/\$\{(?P<function>[A-Za-z0-9]+)\.Arn\}/invocations")


class TemplateError(ValueError):
    """The template cannot be read, transformed or interpreted."""


# ---------------------------------------------------------------------------------------- loading
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic function tags."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in {"Ref", "Condition"}:
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)  # !GetAtt Resource.Attribute.Maybe.Dotted
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def default_template_path() -> Path:
    """`$LEADSCORE_TEMPLATE`, else the repository's `template.yaml` (found relative to this package)."""
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        return Path(override)
    # shared/leadscore/local/template.py -> repository root
    return Path(__file__).resolve().parents[3] / "template.yaml"


def load_template(path: str | os.PathLike[str] | None = None) -> Template:
    """Parse a CloudFormation/SAM YAML template into plain dicts (intrinsics in long form)."""
    template_path = Path(path) if path is not None else default_template_path()
    try:
        with template_path.open(encoding="utf-8") as stream:
            document = yaml.load(stream, Loader=_CfnLoader)
    except OSError as exc:
        raise TemplateError(f"cannot read template {template_path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TemplateError(f"invalid YAML in {template_path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{template_path} is not a CloudFormation template (no Resources)")
    return document


def parameter_defaults(template: Template) -> dict[str, Any]:
    """Default value of every template parameter that has one."""
    return {
        name: spec["Default"]
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict) and "Default" in spec
    }


# -------------------------------------------------------------------------------------- transform
class _NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would list IAM policies over the
    network. An empty map is right as long as `Policies` only uses policy templates, inline
    statements or full managed policy ARNs (never bare managed policy names)."""

    def load(self) -> dict[str, str]:
        return {}


def _with_s3_code_uris(template: Template) -> Template:
    prepared = copy.deepcopy(template)
    for resource in prepared.get("Resources", {}).values():
        uri_property = _LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties") or {}
        uri = properties.get(uri_property) if uri_property else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            properties[uri_property] = f"s3://{LOCAL_CODE_BUCKET}/{uri.strip('/')}"
    return prepared


def transform(
    template: Template,
    region: str = "us-east-1",
    parameter_values: Mapping[str, Any] | None = None,
) -> Template:
    """Translate a SAM template to plain CloudFormation, offline.

    Equivalent to `samtranslator.translator.transform.transform(template, params, loader)`, but
    with the region passed in explicitly (that function reads it from the default boto3 session,
    i.e. from the environment) and a managed-policy loader that makes no IAM call.
    Local CodeUri folders become `s3://leadscore-local-code/<folder>`. The input is not modified.
    """
    import boto3  # samtranslator imports boto3 anyway; kept lazy with it
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    document = _with_s3_code_uris(template)
    parameters = dict(parameter_values or {})
    to_py27_compatible_template(document, parameters)
    # A Session with an explicit region makes no network call; the translator only reads
    # region_name from it (for AWS::Region / AWS::Partition).
    session = boto3.session.Session(region_name=region)
    # Timing metrics go nowhere; flushing them avoids "unpublished metrics" warnings at exit.
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
    policies = _NoManagedPolicies()
    try:
        transformed = translator.translate(
            document, parameter_values=parameters, get_managed_policy_map=policies.load
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM transform failed: {causes}") from exc
    finally:
        metrics.publish()
    result: Template = undo_mark_unicode_str_in_template(transformed)
    return result


# ---------------------------------------------------------------------------------------- helpers
def resources_of_type(transformed: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one CloudFormation type."""
    return {
        logical_id: resource
        for logical_id, resource in transformed.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def ref_target(value: Any) -> str | None:
    """Logical id named by `{"Ref": id}` or `{"Fn::GetAtt": [id, attribute]}`, else None."""
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att and isinstance(get_att[0], str):
            return get_att[0]
    return None


def _properties(transformed: Template, logical_id: str, resource_type: str) -> dict[str, Any]:
    resource = transformed.get("Resources", {}).get(logical_id)
    if resource is None or resource.get("Type") != resource_type:
        raise TemplateError(f"{logical_id} is not a {resource_type} in the template")
    properties: dict[str, Any] = resource.get("Properties") or {}
    return properties


# ----------------------------------------------------------------------------------------- tables
def _key_schema(schema: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"AttributeName": key["AttributeName"], "KeyType": key["KeyType"]} for key in schema]


def _index(index: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "IndexName": index["IndexName"],
        "KeySchema": _key_schema(index["KeySchema"]),
        "Projection": dict(index["Projection"]),
    }
    if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
        spec["ProvisionedThroughput"] = dict(index["ProvisionedThroughput"])
    return spec


def table_spec(transformed: Template, logical_id: str, table_name: str) -> dict[str, Any]:
    """boto3 `create_table` keyword arguments for one table of the template."""
    properties = _properties(transformed, logical_id, _TABLE_TYPE)
    billing_mode = properties.get("BillingMode", "PROVISIONED")
    spec: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _key_schema(properties["KeySchema"]),
        "AttributeDefinitions": [
            {"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
            for a in properties["AttributeDefinitions"]
        ],
        "BillingMode": billing_mode,
    }
    if billing_mode == "PROVISIONED":
        spec["ProvisionedThroughput"] = dict(properties["ProvisionedThroughput"])
    if properties.get("GlobalSecondaryIndexes"):
        spec["GlobalSecondaryIndexes"] = [
            _index(index, billing_mode) for index in properties["GlobalSecondaryIndexes"]
        ]
    if properties.get("LocalSecondaryIndexes"):
        spec["LocalSecondaryIndexes"] = [
            _index(index, billing_mode) for index in properties["LocalSecondaryIndexes"]
        ]
    stream = properties.get("StreamSpecification")
    if stream:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = properties.get("SSESpecification")
    if sse:
        spec["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
    return spec


def table_specs(transformed: Template, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Logical id -> boto3 `create_table` kwargs for every table; TableName is prefix + logical id."""
    return {
        logical_id: table_spec(transformed, logical_id, f"{prefix}{logical_id}")
        for logical_id in resources_of_type(transformed, _TABLE_TYPE)
    }


def ttl_attribute(transformed: Template, logical_id: str) -> str | None:
    """Name of the table's TTL attribute, or None when TTL is not enabled."""
    ttl = _properties(transformed, logical_id, _TABLE_TYPE).get("TimeToLiveSpecification") or {}
    return str(ttl["AttributeName"]) if ttl.get("Enabled") and ttl.get("AttributeName") else None


# -------------------------------------------------------------------------------------- functions
@dataclass(frozen=True)
class HttpRoute:
    """An HTTP API route (payload format 2.0) that invokes the function."""

    api: str
    method: str  # upper case; ANY for x-amazon-apigateway-any-method
    path: str
    auth: str  # "NONE" or the authorizer name, e.g. "AWS_IAM"
    kind: Literal["http"] = "http"


@dataclass(frozen=True)
class DynamoDBStreamSource:
    table: str
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int | None
    bisect_batch_on_function_error: bool
    report_batch_item_failures: bool
    filter_patterns: tuple[dict[str, Any], ...]
    on_failure: str | None  # logical id of the on-failure destination
    kind: Literal["dynamodb"] = "dynamodb"


@dataclass(frozen=True)
class SqsSource:
    queue: str
    batch_size: int
    report_batch_item_failures: bool
    kind: Literal["sqs"] = "sqs"


@dataclass(frozen=True)
class ScheduleSource:
    rule: str
    expression: Any  # raw: a literal, or {"Ref": "DecaySchedule"}
    retry_policy: dict[str, Any] | None
    dead_letter_queue: str | None
    kind: Literal["schedule"] = "schedule"


EventSource = HttpRoute | DynamoDBStreamSource | SqsSource | ScheduleSource


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: str  # relative to the repository root, e.g. "functions/ingest_form"
    handler: str
    runtime: str
    architectures: tuple[str, ...]
    timeout: int
    memory_size: int
    environment: dict[str, Any]  # raw values: literals or intrinsics (Ref to parameters/resources)
    events: tuple[EventSource, ...] = field(default_factory=tuple)

    def events_of(self, kind: str) -> list[EventSource]:
        return [event for event in self.events if event.kind == kind]


def _code_dir(code: dict[str, Any]) -> str:
    if code.get("S3Bucket") == LOCAL_CODE_BUCKET:
        return str(code.get("S3Key", "")).strip("/")
    return f"s3://{code.get('S3Bucket')}/{code.get('S3Key')}"


def _http_routes(transformed: Template) -> dict[str, list[HttpRoute]]:
    routes: dict[str, list[HttpRoute]] = {}
    for api_id, api in resources_of_type(transformed, _HTTP_API_TYPE).items():
        paths = ((api.get("Properties") or {}).get("Body") or {}).get("paths") or {}
        for path, operations in paths.items():
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration") or {}
                uri = integration.get("uri")
                uri_text = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
                match = _INTEGRATION_FUNCTION.search(uri_text) if isinstance(uri_text, str) else None
                if match is None:
                    continue
                security = operation.get("security") or []
                auth = next((name for requirement in security for name in requirement), "NONE")
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                route = HttpRoute(api=api_id, method=verb, path=path, auth=auth)
                routes.setdefault(match["function"], []).append(route)
    return routes


def _mapping_sources(transformed: Template) -> dict[str, list[EventSource]]:
    tables = resources_of_type(transformed, _TABLE_TYPE)
    queues = resources_of_type(transformed, _QUEUE_TYPE)
    sources: dict[str, list[EventSource]] = {}
    for mapping in resources_of_type(transformed, _ESM_TYPE).values():
        properties = mapping.get("Properties") or {}
        function = ref_target(properties.get("FunctionName"))
        source = ref_target(properties.get("EventSourceArn"))
        if function is None or source is None:
            continue
        report = "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        event: EventSource
        if source in tables:
            filters = (properties.get("FilterCriteria") or {}).get("Filters") or []
            on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination"
            )
            event = DynamoDBStreamSource(
                table=source,
                batch_size=int(properties.get("BatchSize", 100)),
                starting_position=str(properties.get("StartingPosition", "")),
                maximum_retry_attempts=properties.get("MaximumRetryAttempts"),
                bisect_batch_on_function_error=bool(properties.get("BisectBatchOnFunctionError", False)),
                report_batch_item_failures=report,
                filter_patterns=tuple(json.loads(f["Pattern"]) for f in filters),
                on_failure=ref_target(on_failure),
            )
        elif source in queues:
            event = SqsSource(
                queue=source,
                batch_size=int(properties.get("BatchSize", 10)),
                report_batch_item_failures=report,
            )
        else:
            continue
        sources.setdefault(function, []).append(event)
    return sources


def _schedule_sources(transformed: Template) -> dict[str, list[EventSource]]:
    sources: dict[str, list[EventSource]] = {}
    for rule_id, rule in resources_of_type(transformed, _RULE_TYPE).items():
        properties = rule.get("Properties") or {}
        if "ScheduleExpression" not in properties:
            continue
        for target in properties.get("Targets") or []:
            function = ref_target(target.get("Arn"))
            if function is None:
                continue
            dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
            event = ScheduleSource(
                rule=rule_id,
                expression=properties["ScheduleExpression"],
                retry_policy=target.get("RetryPolicy"),
                dead_letter_queue=ref_target(dead_letter),
            )
            sources.setdefault(function, []).append(event)
    return sources


def function_specs(transformed: Template) -> dict[str, FunctionSpec]:
    """Logical id -> what the local runner needs to run each function and to trigger it."""
    events: dict[str, list[EventSource]] = {}
    for found in (_http_routes(transformed), _mapping_sources(transformed), _schedule_sources(transformed)):
        for function, function_events in found.items():
            events.setdefault(function, []).extend(function_events)
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources_of_type(transformed, _FUNCTION_TYPE).items():
        properties = resource.get("Properties") or {}
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=_code_dir(properties.get("Code") or {}),
            handler=str(properties.get("Handler", "")),
            runtime=str(properties.get("Runtime", "")),
            architectures=tuple(properties.get("Architectures") or ("x86_64",)),
            timeout=int(properties.get("Timeout", 3)),
            memory_size=int(properties.get("MemorySize", 128)),
            environment=dict((properties.get("Environment") or {}).get("Variables") or {}),
            events=tuple(events.get(logical_id, ())),
        )
    return specs


# ------------------------------------------------------------------------ queues, topics, subscriptions
@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    fifo: bool
    visibility_timeout: int
    message_retention_period: int | None
    sqs_managed_sse: bool
    dead_letter_queue: str | None  # logical id of the redrive target
    max_receive_count: int | None


@dataclass(frozen=True)
class TopicSpec:
    logical_id: str
    fifo: bool
    kms_master_key_id: Any  # raw: alias string or an intrinsic (customer managed key)


@dataclass(frozen=True)
class SubscriptionSpec:
    logical_id: str
    topic: str | None  # logical id
    protocol: str
    endpoint: Any  # logical id when it is a template resource, else the raw value
    raw_message_delivery: bool
    filter_policy: dict[str, Any] | None


def queue_specs(transformed: Template) -> dict[str, QueueSpec]:
    specs: dict[str, QueueSpec] = {}
    for logical_id, resource in resources_of_type(transformed, _QUEUE_TYPE).items():
        properties = resource.get("Properties") or {}
        redrive = properties.get("RedrivePolicy") or {}
        retention = properties.get("MessageRetentionPeriod")
        specs[logical_id] = QueueSpec(
            logical_id=logical_id,
            fifo=bool(properties.get("FifoQueue", False)),
            visibility_timeout=int(properties.get("VisibilityTimeout", 30)),
            message_retention_period=int(retention) if retention is not None else None,
            sqs_managed_sse=bool(properties.get("SqsManagedSseEnabled", False)),
            dead_letter_queue=ref_target(redrive.get("deadLetterTargetArn")),
            max_receive_count=int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None,
        )
    return specs


def topic_specs(transformed: Template) -> dict[str, TopicSpec]:
    return {
        logical_id: TopicSpec(
            logical_id=logical_id,
            fifo=bool((resource.get("Properties") or {}).get("FifoTopic", False)),
            kms_master_key_id=(resource.get("Properties") or {}).get("KmsMasterKeyId"),
        )
        for logical_id, resource in resources_of_type(transformed, _TOPIC_TYPE).items()
    }


def subscription_specs(transformed: Template) -> dict[str, SubscriptionSpec]:
    specs: dict[str, SubscriptionSpec] = {}
    for logical_id, resource in resources_of_type(transformed, _SUBSCRIPTION_TYPE).items():
        properties = resource.get("Properties") or {}
        endpoint = properties.get("Endpoint")
        specs[logical_id] = SubscriptionSpec(
            logical_id=logical_id,
            topic=ref_target(properties.get("TopicArn")),
            protocol=str(properties.get("Protocol", "")),
            endpoint=ref_target(endpoint) or endpoint,
            raw_message_delivery=str(properties.get("RawMessageDelivery", False)).lower() == "true",
            filter_policy=properties.get("FilterPolicy"),
        )
    return specs
