"""The local stack over loopback: real HTTP requests to the webhooks and the lead API of a running
`LocalStack` (moto server + HTTP server on ephemeral ports), with the pipeline played by its
background poller. Assertions poll with a deadline; nothing sleeps and hopes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack, StackError, wait_until
from leadscore.local.template import load_template, resources_of_type, transform

from ...conftest import lead_id_for

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
WAIT = 30.0
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
SENDGRID_KEY = (repo_root() / "events/local/sendgrid-test-key.pem").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, watch=True, log=None, say=lambda line: None, emulator="process")
    with LocalStack(options) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[Client]:
    client = Client(local_stack.url)
    yield client
    client.close()
    local_stack.settle()  # leave nothing in flight for whatever test runs next in this process


def unique_email(domain: str = "globex.example") -> str:
    return f"t{uuid.uuid4().hex[:10]}@{domain}"


def post_generic(
    api: Client, payload: dict[str, Any], msg_id: str | None = None, **sign: Any
) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = signing.standard_webhook_headers(
        body, SECRETS["generic"]["secret"], msg_id or f"msg_{uuid.uuid4().hex}", **sign
    )
    return api.request("POST", "/v1/forms/generic", body, headers)


def lead_when(api: Client, email: str, ready: Any = bool) -> dict[str, Any] | None:
    """The lead (through the signed lead API) once `ready(lead)` holds, or None at the deadline."""

    def attempt() -> dict[str, Any] | None:
        status, lead = api.signed_get(f"/v1/leads?{urlencode({'email': email})}")
        return lead if status == 200 and ready(lead) else None

    result: dict[str, Any] | None = wait_until(attempt, WAIT)
    return result


def notifications_for(api: Client, topic: str, email: str) -> list[dict[str, Any]]:
    def attempt() -> list[dict[str, Any]]:
        status, messages = api.request("GET", f"/_local/topics/{topic}/messages")
        assert status == 200
        return [m for m in messages if isinstance(m["message"], dict) and m["message"].get("email") == email]

    found: list[dict[str, Any]] = wait_until(attempt, WAIT)
    return found


def assert_nothing_recorded(local_stack: LocalStack, api: Client, email: str) -> None:
    """Nothing in the ledger for that lead once everything in flight has been delivered."""
    assert local_stack.session is not None and local_stack.physical is not None
    local_stack.settle()
    ledger = local_stack.session.client("dynamodb")
    table = local_stack.physical.tables["EventLedgerTable"]
    found = ledger.query(
        TableName=table,
        KeyConditionExpression="lead_id = :lead",
        ExpressionAttributeValues={":lead": {"S": lead_id_for(email)}},
    )
    assert found["Count"] == 0
    status, _ = api.signed_get(f"/v1/leads?{urlencode({'email': email})}")
    assert status == 404


# ------------------------------------------------------------------------------------ resources
def test_the_stack_holds_exactly_the_templates_resources(local_stack: LocalStack) -> None:
    assert local_stack.session is not None
    template = local_stack.transformed
    tables = local_stack.session.client("dynamodb").list_tables()["TableNames"]
    topics = [
        t["TopicArn"].rsplit(":", 1)[-1] for t in local_stack.session.client("sns").list_topics()["Topics"]
    ]
    queues = [
        u.rsplit("/", 1)[-1] for u in local_stack.session.client("sqs").list_queues().get("QueueUrls", [])
    ]

    assert sorted(tables) == sorted(f"local-{t}" for t in resources_of_type(template, "AWS::DynamoDB::Table"))
    assert sorted(topics) == sorted(f"local-{t}" for t in resources_of_type(template, "AWS::SNS::Topic"))
    template_queues = {f"local-{q}" for q in resources_of_type(template, "AWS::SQS::Queue")}
    assert set(queues) - template_queues == set(local_stack.local_only)  # only the --watch queues
    assert template_queues <= set(queues)
    assert "DecayScoresFunctionTick" in local_stack.physical.not_created  # reported, not skipped


def test_provisioning_follows_a_changed_template() -> None:
    text = (
        (repo_root() / "template.yaml")
        .read_text(encoding="utf-8")
        .replace("EventLedgerTable", "LedgerV2Table")
    )
    # the resource (two spaces in), not the first "SalesTopic:" of the file (ChatAlertsFunction's event)
    text = text.replace(
        "\n  SalesTopic:\n", "\n  PartnerTopic:\n    Type: AWS::SNS::Topic\n\n  SalesTopic:\n", 1
    )
    changed = Path(f"/tmp/leadscore-template-{uuid.uuid4().hex}.yaml")
    changed.write_text(text, encoding="utf-8")
    try:
        options = LocalOptions(
            port=0,
            background=False,
            log=None,
            template=load_template(changed),
            say=lambda line: None,
            emulator="process",
        )
        with LocalStack(options) as stack:
            assert stack.session is not None and stack.runner is not None
            tables = stack.session.client("dynamodb").list_tables()["TableNames"]
            topics = [t["TopicArn"] for t in stack.session.client("sns").list_topics()["Topics"]]
            ledger_env = stack.runner.environments["IngestFormFunction"]["LEDGER_TABLE"]
    finally:
        changed.unlink()

    assert "local-LedgerV2Table" in tables and "local-EventLedgerTable" not in tables
    assert any(arn.endswith(":local-PartnerTopic") for arn in topics)
    assert ledger_env == "local-LedgerV2Table"
    assert set(transform(load_template(), region="us-east-1")["Resources"]) >= {"EventLedgerTable"}


def test_a_second_stack_on_a_busy_port_fails_clearly(local_stack: LocalStack) -> None:
    port = int(local_stack.url.rsplit(":", 1)[-1])

    with pytest.raises(StackError, match=f"port {port} .* already in use"):
        LocalStack(LocalOptions(port=port, log=None, emulator="process")).start()


# ------------------------------------------------------------------------------------ providers
def test_a_signed_generic_form_is_scored_promoted_and_announced_to_sales(api: Client) -> None:
    email = unique_email()
    payload = {
        "events": [
            {
                "email": email,
                "event": "demo_requested",
                "attributes": {
                    "job_title": "VP Sales",
                    "company_size": 800,
                    "industry": "Software",
                    "country": "US",
                },
            },
            {"email": email, "event": "page_viewed", "url": "https://www.leadscore.example/pricing"},
        ]
    }

    status, answer = post_generic(api, payload)
    lead = lead_when(api, email, lambda lead: lead["stage"] == "SQL")
    sales = notifications_for(api, "SalesTopic", email)

    assert status == 202 and answer["accepted"] == 2
    assert lead is not None, "the lead never reached SQL"
    assert lead["total"] >= 70 and lead["grade"] == "A"
    assert [c["points"] for c in lead["contributions"]] == sorted(
        (c["points"] for c in lead["contributions"]), key=abs, reverse=True
    )
    assert {e["event_type"] for e in lead["recent_events"]} == {"demo_requested", "page_viewed"}
    assert [n["message"]["to_stage"] for n in sales] == ["SQL"]
    assert sales[0]["attributes"]["stage"] == "SQL"


def test_a_redelivered_generic_webhook_counts_once(api: Client) -> None:
    email = unique_email()
    payload = {"email": email, "event": "content_downloaded"}

    first = post_generic(api, payload, msg_id="msg_redelivered_" + email)
    second = post_generic(api, payload, msg_id="msg_redelivered_" + email)
    lead = lead_when(api, email)

    assert first[1]["accepted"] == 1 and second[1]["duplicates"] == 1
    assert lead is not None and len(lead["recent_events"]) == 1


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_an_html_form_post_creates_the_lead(api: Client, encoding: str) -> None:
    email = unique_email("initech.example")
    fields = {
        "_site": "www-leadscore",
        "_token": "st_local_test_token",
        "_event": "contact sales",
        "email": email,
        "first_name": "Bob",
        "job_title": "Head of Marketing",
        "company": "Initech",
        "employees": "51-200",
        "website_url": "",
    }
    if encoding == "urlencoded":
        body, content_type = urlencode(fields).encode(), "application/x-www-form-urlencoded"
    else:
        boundary = "----leadscoreTestBoundary"
        body = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ).encode()
        body += f"--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"

    status, answer = api.request("POST", "/v1/forms/html", body, {"content-type": content_type})
    lead = lead_when(api, email)

    assert status == 202 and answer["accepted"] == 1
    assert lead is not None
    assert lead["attributes"]["job_title"] == "Head of Marketing" and lead["attributes"]["company_size"] == 51
    assert lead["recent_events"][0]["event_type"] == "contact_requested"


def test_a_typeform_response_is_recorded_as_a_demo_request(api: Client) -> None:
    email = unique_email("fabrikam.example")
    payload = json.loads(
        (repo_root() / "events/providers/typeform/form_response.json").read_text(encoding="utf-8")
    )
    payload["form_response"]["token"] = uuid.uuid4().hex
    for answer in payload["form_response"]["answers"]:
        if answer["type"] == "email":
            answer["email"] = email
    body = json.dumps(payload).encode()

    status, result = api.request(
        "POST", "/v1/forms/typeform", body, signing.typeform_headers(body, SECRETS["typeform"]["secret"])
    )
    lead = lead_when(api, email)

    assert status == 202 and result["accepted"] == 1
    assert lead is not None and lead["recent_events"][0]["event_type"] == "demo_requested"


def test_a_signed_sendgrid_batch_records_engagement_and_skips_machine_opens(api: Client) -> None:
    email = unique_email("contoso.example")
    now = int(time.time())
    events = [
        {"email": email, "timestamp": now - 300, "event": "delivered", "sg_event_id": uuid.uuid4().hex},
        {
            "email": email,
            "timestamp": now - 200,
            "event": "open",
            "sg_machine_open": True,
            "sg_event_id": uuid.uuid4().hex,
        },
        {
            "email": email,
            "timestamp": now - 100,
            "event": "open",
            "sg_machine_open": False,
            "sg_event_id": uuid.uuid4().hex,
        },
        {
            "email": email,
            "timestamp": now - 50,
            "event": "click",
            "url": "https://www.leadscore.example/pricing",
            "sg_event_id": uuid.uuid4().hex,
        },
    ]
    body = json.dumps(events).encode()

    status, answer = api.request(
        "POST", "/v1/email-events/sendgrid", body, signing.sendgrid_headers(body, SENDGRID_KEY)
    )
    lead = lead_when(api, email, lambda lead: len(lead["recent_events"]) == 3)

    assert status == 202 and answer["accepted"] == 3
    assert lead is not None
    assert {e["event_type"] for e in lead["recent_events"]} == {
        "email_delivered",
        "email_opened",
        "email_clicked",
    }
    assert any(c["rule_id"] == "pricing_page" for c in lead["contributions"])


def test_ses_events_published_to_the_ses_topic_reach_the_lead(local_stack: LocalStack, api: Client) -> None:
    assert local_stack.session is not None
    email = unique_email("umbrella.example")
    envelope = json.loads(
        (repo_root() / "events/providers/ses/click_sns_envelope.json").read_text(encoding="utf-8")
    )
    record = json.loads(envelope["Message"])
    record["mail"]["destination"] = [email]
    record["mail"]["messageId"] = f"0100018e{uuid.uuid4().hex}-000000"

    local_stack.session.client("sns").publish(
        TopicArn=local_stack.physical.topics["SesEventsTopic"], Message=json.dumps(record)
    )
    lead = lead_when(api, email)

    assert lead is not None
    assert (
        lead["recent_events"][0]["event_type"] == "email_clicked"
        and lead["recent_events"][0]["provider"] == "ses"
    )


# ------------------------------------------------------------------------------------ hostile
def _oversized(email: str) -> dict[str, Any]:
    return {"email": email, "attributes": {"notes": "x" * 1_100_000}}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad_signature", 401),
        ("stale_timestamp", 401),
        ("truncated_json", 400),
        ("wrong_content_type", 415),
        ("oversized_body", 413),
        ("unknown_provider", 404),
    ],
)
def test_hostile_generic_requests_are_refused_and_record_nothing(
    local_stack: LocalStack, api: Client, case: str, expected: int
) -> None:
    email = unique_email("intruder.example")
    body = json.dumps(
        _oversized(email) if case == "oversized_body" else {"email": email, "event": "demo_requested"}
    ).encode()
    secret, timestamp, path = SECRETS["generic"]["secret"], None, "/v1/forms/generic"
    if case == "bad_signature":
        secret = "whsec_bm90LXRoZS1yZWFsLWtleQ=="
    elif case == "stale_timestamp":
        timestamp = int(time.time()) - 3600
    elif case == "truncated_json":
        body = body[:-7]
    elif case == "unknown_provider":
        path = "/v1/forms/nosuch"
    headers = signing.standard_webhook_headers(body, secret, "msg_" + uuid.uuid4().hex, timestamp)
    if case == "wrong_content_type":
        headers["content-type"] = "text/plain"

    status, answer = api.request("POST", path, body, headers)

    assert status == expected, answer
    assert "Traceback" not in json.dumps(answer)
    assert_nothing_recorded(local_stack, api, email)


def _raw_exchange(local_stack: LocalStack, path: str, headers: str, body: bytes) -> bytes:
    """Send one hand-framed request (what a client library would refuse to send); the raw answer."""
    host, port = urlsplit(local_stack.url).hostname, urlsplit(local_stack.url).port
    assert host and port
    request = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode() + body
    with socket.create_connection((host, port), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("framing", "problem"),
    [
        ("Content-Length: twelve", "invalid Content-Length 'twelve'"),
        ("Content-Length: -5", "invalid Content-Length '-5'"),
        ("Transfer-Encoding: chunked", "invalid chunk size b'zz'"),
    ],
)
def test_broken_http_framing_gets_a_400(local_stack: LocalStack, framing: str, problem: str) -> None:
    body = b"zz\r\n{}\r\n0\r\n\r\n" if "chunked" in framing else b'{"email": "a@b.example"}'
    answer = _raw_exchange(
        local_stack, "/v1/forms/generic", f"Content-Type: application/json\r\n{framing}\r\n", body
    )
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") or head.startswith(b"HTTP/1.0 400"), head
    assert problem in json.loads(payload)["message"]


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode"])
def test_a_content_type_the_header_parser_chokes_on_gets_a_400(local_stack: LocalStack, charset: str) -> None:
    body = b'--abc\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.example\r\n--abc--\r\n'
    headers = (
        f"Content-Type: multipart/form-data; boundary*={charset}''abc\r\nContent-Length: {len(body)}\r\n"
    )

    answer = _raw_exchange(local_stack, "/v1/forms/html", headers, body)

    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]


def test_a_filled_honeypot_is_acknowledged_but_records_nothing(local_stack: LocalStack, api: Client) -> None:
    email = unique_email("bots.example")
    fields = {
        "_site": "www-leadscore",
        "_token": "st_local_test_token",
        "email": email,
        "website_url": "http://spam.example",
    }

    status, answer = api.request(
        "POST",
        "/v1/forms/html",
        urlencode(fields).encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )

    assert 200 <= status < 300 and answer["accepted"] == 0
    assert_nothing_recorded(local_stack, api, email)


def test_a_sendgrid_batch_signed_with_another_key_is_refused(local_stack: LocalStack, api: Client) -> None:
    email = unique_email("intruder.example")
    body = json.dumps(
        [{"email": email, "timestamp": int(time.time()), "event": "click", "sg_event_id": "x1"}]
    ).encode()
    other_key, _ = signing.new_sendgrid_key()

    status, _ = api.request(
        "POST", "/v1/email-events/sendgrid", body, signing.sendgrid_headers(body, other_key)
    )

    assert status == 401
    assert_nothing_recorded(local_stack, api, email)


# ------------------------------------------------------------------------------------ lead API
def test_lead_api_ranks_a_stage_and_pages_with_the_cursor(api: Client) -> None:
    emails = [unique_email("wideworld.example") for _ in range(3)]
    for email in emails:
        post_generic(api, {"email": email, "event": "form_submitted"})
    for email in emails:
        assert lead_when(api, email) is not None

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {"stage": "lead", "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = api.signed_get(f"/v1/leads?{urlencode(query)}")
        assert status == 200 and len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break

    ids = [lead["lead_id"] for lead in seen]
    assert len(ids) == len(set(ids))
    assert {lead_id_for(e) for e in emails} <= set(ids)
    scores = [lead["ranked_score"] for lead in seen]
    assert scores == sorted(scores, reverse=True)


def test_lead_api_detail_by_id_matches_the_lookup_by_email(api: Client) -> None:
    email = unique_email()
    post_generic(api, {"email": email, "event": "webinar_registered", "attributes": {"job_title": "CTO"}})
    by_email = lead_when(api, email)

    status, by_id = api.signed_get(f"/v1/leads/{lead_id_for(email)}")

    assert by_email is not None and status == 200
    assert by_id["lead_id"] == by_email["lead_id"] == lead_id_for(email)
    assert by_id["attributes"]["job_title"] == "CTO" and by_id["stage"] == by_email["stage"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/leads?stage=SQL&limit=0", 400),
        ("/v1/leads?stage=SQL&limit=101", 400),
        ("/v1/leads?stage=SQL&cursor=bm90LWEtY3Vyc29y", 400),
        ("/v1/leads?stage=Customer", 400),
        ("/v1/leads?stage=SQL&email=a@b.example", 400),
        ("/v1/leads", 400),
        ("/v1/leads/not-a-lead-id", 400),
        ("/v1/leads/ld_000000000000000000000000", 404),
        ("/v1/leads?email=nobody-here@nowhere.example", 404),
    ],
)
def test_lead_api_answers_clear_errors(api: Client, path: str, expected: int) -> None:
    status, answer = api.signed_get(path)

    assert status == expected, answer
    assert answer["error"] and answer["message"]


def test_lead_api_without_sigv4_is_forbidden(api: Client) -> None:
    status, _ = api.request("GET", "/v1/leads?stage=SQL")

    assert status == 403


# ------------------------------------------------------------------------------ wrong methods
def _exchange(local_stack: LocalStack, method: str, path: str, sign: bool = False) -> tuple[int, str, dict]:
    """(status, Allow header, JSON body) of one request, signed with SigV4 when `sign`."""
    import http.client

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers: dict[str, str] = {}
    if sign:
        request = AWSRequest(method=method, url=f"{local_stack.url}{path}")
        SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    parts = urlsplit(local_stack.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Allow", ""), json.loads(response.read() or b"null")
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path", "sign", "allow"),
    [
        ("GET", "/v1/forms/generic", False, "POST"),
        ("PUT", "/v1/forms/somebody-else", False, "POST"),
        ("DELETE", "/v1/email-events/mailchimp", False, "GET, POST"),
        ("POST", "/v1/leads/ld_000000000000000000000000", True, "DELETE, GET"),
        ("POST", "/v1/accounts", True, "GET"),
    ],
)
def test_a_method_a_path_does_not_serve_gets_405_with_allow(
    local_stack: LocalStack, method: str, path: str, sign: bool, allow: str
) -> None:
    status, allowed, answer = _exchange(local_stack, method, path, sign)

    assert (status, allowed) == (405, allow), answer
    assert answer["error"] == "method_not_allowed" and allow in answer["message"]


def test_the_lead_api_asks_for_a_signature_before_it_says_which_methods_it_serves(
    local_stack: LocalStack,
) -> None:
    assert _exchange(local_stack, "POST", "/v1/leads/ld_000000000000000000000000")[0] == 403
    assert _exchange(local_stack, "GET", "/v1/nowhere")[0] == 404  # no path: still not found


# ------------------------------------------------------------------------------------ schedules
def test_a_schedule_fires_now_on_request(api: Client) -> None:
    status, answer = api.request("POST", "/_local/schedules/DecayScoresFunction")
    missing, _ = api.request("POST", "/_local/schedules/IngestFormFunction")

    assert status == 200 and answer["result"]["finished"] is True
    assert missing == 404


# ------------------------------------------------------------------------------------ demo
@pytest.mark.slow
def test_the_demo_runs_to_the_end(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    result = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", "demo", "--leads", "40", "--top", "5", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root(),
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All checks passed." in result.stdout
    assert "Notifications received by the sample subscribers" in result.stdout
    # and it ends with the console command for what it replayed, its tables saved for it
    assert result.stdout.rstrip().endswith(f".venv/bin/leadscore console --demo {state}")
    assert state.is_file()
