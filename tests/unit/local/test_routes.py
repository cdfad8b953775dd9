"""The local runner matches HTTP routes as an HTTP API does: a provider's own route before the
`{provider}` catch-all, so the event carries the route key (and throttle bucket) AWS would use."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from leadscore.local.stack import Physical, Runner
from leadscore.local.template import resources_of_type

pytestmark = pytest.mark.unit


def _runner(transformed_template: dict[str, Any]) -> tuple[Runner, list[dict[str, Any]]]:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")

    # Stand-in physical names: nothing is created, routing never reaches AWS
    def ids(kind: str) -> list[str]:
        return list(resources_of_type(transformed_template, kind))

    physical = Physical(
        tables={t: f"local-{t}" for t in ids("AWS::DynamoDB::Table")},
        topics={t: f"arn:aws:sns:us-east-1:123456789012:{t}" for t in ids("AWS::SNS::Topic")},
        queues={
            q: (f"https://queue/{q}", f"arn:aws:sqs:us-east-1:123456789012:{q}")
            for q in ids("AWS::SQS::Queue")
        },
        secrets={
            s: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{s}"
            for s in ids("AWS::SecretsManager::Secret")
        },
    )
    runner = Runner(transformed_template, physical, session, {}, log=None)
    seen: list[dict[str, Any]] = []

    def record(function_id: str, event: dict[str, Any], trigger: str) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 202, "body": "{}"}

    runner.invoke = record  # type: ignore[method-assign]
    return runner, seen


@pytest.mark.parametrize(
    ("path", "route_key"),
    [
        ("/v1/forms/typeform", "POST /v1/forms/typeform"),
        ("/v1/forms/generic", "POST /v1/forms/generic"),
        ("/v1/email-events/sendgrid", "POST /v1/email-events/sendgrid"),
        ("/v1/forms/nobody-knows", "POST /v1/forms/{provider}"),
        ("/v1/email-events/mailgun", "POST /v1/email-events/mailgun"),
        ("/v1/email-events/elsewhere", "POST /v1/email-events/{provider}"),
    ],
)
def test_a_request_takes_the_most_specific_route(
    transformed_template: dict[str, Any], path: str, route_key: str
) -> None:
    # Given the local runner over the template's routes
    runner, seen = _runner(transformed_template)
    # When a webhook arrives
    status, _, _ = runner.handle_http("POST", path, {"content-type": "application/json"}, b"{}")
    # Then it is played through the route AWS would pick
    assert status == 202
    (event,) = seen
    assert event["routeKey"] == route_key
    assert event["rawPath"] == path


@pytest.mark.parametrize(
    ("method", "path", "route_key"),
    [
        ("POST", "/v1/forms/typeform", "POST /v1/forms/typeform"),
        ("GET", "/v1/forms/typeform", "ANY /v1/forms/typeform"),
        ("PUT", "/v1/forms/nobody-knows", "ANY /v1/forms/{provider}"),
        ("POST", "/v1/forms/nobody-knows", "POST /v1/forms/{provider}"),
        ("GET", "/v1/email-events/mailchimp", "GET /v1/email-events/mailchimp"),
        ("DELETE", "/v1/email-events/mailchimp", "ANY /v1/email-events/mailchimp"),
        ("DELETE", "/v1/leads/ld_1", "DELETE /v1/leads/{lead_id}"),
        ("POST", "/v1/leads/ld_1", "ANY /v1/leads/{lead_id}"),
    ],
)
@pytest.mark.parametrize("order", ["template", "reversed"])
def test_a_route_with_the_request_method_wins_over_any_on_the_same_path(
    transformed_template: dict[str, Any], method: str, path: str, route_key: str, order: str
) -> None:
    # Given the local runner, with the functions (and so their routes) in either order
    runner, seen = _runner(transformed_template)
    if order == "reversed":
        runner.specs = dict(reversed(runner.specs.items()))
    # When a request arrives (signed, for the lead API's IAM routes)
    runner.handle_http(method, path, {"authorization": "AWS4-HMAC-SHA256 Credential=x"}, b"{}")
    # Then it takes the route API Gateway would: its own method's, else the path's ANY
    (event,) = seen
    assert event["routeKey"] == route_key
