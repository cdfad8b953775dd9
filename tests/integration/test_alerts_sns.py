"""Stage changes are published with a body per protocol: email and SMS subscribers read an alert,
machines (sqs, lambda, http/https) keep the versioned JSON contract byte for byte. And the
emulator refuses what SNS refuses at publish, so these tests would catch a malformed structure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from leadscore import alerts
from leadscore.local import emulator
from leadscore.notifications import SCHEMA_PATH, SCHEMA_V2_PATH, StageChanged, StageChangedV2

from ..conftest import TEST_REGION, lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration
CONSOLE = "http://127.0.0.1:8421"


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def http_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sns", server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _queue(stack: Stack, raw: bool) -> str:
    sqs, sns = stack.session.client("sqs"), stack.session.client("sns")
    url = sqs.create_queue(QueueName=f"alerts-{'raw' if raw else 'envelope'}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.physical.topics["SalesTopic"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": str(raw).lower()},
    )
    return url


def _published(topic_arn: str) -> list[tuple[str, str | None]]:
    """(Message, Subject) of every publish to the topic, as moto received them."""
    from moto.sns.models import sns_backends

    topic = sns_backends["123456789012"][TEST_REGION].topics[topic_arn]
    return [(message, subject) for _, message, subject, *_ in topic.sent_notifications]


def _promote_to_sql(stack: Stack, email: str) -> None:
    stack.post_generic(
        {
            "email": email,
            "event": "demo_requested",
            "attributes": {
                "first_name": "Dana",
                "last_name": "Scully",
                "job_title": "VP Sales",
                "company": "Globex",
            },
        }
    )
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.example/pricing"})
    stack.settle()


def test_machines_get_the_contract_byte_for_byte_and_people_get_the_alert(
    stack: Stack, http_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    # Given: a raw SQS queue, an SQS queue with SNS envelopes and an HTTP endpoint on the sales
    # topic, and a console address for links
    raw, enveloped = _queue(stack, raw=True), _queue(stack, raw=False)
    url, posted = http_endpoint
    topic_arn = stack.physical.topics["SalesTopic"]
    stack.session.client("sns").subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=url)
    for environment in stack.runner.environments.values():
        environment["CONSOLE_URL"] = CONSOLE

    # When: a lead becomes SQL
    _promote_to_sql(stack, "dana@globex.example")

    # Then: one publish, a structure whose default is the contract
    ((structure_text, subject),) = _published(topic_arn)
    structure = json.loads(structure_text)
    contract = structure["default"]
    message = StageChanged.model_validate_json(contract)
    assert message.model_dump_json(by_alias=True) == contract
    jsonschema.validate(json.loads(contract), json.loads(Path(SCHEMA_PATH).read_text()))
    # sqs (raw and enveloped) and http receive exactly that body
    sqs = stack.session.client("sqs")
    raw_bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=raw, MaxNumberOfMessages=10)["Messages"]]
    envelopes = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=enveloped)["Messages"]]
    assert raw_bodies == [contract]
    assert [e["Message"] for e in envelopes] == [contract]
    assert [p["Message"] for p in posted] == [contract]
    # email, email-json and sms read the alert, with the lead's recent events and the link
    alert = alerts.build_alert(message, [], CONSOLE)
    assert structure["email"] == structure["email-json"]
    assert structure["email"].startswith(
        "Dana Scully is now SQL (was lead)\nVP Sales at Globex, dana@globex.example\n"
    )
    assert "demo requested" in structure["email"] and "https://globex.example/pricing" in structure["email"]
    assert f"Open the lead: {CONSOLE}/leads/{lead_id_for('dana@globex.example')}" in structure["email"]
    assert structure["sms"].startswith("SQL: Dana Scully, Globex, score") and len(structure["sms"]) <= 160
    assert subject == envelopes[0]["Subject"] == alerts.email_subject(alert)


def test_an_alert_sns_refuses_never_costs_machines_the_contract(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What people read is built from webhook data; if SNS refuses it (InvalidParameter: a subject
    it counts differently, say), the announcement machines depend on is still published."""
    raw = _queue(stack, raw=True)
    monkeypatch.setattr(alerts, "email_subject", lambda alert: "x" * 120)  # SNS: "less than 100"

    _promote_to_sql(stack, "dana@globex.example")

    bodies = [m["Body"] for m in stack.session.client("sqs").receive_message(QueueUrl=raw)["Messages"]]
    assert [StageChanged.model_validate_json(b).to_stage for b in bodies] == ["SQL"]


def test_a_catalog_deployment_keeps_contract_v2_for_machines(stack: Stack) -> None:
    raw = _queue(stack, raw=True)
    for environment in stack.runner.environments.values():
        environment["SCORING_MODEL"] = "bundled:catalog"

    _promote_to_sql(stack, "fox@globex.example")

    bodies = [
        m["Body"]
        for m in stack.session.client("sqs").receive_message(QueueUrl=raw, MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies
    for body in bodies:
        message = StageChangedV2.model_validate_json(body)
        assert message.model_dump_json(by_alias=True) == body
        jsonschema.validate(json.loads(body), json.loads(Path(SCHEMA_V2_PATH).read_text()))


def test_an_unreadable_ledger_costs_the_alert_its_events_never_the_announcement(stack: Stack) -> None:
    # Given: the announcing function cannot read the ledger (a missing table stands for any
    # refused or throttled read)
    raw = _queue(stack, raw=True)
    stack.runner.environments["EvaluateThresholdsFunction"]["LEDGER_TABLE"] = "no-such-table"

    _promote_to_sql(stack, "mulder@globex.example")

    # Then: the contract is published all the same; the email just has no recent activity
    bodies = [m["Body"] for m in stack.session.client("sqs").receive_message(QueueUrl=raw)["Messages"]]
    assert [StageChanged.model_validate_json(b).to_stage for b in bodies] == ["SQL"]
    ((structure, _),) = _published(stack.physical.topics["SalesTopic"])
    email = json.loads(structure)["email"]
    assert email.startswith("Dana Scully is now SQL") and "Recent activity" not in email


@pytest.fixture
def sales_topic(aws_env: None) -> Iterator[Any]:
    with mock_aws(), emulator.atomic_requests():
        sns = boto3.client("sns", region_name=TEST_REGION)
        yield sns, sns.create_topic(Name="alerts-limits")["TopicArn"]


@pytest.mark.parametrize(
    ("message", "subject", "refusal"),
    [
        (json.dumps({"email": "hi"}), None, "No default entry in JSON message body"),
        ("not json", None, "JSON message body failed to parse"),
        (json.dumps({"default": {"nested": 1}}), None, "JSON message body failed to parse"),
        (json.dumps({"default": "x"}), "two\nlines", "Subject"),
        (json.dumps({"default": "x"}), "s" * 100, "Subject"),
        (json.dumps({"default": "x"}), "\U0001f600" * 50, "Subject"),  # 100 UTF-16 units (Java's count)
        (
            json.dumps({"default": "\u00e9" * 131_073}, ensure_ascii=False),
            None,
            "Message too long",
        ),  # 262,146 bytes, 131k characters
    ],
    ids=[
        "no-default",
        "not-json",
        "not-strings",
        "subject-newline",
        "subject-100",
        "subject-100-utf16",
        "bytes-not-characters",
    ],
)
def test_emulator_refuses_the_publishes_sns_refuses(
    sales_topic: tuple[Any, str], message: str, subject: str | None, refusal: str
) -> None:
    sns, arn = sales_topic
    extra = {"Subject": subject} if subject is not None else {}

    with pytest.raises(ClientError) as error:
        sns.publish(TopicArn=arn, Message=message, MessageStructure="json", **extra)

    assert error.value.response["Error"]["Code"] == "InvalidParameter"
    assert refusal in error.value.response["Error"]["Message"]


def test_emulator_counts_message_attributes_in_the_256_kb(sales_topic: tuple[Any, str]) -> None:
    sns, arn = sales_topic
    body = "x" * (256 * 1024 - 100)

    sns.publish(TopicArn=arn, Message=body)  # fits alone
    with pytest.raises(ClientError, match="Message too long"):
        sns.publish(
            TopicArn=arn,
            Message=body,
            MessageAttributes={"a": {"DataType": "String", "StringValue": "y" * 200}},
        )
