"""The template's resources in an AWS emulator, and its functions run as Lambda would run them.

`provision` creates every table, stream, topic, queue, subscription and secret that the
transformed `template.yaml` declares (nothing is listed by hand) and reports the resources it
does not emulate. `Runner` invokes the real handlers with the environment the template gives
them, and plays the managed glue: HTTP API routes, DynamoDB stream and SQS event source
mappings (batch sizes, retries, partial batch failures, on-failure destinations) and schedules.
"""

from __future__ import annotations

import json
import os
import re
import secrets as random_secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from leadscore.local import glue, schedule
from leadscore.local.template import (
    DynamoDBStreamSource,
    FunctionSpec,
    HttpRoute,
    ScheduleSource,
    SqsSource,
    function_specs,
    parameter_defaults,
    queue_specs,
    resources_of_type,
    subscription_specs,
    table_specs,
    topic_specs,
    ttl_attribute,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
# TEST-ONLY values of the secrets CloudFormation would generate (the lead-id key): fixed, so local
# runs are reproducible (the same email, the same lead id).
GENERATED_SECRETS_FILE = "events/local/generated-secrets.json"
# Resource types the runner plays itself rather than creating them in the emulator.
PLAYED = {
    "AWS::Lambda::Function": "run in-process by the local runner",
    "AWS::Lambda::EventSourceMapping": "played by the local runner (polling, batching, retries)",
    "AWS::Lambda::Permission": "not needed locally",
    "AWS::Lambda::LayerVersion": "the shared package is imported directly",
    "AWS::ApiGatewayV2::Api": "served by the local HTTP server",
    "AWS::ApiGatewayV2::Stage": "served by the local HTTP server",
    "AWS::Events::Rule": "fired by the local scheduler (fire now: POST /_local/schedules/<FunctionId>)",
    "AWS::IAM::Role": "not enforced locally",
    "AWS::SNS::TopicPolicy": "not enforced locally",
    "AWS::SQS::QueuePolicy": "not enforced locally",
    "AWS::KMS::Key": "not emulated: encryption at rest is AWS-side only",
    "AWS::KMS::Alias": "not emulated: encryption at rest is AWS-side only",
    "AWS::Logs::LogGroup": "logs go to the terminal",
    "AWS::Lambda::EventInvokeConfig": "played by the local runner",
    "AWS::CloudWatch::Alarm": "not evaluated locally: failures show in the terminal and the DLQs",
    "AWS::WAFv2::WebACL": "not emulated: per-IP rate limiting is AWS-side only",
}


@dataclass
class Physical:
    """Logical id -> physical identity of each created resource."""

    tables: dict[str, str] = field(default_factory=dict)
    streams: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    queues: dict[str, tuple[str, str]] = field(default_factory=dict)  # (url, arn)
    secrets: dict[str, str] = field(default_factory=dict)
    not_created: dict[str, str] = field(default_factory=dict)  # logical id -> why


def provision(
    transformed: Mapping[str, Any],
    session: Any,
    prefix: str = "local-",
    secret_strings: Mapping[str, str] | None = None,
) -> Physical:
    """Create the template's data and messaging resources in the emulator `session` points at."""
    physical = Physical()
    dynamodb = session.client("dynamodb")
    for logical_id, spec in table_specs(dict(transformed), prefix=prefix).items():
        description = dynamodb.create_table(**spec)["TableDescription"]
        physical.tables[logical_id] = spec["TableName"]
        if description.get("LatestStreamArn"):
            physical.streams[logical_id] = description["LatestStreamArn"]
        ttl = ttl_attribute(dict(transformed), logical_id)
        if ttl:
            dynamodb.update_time_to_live(
                TableName=spec["TableName"], TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )
    sns = session.client("sns")
    for logical_id, topic in topic_specs(dict(transformed)).items():
        name = f"{prefix}{logical_id}" + (".fifo" if topic.fifo else "")
        topic_attributes = {"FifoTopic": "true"} if topic.fifo else {}
        physical.topics[logical_id] = sns.create_topic(Name=name, Attributes=topic_attributes)["TopicArn"]
    sqs = session.client("sqs")
    queues = queue_specs(dict(transformed))
    for logical_id in sorted(queues, key=lambda q: queues[q].dead_letter_queue is not None):
        queue = queues[logical_id]
        queue_attributes = {"VisibilityTimeout": str(queue.visibility_timeout)}
        if queue.fifo:
            queue_attributes["FifoQueue"] = "true"
        if queue.dead_letter_queue:
            queue_attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": physical.queues[queue.dead_letter_queue][1],
                    "maxReceiveCount": queue.max_receive_count or 5,
                }
            )
        name = f"{prefix}{logical_id}" + (".fifo" if queue.fifo else "")
        url = sqs.create_queue(QueueName=name, Attributes=queue_attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        physical.queues[logical_id] = (url, arn)
    for logical_id, subscription in subscription_specs(dict(transformed)).items():
        if subscription.topic not in physical.topics or subscription.endpoint not in physical.queues:
            physical.not_created[logical_id] = "subscription to a resource outside the template"
            continue
        attributes: dict[str, str] = {"RawMessageDelivery": str(subscription.raw_message_delivery).lower()}
        if subscription.filter_policy:
            attributes["FilterPolicy"] = json.dumps(subscription.filter_policy)
        sns.subscribe(
            TopicArn=physical.topics[subscription.topic],
            Protocol=subscription.protocol,
            Endpoint=physical.queues[subscription.endpoint][1],
            Attributes=attributes,
        )
    secrets = session.client("secretsmanager")
    fixed = local_generated_secrets()
    for logical_id, resource in resources_of_type(dict(transformed), "AWS::SecretsManager::Secret").items():
        value = (secret_strings or {}).get(logical_id) or _initial_value(
            resource.get("Properties") or {}, fixed.get(logical_id)
        )
        physical.secrets[logical_id] = secrets.create_secret(
            Name=f"{prefix}{logical_id}", SecretString=value
        )["ARN"]
    created = set(physical.tables) | set(physical.topics) | set(physical.queues) | set(physical.secrets)
    created |= set(subscription_specs(dict(transformed)))
    for logical_id, resource in (transformed.get("Resources") or {}).items():
        if logical_id not in created and logical_id not in physical.not_created:
            kind = str(resource.get("Type"))
            physical.not_created[logical_id] = (
                f"{kind}: {PLAYED.get(kind, 'not emulated by the local stack')}"
            )
    return physical


def local_generated_secrets() -> dict[str, str]:
    """Logical id -> the TEST-ONLY value the local stack gives a secret CloudFormation generates."""
    document = json.loads((glue.repo_root() / GENERATED_SECRETS_FILE).read_text(encoding="utf-8"))
    return {name: str(value) for name, value in document.items() if not name.startswith("_")}


def _initial_value(properties: Mapping[str, Any], fixed: str | None) -> str:
    """A secret's value as CloudFormation would create it: its SecretString; for a generated one
    with a template, the template (the generated key is not needed locally); for a generated plain
    string, the fixed TEST-ONLY value, or a random one like CloudFormation's."""
    if "SecretString" in properties:
        return str(properties["SecretString"])
    generated = properties.get("GenerateSecretString")
    if generated is None:
        return "{}"
    if "SecretStringTemplate" in generated:
        return str(generated["SecretStringTemplate"])
    return fixed or random_secrets.token_hex(int(generated.get("PasswordLength", 32)) // 2)


class Resolver:
    """Resolves the intrinsics the template uses in function environments."""

    def __init__(
        self, transformed: Mapping[str, Any], physical: Physical, overrides: Mapping[str, str] | None = None
    ):
        self._parameters = {**parameter_defaults(dict(transformed)), **(overrides or {})}
        self._physical = physical
        self._conditions: Mapping[str, Any] = transformed.get("Conditions") or {}

    def condition(self, value: Any) -> bool:
        """A template condition (Fn::Equals/Not/And/Or, Condition) with the stack's parameters."""
        if isinstance(value, str):
            return self.condition(self._conditions[value])
        ((function, arguments),) = value.items()
        if function == "Condition":
            return self.condition(arguments)
        if function == "Fn::Equals":
            left, right = (self.resolve(a) if isinstance(a, dict) else str(a) for a in arguments)
            return left == right
        if function == "Fn::Not":
            return not self.condition(arguments[0])
        if function == "Fn::And":
            return all(self.condition(a) for a in arguments)
        if function == "Fn::Or":
            return any(self.condition(a) for a in arguments)
        raise ValueError(f"unsupported condition function in a function environment: {function}")

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": "local",
        }
        p = self._physical
        for source in (pseudo, self._parameters, p.tables, p.topics, p.secrets):
            if name in source:
                return str(source[name])
        if name in p.queues:
            return p.queues[name][0]
        raise KeyError(f"cannot resolve Ref {name} locally")

    def get_att(self, name: str, attribute: str) -> str:
        p = self._physical
        if name in p.tables:
            if attribute == "StreamArn":
                return p.streams[name]
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{p.tables[name]}"
        if name in p.queues:
            url, arn = p.queues[name]
            return {"Arn": arn, "QueueUrl": url, "QueueName": arn.rsplit(":", 1)[-1]}[attribute]
        if name in p.topics:
            return {"TopicArn": p.topics[name], "TopicName": p.topics[name].rsplit(":", 1)[-1]}[attribute]
        raise KeyError(f"cannot resolve Fn::GetAtt {name}.{attribute} locally")

    def resolve(self, value: Any) -> str:
        if isinstance(value, str | int | float | bool):
            return str(value)
        if isinstance(value, dict) and "Ref" in value:
            return self.ref(value["Ref"])
        if isinstance(value, dict) and "Fn::If" in value:
            name, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(name) else when_false)
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            name, attribute = target if isinstance(target, list) else target.split(".", 1)
            return self.get_att(name, attribute)
        if isinstance(value, dict) and "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]

            def replace(match: re.Match[str]) -> str:
                token = match.group(1)
                return self.get_att(*token.split(".", 1)) if "." in token else self.ref(token)

            return re.sub(r"\$\{([^}!]+)\}", replace, text)
        raise ValueError(f"unsupported intrinsic in a function environment: {value!r}")


def matches_filter(pattern: Any, record: Any) -> bool:
    """Lambda event filtering for the pattern shapes the template uses (lists of allowed values
    and nested objects)."""
    if isinstance(pattern, dict):
        return isinstance(record, dict) and all(
            key in record and matches_filter(value, record[key]) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return any(record == option for option in pattern if not isinstance(option, dict))
    return bool(pattern == record)


InvocationLog = Callable[[str, str, float, str], None]

# A process has one environment: invocations of every Runner in it take turns.
_PROCESS_ENVIRONMENT = threading.RLock()
_clients_endpoint: list[str | None] = []


def _forget_clients_of_other_endpoints(endpoint: str | None) -> None:
    """Handlers cache boto3 clients for the life of a container. Two stacks in one process (the
    in-process moto tests and a loopback stack) are two different AWS endpoints, so cached clients
    of one must not serve the other: forget them when the endpoint changes."""
    if _clients_endpoint and _clients_endpoint[0] == endpoint:
        return
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    from leadscore import pipeline

    pipeline.reset()
    parameters.clear_caches()
    DEFAULT_PROVIDERS.clear()
    _clients_endpoint[:] = [endpoint]


def print_invocation(function: str, trigger: str, seconds: float, outcome: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"{stamp} {function:<28} {trigger:<34} {seconds * 1000:7.1f} ms  {outcome}", flush=True)


class Runner:
    """Invokes the template's functions with their own environment and plays their triggers."""

    def __init__(
        self,
        transformed: Mapping[str, Any],
        physical: Physical,
        session: Any,
        base_environment: Mapping[str, str],
        parameter_overrides: Mapping[str, str] | None = None,
        log: InvocationLog | None = print_invocation,
        handler_output: TextIO | None = None,
        on_invoked: Callable[[], None] | None = None,
    ) -> None:
        self.specs: dict[str, FunctionSpec] = function_specs(dict(transformed))
        self.physical = physical
        self._resolver = Resolver(transformed, physical, parameter_overrides)
        self._base_env = dict(base_environment)
        self._log = log
        self._handler_output = handler_output  # where handlers' print() goes (None: unchanged)
        self._on_invoked = on_invoked  # told after every invocation: whatever it wrote is there now
        self._pump_lock = threading.Lock()  # one poller at a time per mapping, as Lambda's pollers
        self._streams_client = session.client("dynamodbstreams")
        self._sqs = session.client("sqs")
        self._readers: dict[tuple[str, str], glue.StreamReader] = {}
        self.environments = {fid: self._environment(spec) for fid, spec in self.specs.items()}

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        env = {name: self._resolver.resolve(value) for name, value in spec.environment.items()}
        env["AWS_LAMBDA_FUNCTION_NAME"] = spec.logical_id
        env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = str(spec.timeout)
        return env

    # ------------------------------------------------------------------ invocation
    def invoke(self, function_id: str, event: dict[str, Any], trigger: str) -> Any:
        """Run the real handler with its template environment; one invocation at a time, since
        a process has one environment."""
        spec = self.specs[function_id]
        with _PROCESS_ENVIRONMENT:
            overrides = {**self._base_env, **self.environments[function_id]}
            saved = {name: os.environ.get(name) for name in overrides}
            os.environ.update(overrides)
            started = time.perf_counter()
            outcome = "ok"
            try:
                output = redirect_stdout(self._handler_output) if self._handler_output else nullcontext()
                with output:
                    _forget_clients_of_other_endpoints(os.environ.get("AWS_ENDPOINT_URL"))
                    handler = glue.load_handler(spec.code_dir, spec.handler)  # imported in its environment
                    context = glue.LambdaContext(function_name=function_id, timeout_seconds=spec.timeout)
                    result = handler(event, context)
                failures = glue.failed_item_ids(result)
                if failures:
                    outcome = f"partial failure ({len(failures)} of {len(event.get('Records', []))})"
                elif isinstance(result, dict) and "statusCode" in result:
                    outcome = f"HTTP {result['statusCode']}"
                return result
            except Exception as exc:
                outcome = f"error: {type(exc).__name__}: {exc}"
                raise
            finally:
                # Put back only what this call set: the environment is never empty for other threads.
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                if self._on_invoked:
                    self._on_invoked()
                if self._log:
                    self._log(function_id, trigger, time.perf_counter() - started, outcome)

    # ------------------------------------------------------------------ HTTP API
    def routes(self) -> list[tuple[HttpRoute, str]]:
        """Routes in the order an HTTP API matches them: the most specific path first, so a provider's
        own route (`/v1/forms/typeform`) wins over the `{provider}` catch-all, and on one path a
        route with the request's method before `ANY` (which serves only the methods left over)."""
        found = [(e, fid) for fid, s in self.specs.items() for e in s.events if isinstance(e, HttpRoute)]
        return sorted(found, key=lambda route: (route[0].path.count("{"), route[0].method == "ANY"))

    def handle_http(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        query: str = "",
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """Route a request like an HTTP API does and return (status, headers, body)."""
        for route, function_id in self.routes():
            params = _match_path(route.path, path)
            if params is None or route.method not in (method.upper(), "ANY"):
                continue
            if route.auth == "AWS_IAM" and not str(
                headers.get("authorization", headers.get("Authorization", ""))
            ).startswith("AWS4-HMAC-SHA256"):
                return (
                    403,
                    {"content-type": "application/json"},
                    b'{"message":"Forbidden: sign the request with SigV4"}',
                )
            route_key = f"{route.method} {route.path}"
            event = glue.http_api_event(method, path, route_key, params, headers, body, query, source_ip)
            try:
                result = self.invoke(function_id, event, f"http {route_key}")
            except Exception:
                return 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            return _http_result(result)
        return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'

    # ------------------------------------------------------------------ streams and queues
    def pump_streams(self) -> int:
        """Deliver new stream records to their functions, as event source mappings do. Returns the
        number of records delivered."""
        delivered = 0
        with self._pump_lock:
            for function_id, spec in self.specs.items():
                for source in spec.events:
                    if isinstance(source, DynamoDBStreamSource):
                        delivered += self._pump_stream(function_id, source)
        return delivered

    def _pump_stream(self, function_id: str, source: DynamoDBStreamSource) -> int:
        key = (function_id, source.table)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = glue.StreamReader(
                self._streams_client, self.physical.streams[source.table]
            )
        delivered = 0
        for records in reader.read(limit=source.batch_size):
            wanted = [
                r
                for r in records
                if not source.filter_patterns or any(matches_filter(p, r) for p in source.filter_patterns)
            ]
            if wanted:
                delivered += len(wanted)
                self._deliver_stream_batch(function_id, source, reader.stream_arn, wanted)
        return delivered

    def _deliver_stream_batch(
        self, function_id: str, source: DynamoDBStreamSource, arn: str, records: list[dict[str, Any]]
    ) -> None:
        """Invoke with retries: after a reported failure, Lambda retries from the first failed record
        (records before it are checkpointed); once retries are exhausted the batch goes to the
        on-failure destination."""
        attempts = 0
        limit = source.maximum_retry_attempts if source.maximum_retry_attempts is not None else 3
        pending = records
        while pending:
            try:
                failed = set(
                    glue.failed_item_ids(
                        self.invoke(
                            function_id, glue.dynamodb_stream_event(pending, arn), f"dynamodb {source.table}"
                        )
                    )
                )
            except Exception:
                failed = {pending[0]["dynamodb"].get("SequenceNumber", "")}
            if not failed:
                return
            first = next(
                (i for i, r in enumerate(pending) if r["dynamodb"].get("SequenceNumber") in failed), 0
            )
            pending = pending[first:]
            attempts += 1
            if attempts > limit:
                self._on_failure(source, arn, pending)
                return

    def _on_failure(self, source: DynamoDBStreamSource, arn: str, records: list[dict[str, Any]]) -> None:
        if source.on_failure and source.on_failure in self.physical.queues:
            url = self.physical.queues[source.on_failure][0]
            body = {
                "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": source.table},
                "DDBStreamBatchInfo": {
                    "streamArn": arn,
                    "startSequenceNumber": records[0]["dynamodb"].get("SequenceNumber"),
                    "endSequenceNumber": records[-1]["dynamodb"].get("SequenceNumber"),
                    "batchSize": len(records),
                },
            }
            self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    def pump_queues(self) -> int:
        """Poll each SQS event source once; delete what succeeded, leave failures for a retry
        (the queue's redrive policy moves them to its dead-letter queue)."""
        delivered = 0
        with self._pump_lock:
            for function_id, spec in self.specs.items():
                for source in spec.events:
                    if isinstance(source, SqsSource):
                        delivered += self._pump_queue(function_id, source)
        return delivered

    def _pump_queue(self, function_id: str, source: SqsSource) -> int:
        url, arn = self.physical.queues[source.queue]
        messages = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, source.batch_size),
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return 0
        try:
            failed = set(
                glue.failed_item_ids(
                    self.invoke(function_id, glue.sqs_event(messages, arn), f"sqs {source.queue}")
                )
            )
        except Exception:
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                self._sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def settle(self, max_rounds: int = 50) -> int:
        """Pump streams and queues until nothing moves (a change can trigger further changes)."""
        total = 0
        for _ in range(max_rounds):
            moved = self.pump_streams() + self.pump_queues()
            total += moved
            if moved == 0:
                break
        return total

    # ------------------------------------------------------------------ schedules
    def schedules(self) -> list[tuple[str, ScheduleSource]]:
        return [(fid, e) for fid, s in self.specs.items() for e in s.events if isinstance(e, ScheduleSource)]

    def schedule_expression(self, source: ScheduleSource) -> str:
        return self._resolver.resolve(source.expression)

    def parsed_schedule(self, source: ScheduleSource) -> schedule.Schedule:
        return schedule.parse(self.schedule_expression(source))

    def fire_schedule(self, function_id: str, at: datetime | None = None) -> Any:
        """Deliver the schedule's event as EventBridge does: `at` is the event time (the handler's
        "now"); a failed invocation is retried per the target's RetryPolicy, then the event goes
        to the target's dead-letter queue and the last error is raised."""
        source = next((e for fid, e in self.schedules() if fid == function_id), None)
        if source is None:
            known = ", ".join(sorted({fid for fid, _ in self.schedules()})) or "none"
            raise KeyError(f"{function_id} has no schedule in the template (scheduled functions: {known})")
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{source.rule}"
        event = glue.schedule_event(rule_arn, at)
        retries = int((source.retry_policy or {}).get("MaximumRetryAttempts", 185))
        attempt = 0
        while True:
            try:
                return self.invoke(function_id, event, f"schedule {source.rule}")
            except Exception:
                attempt += 1
                if attempt > min(retries, 3):  # locally a few retries show the behaviour
                    if source.dead_letter_queue and source.dead_letter_queue in self.physical.queues:
                        url = self.physical.queues[source.dead_letter_queue][0]
                        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
                    raise


def _match_path(template_path: str, path: str) -> dict[str, str] | None:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template_path))
    match = re.fullmatch(pattern, path)
    if match is None:
        return None
    from urllib.parse import unquote

    return {k: unquote(v) for k, v in match.groupdict().items()}


def _http_result(result: Any) -> tuple[int, dict[str, str], bytes]:
    import base64

    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    return int(result["statusCode"]), headers, raw
