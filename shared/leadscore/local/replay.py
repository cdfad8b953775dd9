"""`leadscore demo`: start a local stack in-process, replay the demo scenario through the real
webhooks over loopback HTTP with real signatures, and show what the product made of it.

The pipeline runs on the scenario's simulated clock (`leadscore.clock.now` is moved day by day), so
recency matters: a demo request from seven weeks ago is worth less than one from yesterday, and the
weekly decay run (fired with the simulated time as its event time) demotes leads that went quiet.
Webhook signatures use the real time, as providers sign at delivery.
"""

from __future__ import annotations

import http.client
import json
import shlex
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from leadscore import clock
from leadscore.console import snapshot
from leadscore.domain import TRACK_EVENT_TYPES, EventType
from leadscore.local import demo, signing
from leadscore.local.glue import repo_root
from leadscore.local.server import DEFAULT_SECRETS, LocalOptions, LocalStack, StackError
from leadscore.local.stack import REGION, print_invocation
from leadscore.local.template import queue_specs, subscription_specs
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import AggregateRule, EventRule

SENDGRID_KEY = Path("events/local/sendgrid-test-key.pem")
STAGE_CHANGES = ["leadscore.stage_changed"]  # the topics also carry outcomes (leadscore.lead_outcome)
NURTURE_FILTER = {"schema": STAGE_CHANGES, "stage": ["MQL"], "direction": ["promotion"]}
SALES_FILTER = {"schema": STAGE_CHANGES, "stage": ["SQL", "expansion_SQL"]}
DECAY_EVERY_DAYS = 14
# What only the website reports (a page view may also come from a backend or an email click).
TRACKED_ONLY = TRACK_EVENT_TYPES - {EventType.PAGE_VIEWED}
# What each hostile request must get: (status, error code in the answer).
EXPECTED_REFUSAL: dict[str, tuple[int, str | None]] = {
    "bad_signature": (401, "invalid_signature"),
    "stale_timestamp": (401, "stale_timestamp"),
    "truncated_json": (400, "malformed_payload"),
    "oversized_body": (413, "payload_too_large"),
    "wrong_content_type": (415, "unsupported_media_type"),
    "unknown_provider": (404, "unknown_provider"),
    "honeypot": (202, None),  # accepted on purpose so bots learn nothing; nothing is recorded
    "bad_site_token": (401, "invalid_signature"),
    "sendgrid_bad_signature": (401, "invalid_signature"),
    "typeform_bad_signature": (401, "invalid_signature"),
    "forged_unsubscribe": (400, "event_type_not_allowed"),  # a public form cannot suppress anyone
    "unsigned_lead_api": (403, None),
}


@dataclass
class DemoOptions:
    leads: int = 200
    seed: int = 7
    days: int = 60
    top: int = 15
    verbose: bool = False
    out: Callable[[str], None] = print
    state: Path | None = None  # where the console's `--demo` finds the tables (default build/demo/state.json)


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    ses_published: int = 0
    ses_redeliveries: int = 0
    decay_runs: int = 0
    transitions_by_decay: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(message)


class Client:
    """A keep-alive HTTP/1.1 client for the local stack."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._connection = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body or None, headers=headers or {})
                response = self._connection.getresponse()
                raw = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self._reconnect()
                break
            except (ConnectionError, http.client.HTTPException):
                self._reconnect()
                if attempt == 2:
                    raise
        try:
            return response.status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return response.status, raw.decode(errors="replace")

    def _reconnect(self) -> None:
        self._connection.close()
        self._connection = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def signed_get(self, path: str) -> tuple[int, Any]:
        """GET with a real SigV4 Authorization header (fake credentials: the local stack only checks
        that the request is signed, as API Gateway's IAM authorizer would check the signature)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method="GET", url=f"http://{self.host}:{self.port}{path}")
        SigV4Auth(Credentials("testing", "testing"), "execute-api", REGION).add_auth(request)
        return self.request("GET", path, headers=dict(request.headers.items()))

    def close(self) -> None:
        self._connection.close()


@contextmanager
def simulated_clock() -> Iterator[Callable[[datetime | None], None]]:
    """Move the pipeline's "now" (`leadscore.clock.now`); None goes back to the real time."""
    real = clock.now
    current: list[datetime | None] = [None]

    def now() -> datetime:
        return current[0] or real()

    def set_to(moment: datetime | None) -> None:
        current[0] = moment

    clock.now = now
    try:
        yield set_to
    finally:
        clock.now = real


def ses_topic(stack: LocalStack) -> str:
    """The topic SES publishes to: the template's topic whose subscription feeds a function's queue."""
    assert stack.runner is not None
    consumed = {e.queue for spec in stack.runner.specs.values() for e in spec.events if e.kind == "sqs"}
    for subscription in subscription_specs(stack.transformed).values():
        if subscription.endpoint in consumed and subscription.topic:
            return subscription.topic
    raise StackError("the template has no SNS topic feeding a function's queue (SES events)")


class Replayer:
    def __init__(self, stack: LocalStack, scenario: demo.Scenario, tally: Tally) -> None:
        self.stack = stack
        self.scenario = scenario
        self.tally = tally
        self.client = Client(stack.url)
        secrets = json.loads(
            (stack.options.secrets_path or repo_root() / DEFAULT_SECRETS).read_text(encoding="utf-8")
        )
        self.generic_secret = secrets["generic"]["secret"]
        self.typeform_secret = secrets["typeform"]["secret"]
        self.sendgrid_key = (repo_root() / SENDGRID_KEY).read_text(encoding="utf-8")
        assert stack.session is not None
        self.sns = stack.session.client("sns")
        self.ses_topic_arn = stack.physical.topics[ses_topic(stack)]
        self.hostile_emails: list[str] = []

    # --------------------------------------------------------------------------------- sending
    def post(self, path: str, body: bytes, headers: dict[str, str], label: str) -> tuple[int, Any]:
        self.tally.requests[label] += 1
        return self.client.request("POST", path, body, headers)

    def expect_accepted(self, status: int, answer: Any, label: str, duplicate: bool) -> None:
        if not 200 <= status < 300 or not isinstance(answer, dict):
            self.tally.fail(f"{label}: expected 2xx, got {status} {answer}")
            return
        self.tally.accepted += int(answer.get("accepted", 0))
        self.tally.duplicates += int(answer.get("duplicates", 0))
        if duplicate and answer.get("accepted", 0):
            self.tally.fail(f"{label}: a re-delivery was accepted again ({answer})")

    def send(self, step: demo.Step) -> None:
        if step.kind == "generic":
            body = json.dumps(step.payload).encode()
            headers = signing.standard_webhook_headers(body, self.generic_secret, step.key)
            self.expect_accepted(
                *self.post("/v1/forms/generic", body, headers, "generic"), "generic", step.duplicate
            )
        elif step.kind == "typeform":
            body = json.dumps(step.payload).encode()
            headers = signing.typeform_headers(body, self.typeform_secret)
            self.expect_accepted(
                *self.post("/v1/forms/typeform", body, headers, "typeform"), "typeform", step.duplicate
            )
        elif step.kind == "html":
            if step.key == "multipart":
                boundary = "----leadscoreDemoBoundary7MA4YWxk"
                body, content_type = (
                    demo.multipart(step.payload, boundary),
                    f"multipart/form-data; boundary={boundary}",
                )
            else:
                body, content_type = demo.urlencoded(step.payload), "application/x-www-form-urlencoded"
            headers = {"content-type": content_type, "referer": f"{demo.SITE}/contact"}
            self.expect_accepted(
                *self.post("/v1/forms/html", body, headers, f"html ({step.key})"), "html", step.duplicate
            )
        elif step.kind == "sendgrid":
            body = json.dumps(step.payload).encode()
            headers = signing.sendgrid_headers(body, self.sendgrid_key)
            self.expect_accepted(
                *self.post("/v1/email-events/sendgrid", body, headers, "sendgrid batch"),
                "sendgrid",
                step.duplicate,
            )
        elif step.kind == "ses":
            self.sns.publish(TopicArn=self.ses_topic_arn, Message=json.dumps(step.payload))
            self.tally.ses_published += 1
            self.tally.ses_redeliveries += step.duplicate
        else:
            self.hostile(step.key, step.payload)

    def hostile(self, kind: str, payload: dict[str, Any]) -> None:
        self.hostile_emails.append(str(payload["email"]))
        body = json.dumps(payload).encode()
        path = "/v1/forms/generic"
        headers = signing.standard_webhook_headers(
            body, self.generic_secret, f"msg_hostile_{kind}_{len(self.hostile_emails)}"
        )
        if kind == "bad_signature":
            headers = signing.standard_webhook_headers(
                body, "whsec_" + "bm90LXRoZS1yZWFsLWtleQ==", headers["webhook-id"]
            )
        elif kind == "stale_timestamp":
            headers = signing.standard_webhook_headers(
                body, self.generic_secret, headers["webhook-id"], int(time.time()) - 3600
            )
        elif kind == "truncated_json":
            body = body[: len(body) // 2]
            headers = signing.standard_webhook_headers(body, self.generic_secret, headers["webhook-id"])
        elif kind == "oversized_body":
            body = json.dumps({**payload, "attributes": {"notes": "x" * 1_100_000}}).encode()
            headers = signing.standard_webhook_headers(body, self.generic_secret, headers["webhook-id"])
        elif kind == "wrong_content_type":
            headers["content-type"] = "text/plain"
        elif kind == "unknown_provider":
            path = "/v1/forms/nosuch"
        elif kind in ("honeypot", "bad_site_token", "forged_unsubscribe"):
            path = "/v1/forms/html"
            fields = {
                "_site": demo.HTML_SITE_ID,
                "_token": "st_local_test_token",
                "email": payload["email"],
                "first_name": "Bot",
            }
            if kind == "honeypot":
                fields["website_url"] = "http://cheap-pills.example"
            elif kind == "forged_unsubscribe":
                fields["_event"] = "email_unsubscribed"
            else:
                fields["_token"] = "guessed-token"
            body, headers = urlencode(fields).encode(), {"content-type": "application/x-www-form-urlencoded"}
        elif kind == "sendgrid_bad_signature":
            path = "/v1/email-events/sendgrid"
            body = json.dumps(
                [
                    {
                        "email": payload["email"],
                        "event": "click",
                        "timestamp": int(time.time()),
                        "url": f"{demo.SITE}/pricing",
                    }
                ]
            ).encode()
            other_key, _ = signing.new_sendgrid_key()
            headers = signing.sendgrid_headers(body, other_key)
        elif kind == "typeform_bad_signature":
            path = "/v1/forms/typeform"
            headers = signing.typeform_headers(body, "not-the-typeform-secret")
        status, answer = self.post(path, body, headers, "hostile")
        self.check_refusal(kind, status, answer)

    def check_refusal(self, kind: str, status: int, answer: Any) -> None:
        expected_status, expected_code = EXPECTED_REFUSAL[kind]
        code = answer.get("error") if isinstance(answer, dict) else None
        if kind == "honeypot":
            if not (200 <= status < 300 and isinstance(answer, dict) and answer.get("accepted") == 0):
                self.tally.fail(f"honeypot: expected a 2xx that records nothing, got {status} {answer}")
            self.tally.refused["honeypot (2xx on purpose, nothing recorded)"] += 1
            return
        if not 400 <= status < 500 or status != expected_status or (expected_code and code != expected_code):
            self.tally.fail(
                f"hostile {kind}: expected {expected_status} {expected_code or ''}, got {status} {answer}"
            )
        self.tally.refused[f"{status} {code or kind}"] += 1

    # --------------------------------------------------------------------------------- decay
    def fire_decay(self, at: datetime) -> None:
        assert self.stack.runner is not None
        for function_id, _ in self.stack.runner.schedules():
            status, answer = self.client.request(
                "POST", f"/_local/schedules/{function_id}?{urlencode({'at': at.isoformat()})}"
            )
            if status != 200:
                self.tally.fail(f"schedule {function_id} at {at:%Y-%m-%d}: {status} {answer}")
                continue
            self.tally.decay_runs += 1
            result = (answer or {}).get("result") or {}
            self.tally.transitions_by_decay += (
                int(result.get("transitions", 0)) if isinstance(result, dict) else 0
            )


# ------------------------------------------------------------------------------------ reporting
def _reasons(lead: dict[str, Any], count: int = 3) -> str:
    parts = [c for c in lead.get("contributions", []) if c.get("category") and abs(c["points"]) >= 0.5][
        :count
    ]
    return ", ".join(f"{c['label'].split(':')[0]} {c['points']:+.0f}" for c in parts)


def ranked_leads(
    client: Client, stage: str, page_size: int, tally: Tally, model: str | None = None
) -> list[dict[str, Any]]:
    """Every lead of a stage (of one model of the catalog) through the lead API, following the
    cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"stage": stage, "limit": str(page_size), **({"cursor": cursor} if cursor else {})}
        if model is not None:
            query["model"] = model
        status, page = client.signed_get(f"/v1/leads?{urlencode(query)}")
        if status != 200:
            tally.fail(f"lead API ranking of {stage}: {status} {page}")
            return found
        found.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _table(leads: list[dict[str, Any]], top: int) -> list[str]:
    lines = [
        f"{'#':>3}  {'score':>5} {'fit':>5} {'eng':>5} {'neg':>5}  grade  "
        f"{'stage':<5}  {'email':<44} top reasons"
    ]
    for rank, lead in enumerate(leads[:top], start=1):
        lines.append(
            f"{rank:>3}  {lead['total']:>5.1f} {lead['fit']:>5.1f} "
            f"{lead['engagement']:>5.1f} {lead['negative']:>5.1f}  "
            f"{lead['grade']:^5}  {lead['stage']:<5}  {lead['email']:<44} {_reasons(lead)}"
        )
    return lines


def _transition(lead: dict[str, Any]) -> str:
    last = lead.get("last_transition")
    return f"{last['from_stage']} -> {last['to_stage']}" if last else "none"


def _notification_line(message: dict[str, Any]) -> str:
    score = message.get("score") or {}
    reasons = ", ".join(
        f"{r['label'].split(':')[0]} {r['points']:+.1f}"
        for r in message.get("top_reasons", [])
        if ":" not in r["rule_id"]
    )
    return (
        f"    {message.get('occurred_at', '')[:10]}  "
        f"{message.get('from_stage')} -> {message.get('to_stage'):<4} "
        f"{message.get('email'):<44} score {score.get('total'):>5} grade {score.get('grade')}  ({reasons})"
    )


# ------------------------------------------------------------------------------------ the demo
def run_demo(options: DemoOptions) -> int:
    out = options.out
    warnings.filterwarnings("ignore", category=UserWarning, module="aws_lambda_powertools.*")
    began = time.perf_counter()
    local = LocalOptions(port=0, background=False, log=print_invocation if options.verbose else None, say=out)
    tally = Tally()
    with LocalStack(local) as stack:
        started = time.perf_counter() - began
        scenario = demo.build(seed=options.seed, leads=options.leads, days=options.days)
        out(
            f"leadscore demo: {len(scenario.leads)} leads, {options.days} simulated days "
            f"({scenario.start:%Y-%m-%d} -> {scenario.now:%Y-%m-%d}), seed {options.seed}"
        )
        out(f"  local stack {stack.url} (AWS emulator {stack.endpoint_url}) up in {started:.1f} s")
        nurture_url, _ = stack.subscribe_queue(
            _topic_for(stack, "nurture"), "demo-nurture-tool", NURTURE_FILTER
        )
        sales_url, _ = stack.subscribe_queue(_topic_for(stack, "sales"), "demo-sales-alerts", SALES_FILTER)
        audit_url = _subscribe_audit(stack)
        out(
            f"  sample subscribers: demo-nurture-tool {json.dumps(NURTURE_FILTER)}, "
            f"demo-sales-alerts {json.dumps(SALES_FILTER)}"
        )
        replayer = Replayer(stack, scenario, tally)
        replay_began = time.perf_counter()
        with simulated_clock() as set_clock:
            for day_number, (day_end, steps) in enumerate(scenario.days(), start=1):
                set_clock(day_end)
                for step in steps:
                    replayer.send(step)
                if steps:
                    stack.settle()
                if day_number % DECAY_EVERY_DAYS == 0:
                    replayer.fire_decay(day_end)
                    stack.settle()
                if day_number % 10 == 0:
                    out(
                        f"  simulated day {day_number:>3}: {sum(tally.requests.values())} requests, "
                        f"{tally.ses_published} SES messages"
                    )
            set_clock(None)
        replayer.fire_decay(datetime.now(UTC))
        stack.settle()
        replay_seconds = time.perf_counter() - replay_began
        status, _ = replayer.client.request("GET", "/v1/leads?stage=SQL")
        replayer.check_refusal("unsigned_lead_api", status, None)
        _report(stack, replayer, tally, nurture_url, sales_url, options, audit_url)
        replayer.client.close()
        saved = snapshot.save(stack, options.state or snapshot.default_path())
    total = time.perf_counter() - began
    out(f"\nReplay took {replay_seconds:.1f} s; the whole demo {total:.1f} s.")
    if tally.failures:
        out(f"\nFAILED: {len(tally.failures)} problem(s):")
        for failure in tally.failures:
            out(f"  - {failure}")
        return 1
    out("All checks passed.")
    out(f"\nExplore what it replayed in the lead console ({saved.items} items saved in {saved.path}):")
    out(f"  {console_command(options.state)}")
    return 0


def console_command(state: Path | None) -> str:
    """The command that opens the console on the saved demo (it starts its own local stack)."""
    command = [".venv/bin/leadscore", "console", "--demo"] + ([str(state)] if state else [])
    return " ".join(shlex.quote(part) for part in command)


def _topic_for(stack: LocalStack, purpose: str) -> str:
    """The template topic a function publishes `purpose` changes to (NURTURE_TOPIC_ARN, ...)."""
    assert stack.runner is not None
    wanted = f"{purpose.upper()}_TOPIC_ARN"
    for environment in stack.runner.environments.values():
        arn = environment.get(wanted)
        if arn:
            return next(logical for logical, topic_arn in stack.physical.topics.items() if topic_arn == arn)
    raise StackError(f"no function of the template has {wanted}")


def _report(
    stack: LocalStack,
    replayer: Replayer,
    tally: Tally,
    nurture_url: str,
    sales_url: str,
    options: DemoOptions,
    audit_url: str,
) -> None:
    out, client = options.out, replayer.client
    assert stack.runner is not None
    catalog = _catalog(stack)
    stages = [s.name for s in catalog.primary.model.stages]
    everyone: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for stage in reversed(stages):
        leads = ranked_leads(client, stage, 25, tally)
        counts[stage] = len(leads)
        everyone.extend(leads)
    out(f"\nLeads by stage (through the lead API): {', '.join(f'{s} {counts[s]}' for s in reversed(stages))}")
    out(f"Top {options.top} leads (GET /v1/leads?stage=..., SigV4-signed, paged with the cursor):")
    for line in _table(everyone, options.top):
        out("  " + line)
    if counts.get(stages[-1], 0) == 0:
        tally.fail(f"no lead reached {stages[-1]}")
    _website(catalog, everyone, tally, out)
    if not catalog.single:
        _per_model(catalog, client, tally, out)
    if catalog.accounts is not None:
        _top_accounts(catalog, client, tally, out, options.top)
    if everyone:
        status, detail = client.signed_get(f"/v1/leads/{everyone[0]['lead_id']}")
        if status != 200 or not detail.get("recent_events"):
            tally.fail(f"lead detail of {everyone[0]['lead_id']}: {status}")
        else:
            out(
                f"\nGET /v1/leads/{detail['lead_id']}: {detail['email']}, "
                f"{len(detail['recent_events'])} recent events, last transition {_transition(detail)}"
            )
    for email in replayer.hostile_emails:
        status, _ = client.signed_get(f"/v1/leads?{urlencode({'email': email})}")
        if status != 404:
            tally.fail(f"a hostile request left a lead behind: {email} ({status})")
    out("\nNotifications received by the sample subscribers:")
    for name, url, policy in (
        ("nurture tool", nurture_url, NURTURE_FILTER),
        ("sales", sales_url, SALES_FILTER),
    ):
        messages = [json.loads(m["Body"]) for m in stack.drain(url)]
        by_move = Counter(
            f"{m.get('model', 'default')}: {m['from_stage']} -> {m['to_stage']}" for m in messages
        )
        out(f"  {name} (filter {json.dumps(policy)}): {len(messages)} messages  {dict(by_move)}")
        for message in sorted(messages, key=lambda m: m["occurred_at"])[-4:]:
            out(_notification_line(message))
        if not messages:
            tally.fail(f"the {name} subscriber received no notification")
    _reconcile(stack, catalog, client, tally, out, audit_url, everyone)
    dead = {
        q: _queue_depth(stack, q)
        for q, spec in queue_specs(stack.transformed).items()
        if spec.dead_letter_queue is None and q.endswith("DLQ")
    }
    out("\nCounts:")
    requests = ", ".join(f"{k} {v}" for k, v in sorted(tally.requests.items()))
    out(
        f"  webhook requests: {sum(tally.requests.values())} ({requests}); "
        f"SES messages published: {tally.ses_published}"
    )
    out(
        f"  events accepted over HTTP: {tally.accepted}; "
        f"duplicate deliveries ignored: {tally.duplicates} over HTTP, "
        f"plus {tally.ses_redeliveries} SES redeliveries"
    )
    out(f"  events in the ledger: {_ledger_count(stack)}")
    out("  requests refused, by reason: " + ", ".join(f"{k} x{v}" for k, v in sorted(tally.refused.items())))
    out(f"  decay runs: {tally.decay_runs} (transitions made by decay: {tally.transitions_by_decay})")
    out("  dead-letter queues: " + ", ".join(f"{q} {n}" for q, n in dead.items()))
    for queue, depth in dead.items():
        if depth:
            tally.fail(f"{depth} message(s) in the dead-letter queue {queue}")


def _subscribe_audit(stack: LocalStack) -> str:
    """One queue on both topics, every stage change (no stage filter): what the counts reconcile with."""
    url, arn = stack.subscribe_queue(_topic_for(stack, "nurture"), "demo-audit", {"schema": STAGE_CHANGES})
    assert stack.session is not None
    stack.session.client("sns").subscribe(
        TopicArn=stack.physical.topics[_topic_for(stack, "sales")],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"schema": STAGE_CHANGES})},
    )
    return url


def _reconcile(
    stack: LocalStack,
    catalog: Catalog,
    client: Client,
    tally: Tally,
    out: Callable[[str], None],
    audit_url: str,
    primary_leads: list[dict[str, Any]],
) -> None:
    """Each model's stage counts from its announced stage changes: promotions, demotions, and the
    leads that moved more than once (a mismatch fails the demo)."""
    from leadscore.local.reconcile import reconcile

    messages = [json.loads(m["Body"]) for m in stack.drain(audit_url)]
    out("\nStage counts from the stage changes announced (every message of both topics, no filter):")
    for entry in catalog.models:
        if entry.id == catalog.primary.id:
            leads = primary_leads
        else:
            leads = [
                lead
                for stage in entry.model.stages
                for lead in ranked_leads(client, stage.name, 25, tally, model=entry.id)
            ]
        mine = [m for m in messages if m.get("model", catalog.primary.id) == entry.id]
        result = reconcile(entry.id, entry.model, mine, leads)
        for line in result.lines:
            out(line)
        for problem in result.problems:
            tally.fail(f"stage counts do not follow from the notifications: {problem}")


def _catalog(stack: LocalStack) -> Catalog:
    """The models the local stack's functions score with (the template's ScoringModel, or --model)."""
    from leadscore.model_store import load_catalog

    assert stack.runner is not None
    sources = {
        str(env["SCORING_MODEL"]) for env in stack.runner.environments.values() if "SCORING_MODEL" in env
    }
    return load_catalog(min(sources) if sources else "bundled:catalog")


def _top_accounts(
    catalog: Catalog, client: Client, tally: Tally, out: Callable[[str], None], top: int
) -> None:
    """The accounts, by stage, and the best ones with their engaged people (GET /v1/accounts)."""
    assert catalog.accounts is not None
    accounts: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for stage in reversed(catalog.accounts.stages):
        found, cursor = [], None
        while True:
            query = {"stage": stage.name, "limit": "50", **({"cursor": cursor} if cursor else {})}
            status, page = client.signed_get(f"/v1/accounts?{urlencode(query)}")
            if status != 200:
                tally.fail(f"account ranking of {stage.name}: {status} {page}")
                break
            found.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        counts[stage.name] = len(found)
        accounts.extend(found)
    shown = ", ".join(f"{s.name} {counts.get(s.name, 0)}" for s in catalog.accounts.stages)
    out(f"\nAccounts by stage (GET /v1/accounts?stage=...): {shown}")
    if not accounts:
        tally.fail("no account was scored")
        return
    out(f"Top {min(top, 5, len(accounts))} accounts and their buying committee:")
    for account in accounts[: min(top, 5)]:
        engaged = [m for m in account["members"] if m["engaged"]]
        people = ", ".join(
            f"{m['title'] or m['role'] or 'someone'} ({m['engagement']:.0f})" for m in engaged[:4]
        )
        out(
            f"  {account['account']:<30} {account['stage']:<12} score {account['total']:>5.1f}  "
            f"{len(engaged)} engaged of {len(account['members'])}: {people}"
        )
        out(f"      {'; '.join(account['reasons'][:3])}")


def _website(catalog: Catalog, leads: list[dict[str, Any]], tally: Tally, out: Callable[[str], None]) -> None:
    """The primary model's website rules at work (visits, pages read, engaged time): how many leads
    each one scores now, and the reasons of the lead whose reasons they add most to."""
    model = catalog.primary.model
    website = {
        rule.id: rule.label or rule.id
        for _, rule in model.all_rules()
        if isinstance(rule, EventRule | AggregateRule) and TRACK_EVENT_TYPES & set(rule.event_types)
    }
    tracked = {
        rule.id
        for _, rule in model.all_rules()
        if isinstance(rule, EventRule | AggregateRule) and TRACKED_ONLY & set(rule.event_types)
    }
    scored = Counter(
        c["rule_id"] for lead in leads for c in lead.get("contributions", []) if c["rule_id"] in website
    )
    out("\nWebsite rules (visits, pages, engaged time) in the scores, leads each one counts for now:")
    out("  " + ", ".join(f"{website[rule]} ({rule}) {scored[rule]}" for rule in website))

    def helped(lead: dict[str, Any]) -> float:
        """What visit and engaged-time rules add among the reasons shown (a capped section can
        push them out of the top reasons: such a lead would show nothing of the website)."""
        reasons = lead.get("explanation", {}).get("reasons", [])
        return sum(r["points"] for r in reasons if tracked & set(r["rule_id"].split("+")))

    best = max(leads, key=helped, default=None)
    if best is None or helped(best) <= 0:
        tally.fail(f"no lead is scored by a visit or engaged-time rule ({', '.join(sorted(tracked))})")
        return
    reasons = "; ".join(f"{r['label']} {r['points']:+.1f}" for r in best["explanation"]["reasons"])
    out(f"  the lead visits and engaged time helped most, {best['email']} ({best['total']:.1f}): {reasons}")


def _per_model(catalog: Catalog, client: Client, tally: Tally, out: Callable[[str], None]) -> None:
    """Each model's leads by stage, through its own ranking (GET /v1/leads?model=...&stage=...)."""
    out("\nLeads by stage in each model of the catalog (GET /v1/leads?model=ID&stage=...):")
    for entry in catalog.models:
        counts = {
            stage.name: len(ranked_leads(client, stage.name, 25, tally, model=entry.id))
            for stage in entry.model.stages
        }
        shown = ", ".join(f"{stage} {n}" for stage, n in counts.items())
        out(f"  {entry.id:<12} {shown}")
        if not any(counts.values()):
            tally.fail(f"no lead is scored by the model {entry.id}")


def _queue_depth(stack: LocalStack, logical_id: str) -> int:
    assert stack.session is not None
    url = stack.physical.queues[logical_id][0]
    attributes = stack.session.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _ledger_count(stack: LocalStack) -> int:
    assert stack.session is not None
    client = stack.session.client("dynamodb")
    table = next(iter(stack.physical.tables.values()))
    for logical, name in stack.physical.tables.items():
        if logical in stack.physical.streams and "Ledger" in logical:
            table = name
    total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        page = client.scan(**kwargs)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> int:  # pragma: no cover - `python -m leadscore.local.replay`
    return run_demo(DemoOptions())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
