"""The whole pipeline in-process: the template's resources in moto, the real handlers run by the
local runner with the template's environment, streams and queues pumped as Lambda would."""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore import clock, pipeline
from leadscore.local import emulator, signing
from leadscore.local.stack import Physical, Runner, provision

GENERIC_SECRET = "whsec_" + base64.b64encode(b"integration-generic-key-0123456789").decode()
TYPEFORM_SECRET = "tf-integration-secret"
HUBSPOT_CLIENT_SECRET = "hs-integration-client-secret"
HUBSPOT_PUBLIC_URL = "https://hooks.integration.example"
MAILCHIMP_KEY = "mc-integration-key-5e1d8a"
HTML_SITE, HTML_TOKEN = "www", "site-token-123"
MAILGUN_KEY = "integration-mailgun-signing-key"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-it", "integration-postmark-password"
SES_TOPIC = "arn:aws:sns:us-east-1:123456789012:it-ses-events"
# The tracking snippet's site: the local stack's (events/local/secrets.json), so events/track_*.json fit.
TRACK_SITE, TRACK_KEY = "www-leadscore", "tk_local_test_key"
TRACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*"]
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-it0123456789.pem"
_ids = itertools.count()


class Clock:
    """The pipeline's notion of "now", movable by tests (events and webhooks keep real time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        self.offset += delta
        return self.now()


@dataclass
class Stack:
    runner: Runner
    physical: Physical
    session: Any
    sendgrid_private_key: str
    clock: Clock

    # -- requests -----------------------------------------------------------------
    def post(
        self, path: str, body: bytes, headers: dict[str, str], query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        status, _, raw = self.runner.handle_http("POST", path, headers, body, query)
        return status, json.loads(raw or b"{}")

    def post_generic(
        self, payload: dict[str, Any], msg_id: str | None = None, **sign: Any
    ) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode()
        headers = signing.standard_webhook_headers(
            body, GENERIC_SECRET, msg_id or f"msg_{next(_ids)}", **sign
        )
        return self.post("/v1/forms/generic", body, headers)

    def post_sendgrid(self, events: list[dict[str, Any]], **sign: Any) -> tuple[int, dict[str, Any]]:
        body = json.dumps(events).encode()
        return self.post(
            "/v1/email-events/sendgrid",
            body,
            signing.sendgrid_headers(body, self.sendgrid_private_key, **sign),
        )

    # -- AWS side -------------------------------------------------------------------
    def settle(self) -> int:
        return self.runner.settle()

    def ledger_items(self) -> list[dict[str, Any]]:
        table = self.session.resource("dynamodb").Table(self.physical.tables["EventLedgerTable"])
        return list(table.scan()["Items"])

    def profile(self, lead_id: str) -> dict[str, Any] | None:
        table = self.session.resource("dynamodb").Table(self.physical.tables["LeadProfilesTable"])
        return table.get_item(Key={"lead_id": lead_id}).get("Item")

    def subscribe(self, topic_logical_id: str, filter_policy: dict[str, Any] | None = None) -> str:
        sqs, sns = self.session.client("sqs"), self.session.client("sns")
        url = sqs.create_queue(QueueName=f"watch-{topic_logical_id}-{next(_ids)}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"RawMessageDelivery": "true"}
        if filter_policy:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        sns.subscribe(
            TopicArn=self.physical.topics[topic_logical_id],
            Protocol="sqs",
            Endpoint=arn,
            Attributes=attributes,
        )
        return url

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@cache
def sns_identity() -> tuple[str, str]:
    """A TEST SNS signing identity (private key PEM, certificate PEM), pinned for SES_TOPIC."""
    return signing.new_sns_certificate()


@pytest.fixture
def stack(
    aws: None, transformed_template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    private_pem, public_b64 = signing.new_sendgrid_key()
    secret = {
        "generic": {"secret": GENERIC_SECRET},
        "html": {"sites": {HTML_SITE: HTML_TOKEN}},
        "typeform": {"secret": TYPEFORM_SECRET},
        "hubspot": {"client_secret": HUBSPOT_CLIENT_SECRET, "public_urls": [HUBSPOT_PUBLIC_URL]},
        "sendgrid": {"public_key": public_b64},
        "mailgun": {"signing_key": MAILGUN_KEY},
        "postmark": {"username": POSTMARK_USER, "password": POSTMARK_PASSWORD},
        "mailchimp": {"key": MAILCHIMP_KEY},
        "ses": {"topic_arns": [SES_TOPIC], "certificates": {SNS_CERT_URL: sns_identity()[1]}},
        "track": {"sites": {TRACK_SITE: {"key": TRACK_KEY, "origins": TRACK_ORIGINS}}},
    }
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "LeadScoreTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "leadscore")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # partition_queries: moto sorts the whole table on every Query; see its docstring.
    with emulator.atomic_requests(), emulator.partition_queries():
        session = boto3.Session(region_name="us-east-1")
        physical = provision(
            transformed_template, session, prefix="it-", secret_strings={"WebhookSecret": json.dumps(secret)}
        )
        runner = Runner(transformed_template, physical, session, base_environment={}, log=None)
        # A one-model deployment (ScoringModel=bundled:default): what most tests here describe.
        # Tests of catalogs and accounts deploy the shipped default catalog (or their own) instead.
        for environment in runner.environments.values():
            environment["SCORING_MODEL"] = "bundled:default"
        pipeline.reset()
        parameters.clear_caches()
        test_clock = Clock()
        monkeypatch.setattr(clock, "now", test_clock.now)
        yield Stack(
            runner=runner,
            physical=physical,
            session=session,
            sendgrid_private_key=private_pem,
            clock=test_clock,
        )
    pipeline.reset()
    parameters.clear_caches()


@pytest.fixture
def isolated() -> Iterator[None]:
    """The benchmark sets its own AWS environment and caches clients: give every later test back
    the process as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    pipeline.reset()
    parameters.clear_caches()
