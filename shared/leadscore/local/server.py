"""The local stack: the template's resources in an embedded AWS emulator (moto server on
loopback), its functions run by `Runner`, and its HTTP API served on 127.0.0.1.

`LocalStack.start()` binds the HTTP port first (a busy port fails fast and clearly), starts the
emulator on an ephemeral port, transforms `template.yaml`, provisions every table, stream, topic,
queue, subscription and secret it declares, and starts three threads: the HTTP server, a poller
that plays the stream and queue event source mappings and a scheduler that fires each schedule per
its rate(...)/cron(...) expression. `stop()` (or leaving the `with` block) stops them all.

The poller sleeps until a write wakes it (`leadscore.local.wakeup`): a webhook's record reaches its
stream's function within milliseconds, and an idle stack costs one poll per `pump_interval` (the
fallback tick, for what no hook sees: another process writing to a `process` emulator, an SQS
delay or visibility timeout running out).

Everything in-process talks to the emulator: handlers get AWS_ENDPOINT_URL and fake credentials
in their environment, and the stack's own clients are built with the endpoint explicitly.

Local-only routes on the same port (not part of the product's API):
  GET  /_local                                   what runs: endpoint, resources, routes, schedules
  POST /_local/schedules/<FunctionLogicalId>     fire that function's schedule now (`?at=` ISO time)
  GET  /_local/topics/<TopicLogicalId>/messages  what a watched topic published (with --watch)
  GET  /_local/site/ and /_local/site/<page>       the demo website with the tracking snippet
                                                 (`leadscore.local.site`: static files, no traversal)
"""

from __future__ import annotations

import errno
import gc
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3

from leadscore.local import emulator, site, wakeup
from leadscore.local.glue import repo_root
from leadscore.local.schedule import ScheduleError
from leadscore.local.stack import (
    ACCOUNT,
    REGION,
    InvocationLog,
    Physical,
    Runner,
    print_invocation,
    provision,
)
from leadscore.local.template import load_template, transform

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
DEFAULT_SECRETS = Path("events/local/secrets.json")
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # HTTP API payload limit; larger requests never reach Lambda
WATCH_KEEP = 1000


class StackError(Exception):
    """The local stack cannot start; the message says what to do."""


@dataclass
class LocalOptions:
    port: int = 3000  # 0 picks a free port
    emulator_port: int = 0  # the AWS emulator's port; 0 picks a free one
    host: str = "127.0.0.1"
    secrets_path: Path | None = None  # default: events/local/secrets.json of the repository
    watch: bool = False
    prefix: str = "local-"
    background: bool = True  # poll streams/queues and run the scheduler in threads
    pump_interval: float = 2.0  # the poller's fallback tick: writes wake it sooner (see the docstring)
    log: InvocationLog | None = print_invocation
    log_level: str = "WARNING"  # the template's LogLevel parameter, for the handlers' own logs
    template: dict[str, Any] | None = None  # already parsed (tests use modified copies)
    # "thread": moto's ThreadedMotoServer in this process (fast start). "process": a moto server
    # subprocess, for processes that hold other moto state (moto's backends are process-global, so
    # two in-process emulators, or `mock_aws` in a test, would share and reset each other's state).
    emulator: Literal["thread", "process"] = "thread"
    say: Callable[[str], None] = print
    # The scoring model the functions run on (`--model`, SCORING_MODEL): a file path or
    # bundled:NAME; None keeps the template's ScoringModel default.
    model: str | None = None
    # Spare a long-running stack the full garbage collections that stall a request for hundreds of
    # milliseconds as the emulator's data grows: what survives a full collection is frozen, so the
    # next one walks only what came since (see `_freeze_survivors`). Process-wide, for as long as
    # the stack runs: `leadscore local` and the latency bench set it, tests leave it off.
    freeze_gc_survivors: bool = False


def _ensure_free(port: int, option: str) -> None:
    """Fail with a clear message, before anything starts, when a fixed port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} on 127.0.0.1 is already in use; choose another with {option}"
            ) from exc


def load_secrets(path: Path) -> dict[str, str]:
    """The webhook secret document (one JSON object, an entry per provider), as the secret string
    of the template's secret resource(s)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StackError(
            f"secrets file {path} not found (see events/local/secrets.json for the format)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise StackError(f"secrets file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StackError(f"secrets file {path} must hold a JSON object with one entry per provider")
    return {"WebhookSecret": json.dumps(document)}


def local_model_source(source: str) -> str:
    """The SCORING_MODEL the local functions get for `--model SOURCE`: a file (as an absolute
    path, so the functions find it whatever their working directory) or bundled:NAME, checked
    here so a bad model stops the start with the model's own error instead of failing every event."""
    from leadscore.errors import ModelError
    from leadscore.model_store import load_model

    if source.startswith(("s3://", "ssm:")):
        raise StackError(
            f"--model {source}: the local stack has no S3 or SSM of yours; download the model and "
            "pass its file (e.g. `aws s3 cp s3://bucket/model.yaml .`)"
        )
    if not source.startswith("bundled:"):
        source = str(Path(source.removeprefix("file:")).expanduser().resolve())
    try:
        load_model(source)
    except ModelError as exc:
        raise StackError(f"--model: {exc.message}") from exc
    return source


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint (the emulator), with fake credentials."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=REGION,
        )

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self._session.client(service, endpoint_url=self.endpoint_url, region_name=region_name)

    def resource(self, service: str) -> Any:
        return self._session.resource(service, endpoint_url=self.endpoint_url)


def topic_slug(logical_id: str) -> str:
    """NurtureTopic -> nurture, SesEventsTopic -> ses-events."""
    name = logical_id.removesuffix("Topic") or logical_id
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


class HandlerOutput(io.StringIO):
    """Where handlers' standard output goes locally: CloudWatch metrics (EMF documents, one JSON line
    per invocation) are dropped, everything else reaches the terminal."""

    def __init__(self) -> None:
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not line.startswith('{"_aws"'):
                sys.__stdout__.write(line + "\n") if sys.__stdout__ else None
        return len(text)


@dataclass
class Watch:
    topic: str
    queue_url: str
    received: list[dict[str, Any]] = field(default_factory=list)


class LocalStack:
    """The whole product on loopback. Use as a context manager, or start()/stop()."""

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: Any = None
        self._limits = ExitStack()
        self._http: ThreadingHTTPServer | None = None
        self.session: EndpointSession | None = None
        self.physical = Physical()
        self.runner: Runner | None = None
        self.transformed: dict[str, Any] = {}
        self.watches: dict[str, Watch] = {}
        self.local_only: dict[str, str] = {}  # resources created for local use only -> what for
        self.unscheduled: dict[str, str] = {}
        self._watch_lock = threading.Lock()
        self.wakeup = wakeup.Wakeup()  # notified on every write the stack can see
        self.polls = 0  # rounds the background poller finished (an idle stack: one per fallback tick)

    # ------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._http is not None, "start() first"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint_url(self) -> str:
        assert self.session is not None, "start() first"
        return self.session.endpoint_url

    def start(self) -> None:
        self._http = self._bind_http()
        try:
            self._start_emulator()
            self._provision()
        except BaseException:
            self.stop()
            raise
        if self.options.freeze_gc_survivors:
            gc.collect()
            gc.freeze()  # what starting created: modules, the template, the emulator's resources
            gc.callbacks.append(_freeze_survivors)
            self._limits.callback(gc.unfreeze)  # the process as it was: one collectable heap
            self._limits.callback(gc.callbacks.remove, _freeze_survivors)
        self._spawn("local-http", self._http.serve_forever)
        if self.options.background:
            self._spawn("local-poller", self._poll_forever)
            self._spawn("local-scheduler", self._schedule_forever)

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.notify()  # the poller may be waiting for a write
        if self._http is not None:
            if any(t.name == "local-http" for t in self._threads):
                self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._limits.close()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _bind_http(self) -> ThreadingHTTPServer:
        try:
            server = ThreadingHTTPServer((self.options.host, self.options.port), _handler_class(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(
                    f"port {self.options.port} on {self.options.host} is already in use "
                    "(another `leadscore local`?); "
                    "stop it or choose another port with --port"
                ) from exc
            raise StackError(
                f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror}"
            ) from exc
        server.daemon_threads = True
        return server

    def _start_emulator(self) -> None:
        if self.options.emulator == "process":
            self._moto = _MotoProcess()
            self.session = EndpointSession(self._moto.url)
            # Its requests are out of sight: hear the writes of this process's own clients instead
            # (the handlers' writes are heard when each invocation ends, see `_provision`).
            wakeup.session_writes(self.session._session, self.wakeup.notify)
            return
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(
            logging.ERROR
        )  # one line per request from the emulator is noise
        if self.options.emulator_port:
            _ensure_free(self.options.emulator_port, "--emulator-port")
        # DynamoDB's item size and number limits, and all-or-nothing writes, as in the tests.
        self._limits.enter_context(emulator.dynamodb_limits())
        self._limits.enter_context(emulator.sns_limits())
        self._limits.enter_context(emulator.fast_stream_reads())
        self._limits.enter_context(emulator.parsed_once())
        self._limits.enter_context(emulator.modules_listed_once())
        self._limits.enter_context(wakeup.emulator_writes(self.wakeup.notify))
        self._moto = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.options.emulator_port, verbose=False
        )
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.session = EndpointSession(f"http://{host}:{port}")

    def _provision(self) -> None:
        assert self.session is not None
        template = self.options.template if self.options.template is not None else load_template()
        self.transformed = transform(template, region=REGION)
        secrets_path = self.options.secrets_path or repo_root() / DEFAULT_SECRETS
        secret_strings = load_secrets(secrets_path)
        self.physical = provision(self.transformed, self.session, self.options.prefix, secret_strings)
        self._create_ses_topics(json.loads(secret_strings["WebhookSecret"]))
        environment = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        overrides = (
            {"LogLevel": self.options.log_level}
            if "LogLevel" in (self.transformed.get("Parameters") or {})
            else {}
        )
        if self.options.model is not None:
            overrides["ScoringModel"] = local_model_source(self.options.model)
        self.runner = Runner(
            self.transformed,
            self.physical,
            self.session,
            environment,
            overrides,
            self.options.log,
            HandlerOutput(),
            on_invoked=self.wakeup.notify if self.options.emulator == "process" else None,
        )
        for function_id, source in self.runner.schedules():
            try:
                self.runner.parsed_schedule(source)
            except ScheduleError as exc:
                self.unscheduled[function_id] = str(exc)
        if self.options.watch:
            for topic in self.physical.topics:
                name = f"{self.options.prefix}watch-{topic_slug(topic)}"
                url, _ = self.subscribe_queue(topic, name, raw=False)
                self.watches[topic] = Watch(topic=topic, queue_url=url)
                self.local_only[name] = f"SQS queue subscribed to {topic} (--watch)"

    def _create_ses_topics(self, secrets: Mapping[str, Any]) -> None:
        """The SES topics the secret allows over SNS HTTPS live in the team's account: create them
        in the emulator, so a verified SubscriptionConfirmation can be confirmed there."""
        assert self.session is not None
        ses = secrets.get("ses")
        for arn in ses.get("topic_arns", []) if isinstance(ses, dict) else []:
            parts = str(arn).split(":")
            if len(parts) == 6 and parts[2] == "sns":
                client = self.session._session.client(
                    "sns", endpoint_url=self.endpoint_url, region_name=parts[3]
                )
                client.create_topic(Name=parts[5])

    # ------------------------------------------------------------------------- helpers
    def subscribe_queue(
        self, topic: str, queue_name: str, filter_policy: Mapping[str, Any] | None = None, raw: bool = True
    ) -> tuple[str, str]:
        """A queue subscribed to one of the template's topics (a sample subscriber). Returns (url, arn)."""
        assert self.session is not None
        sqs, sns = self.session.client("sqs"), self.session.client("sns")
        url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"RawMessageDelivery": str(raw).lower()}
        if filter_policy:
            attributes["FilterPolicy"] = json.dumps(dict(filter_policy))
        sns.subscribe(
            TopicArn=self.physical.topics[topic], Protocol="sqs", Endpoint=arn, Attributes=attributes
        )
        return url, arn

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Receive and delete everything a queue holds now (SQS messages as boto3 returns them)."""
        assert self.session is not None
        sqs = self.session.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )

    def settle(self) -> int:
        """Play the stream and queue triggers until nothing moves; returns records delivered."""
        assert self.runner is not None
        moved = self.runner.settle()
        self._collect_watches()
        return moved

    def watched(self, topic: str) -> list[dict[str, Any]]:
        self._collect_watches()
        with self._watch_lock:
            return list(self.watches[topic].received)

    def _collect_watches(self) -> None:
        with self._watch_lock:
            for watch in self.watches.values():
                for message in self.drain(watch.queue_url):
                    envelope = json.loads(message["Body"])
                    try:
                        body: Any = json.loads(envelope.get("Message", ""))
                    except json.JSONDecodeError:
                        body = envelope.get("Message")
                    attributes = {
                        k: v.get("Value") for k, v in (envelope.get("MessageAttributes") or {}).items()
                    }
                    entry = {
                        "message_id": envelope.get("MessageId"),
                        "timestamp": envelope.get("Timestamp"),
                        "attributes": attributes,
                        "message": body,
                    }
                    watch.received.append(entry)
                    del watch.received[:-WATCH_KEEP]
                    self.options.say(_describe_notification(watch.topic, entry))

    # ------------------------------------------------------------------------- threads
    def _poll_forever(self) -> None:
        assert self.runner is not None
        while not self._stop.is_set():
            seen = self.wakeup.generation  # a write from here on makes the wait below return at once
            try:
                moved = self.runner.pump_streams() + self.runner.pump_queues()
                self._collect_watches()
            except Exception as exc:  # keep polling: a failed poll is retried, as Lambda's pollers do
                self.options.say(f"poller: {type(exc).__name__}: {exc}")
                moved = 0
            self.polls += 1
            if not moved:
                self.wakeup.wait_past(seen, self.options.pump_interval)

    def _schedule_forever(self) -> None:
        assert self.runner is not None
        started = datetime.now(UTC)
        due: dict[str, datetime] = {}
        for function_id, _source in self.runner.schedules():
            if function_id not in self.unscheduled:
                self._plan(due, function_id, started, started)
        while due and not self._stop.is_set():
            function_id, at = min(due.items(), key=lambda item: item[1])
            wait = (at - datetime.now(UTC)).total_seconds()
            if wait > 0:
                self._stop.wait(min(wait, 1.0))
                continue
            try:
                self.runner.fire_schedule(function_id, at)
            except Exception as exc:
                self.options.say(f"scheduler: {function_id} failed: {type(exc).__name__}: {exc}")
            self._plan(due, function_id, at, started)

    def _plan(self, due: dict[str, datetime], function_id: str, after: datetime, started: datetime) -> None:
        """Put the schedule's next firing in `due`, or drop it (saying why) when it has none left,
        e.g. a cron expression whose only year is over: the other schedules keep running."""
        assert self.runner is not None
        source = next(s for f, s in self.runner.schedules() if f == function_id)
        try:
            due[function_id] = self.runner.parsed_schedule(source).next_after(after, started)
        except ScheduleError as exc:
            due.pop(function_id, None)
            self.unscheduled[function_id] = str(exc)
            self.options.say(f"scheduler: {function_id} will not fire again: {exc}")

    # ------------------------------------------------------------------------- description
    def describe(self) -> dict[str, Any]:
        assert self.runner is not None
        return {
            "url": self.url,
            "emulator": self.endpoint_url,
            "region": REGION,
            "account": ACCOUNT,
            "model": next(
                (env["SCORING_MODEL"] for env in self.runner.environments.values() if "SCORING_MODEL" in env),
                None,
            ),
            "tables": self.physical.tables,
            "streams": self.physical.streams,
            "topics": self.physical.topics,
            "queues": {k: v[0] for k, v in self.physical.queues.items()},
            "secrets": self.physical.secrets,
            "not_created": self.physical.not_created,
            "local_only": self.local_only,
            "routes": [
                {"route": f"{r.method} {r.path}", "function": f, "auth": r.auth}
                for r, f in self.runner.routes()
            ],
            "schedules": {
                f: {
                    "expression": self.runner.schedule_expression(s),
                    "fired_locally": f not in self.unscheduled,
                }
                for f, s in self.runner.schedules()
            },
            "watched_topics": sorted(self.watches),
            "demo_site": [self.url + path for path in site.pages()],
        }

    def banner(self) -> list[str]:
        """What `leadscore local` prints at startup."""
        info = self.describe()
        lines = [
            f"leadscore local: the HTTP API is at {self.url}",
            f"Demo website (tracking snippet, forms): {self.url}{site.PREFIX}/",
            f"AWS emulator (moto): {self.endpoint_url}  region {REGION}",
            f"Scoring model: {info['model']}",
            "",
        ]
        lines.append("Created from template.yaml:")
        for kind, items in (
            ("table", info["tables"]),
            ("topic", info["topics"]),
            ("queue", info["queues"]),
            ("secret", info["secrets"]),
        ):
            lines.extend(f"  {kind:<13}{logical:<30}{physical}" for logical, physical in items.items())
        lines.extend(f"  {'stream':<13}{logical:<30}{arn}" for logical, arn in info["streams"].items())
        created_subs = [k for k in _subscriptions(self.transformed) if k not in self.physical.not_created]
        lines.extend(f"  {'subscription':<13}{logical}" for logical in created_subs)
        lines.append("")
        lines.append("Routes:")
        lines.extend(
            f"  {r['route']:<34}-> {r['function']}" + ("  (SigV4 required)" if r["auth"] == "AWS_IAM" else "")
            for r in info["routes"]
        )
        lines.append("Schedules:")
        for function_id, schedule in info["schedules"].items():
            state = (
                "fired locally"
                if schedule["fired_locally"]
                else f"NOT fired: {self.unscheduled[function_id]}"
            )
            lines.append(
                f"  {function_id:<30}{schedule['expression']}  "
                f"({state}; now: POST {self.url}/_local/schedules/{function_id})"
            )
        lines.append("")
        lines.append("Not created (played by the runner or not emulated):")
        lines.extend(f"  {logical:<34}{why}" for logical, why in sorted(self.physical.not_created.items()))
        if self.local_only:
            lines.append("")
            lines.append("Local only (not in the template):")
            lines.extend(f"  {name:<34}{why}" for name, why in self.local_only.items())
            lines.extend(
                f"  watch {topic}: GET {self.url}/_local/topics/{topic}/messages" for topic in self.watches
            )
        lines.append("")
        lines.append("One line per invocation follows. Ctrl-C stops everything.")
        return lines


class _MotoProcess:
    """A moto server in a subprocess on a free loopback port."""

    def __init__(self, timeout: float = 30.0) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "leadscore.local.emulator", "-H", "127.0.0.1", "-p", str(port)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise StackError("the moto server subprocess did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _freeze_survivors(phase: str, info: Mapping[str, int]) -> None:
    """After a full collection everything left is reachable: move it to the permanent generation
    (`gc.freeze`), so the next full collection walks only what came since instead of the whole
    emulator's data. A frozen object is still freed when its last reference goes; only a reference
    cycle among frozen objects that becomes garbage later stays (the emulator's items hold none)."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def _subscriptions(transformed: Mapping[str, Any]) -> list[str]:
    return [
        k
        for k, r in (transformed.get("Resources") or {}).items()
        if r.get("Type") == "AWS::SNS::Subscription"
    ]


def _describe_notification(topic: str, entry: Mapping[str, Any]) -> str:
    message = entry.get("message")
    if isinstance(message, dict) and "to_stage" in message:
        score = message.get("score") or {}
        return (
            f"{datetime.now(UTC):%H:%M:%S} {topic:<28} {message.get('email')} {message.get('from_stage')} -> "
            f"{message.get('to_stage')} ({message.get('direction')}, "
            f"score {score.get('total')}, grade {score.get('grade')})"
        )
    return f"{datetime.now(UTC):%H:%M:%S} {topic:<28} message {entry.get('message_id')}"


# ----------------------------------------------------------------------------------- HTTP front
def _handler_class(stack: LocalStack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "leadscore-local"
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # the runner logs each invocation
            return

        def parse_request(self) -> bool:
            # The stdlib parses the headers as an email message, and a hostile Content-Type (an
            # RFC 2231 boundary in the idna charset) makes it raise: answer 400, as the function
            # behind API Gateway does, instead of dropping the connection.
            try:
                return super().parse_request()
            except (UnicodeError, LookupError, ValueError) as exc:
                self.close_connection = True
                self.send_error(400, f"Bad Request: unreadable headers ({type(exc).__name__})")
                return False

        def _read_body(self) -> bytes | None:
            """The request body; None when it is too large. Raises ValueError on broken framing."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks: list[bytes] = []
                total = 0
                while True:
                    line = self.rfile.readline().split(b";")[0].strip()
                    if not all(c in b"0123456789abcdefABCDEF" for c in line):
                        raise ValueError(f"invalid chunk size {line[:40]!r}")
                    size = int(line or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    total += size
                    if total > API_GATEWAY_MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            declared = (self.headers.get("Content-Length") or "0").strip()
            if not declared.isdigit():  # API Gateway refuses these before any function runs
                raise ValueError(f"invalid Content-Length {declared[:40]!r}")
            length = int(declared)
            if length > API_GATEWAY_MAX_BODY:
                return None
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._answer(
                status, {"content-type": "application/json"}, json.dumps(value, default=str).encode()
            )

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            try:
                body = self._read_body()
            except ValueError as exc:  # the framing is broken: nothing after it can be trusted
                self.close_connection = True
                self._json(400, {"message": f"Bad Request: {exc}"})
                return
            if body is None:
                self.close_connection = True
                self._json(413, {"message": "Request Entity Too Large"})
                return
            if parts.path == "/_local" or parts.path.startswith("/_local/"):
                self._local(parts.path, parts.query)
                return
            assert stack.runner is not None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer_headers, answer = stack.runner.handle_http(
                self.command, parts.path, headers, body, parts.query, self.client_address[0]
            )
            self._answer(status, answer_headers, answer)

        def _local(self, path: str, query: str) -> None:
            segments = [s for s in path.split("/") if s][1:]
            if not segments and self.command == "GET":
                self._json(200, stack.describe())
            elif segments[:1] == ["site"] and self.command == "GET":
                self._site("/".join(segments[1:]))
            elif len(segments) == 2 and segments[0] == "schedules" and self.command == "POST":
                self._fire(segments[1], query)
            elif (
                len(segments) == 3
                and segments[0] == "topics"
                and segments[2] == "messages"
                and self.command == "GET"
            ):
                topic = segments[1]
                if topic not in stack.watches:
                    hint = (
                        "start with --watch"
                        if not stack.watches
                        else f"watched: {', '.join(sorted(stack.watches))}"
                    )
                    self._json(404, {"message": f"topic {topic} is not watched ({hint})"})
                else:
                    self._json(200, stack.watched(topic))
            else:
                self._json(404, {"message": "unknown local route; see GET /_local"})

        def _site(self, page: str) -> None:
            found = site.lookup(page)
            if found is None:
                self._json(404, {"message": f"no such page; the demo site has: {', '.join(site.pages())}"})
                return
            body, content_type = found
            self._answer(200, {"content-type": content_type, **site.HEADERS}, body)

        def _fire(self, function_id: str, query: str) -> None:
            from urllib.parse import parse_qs

            assert stack.runner is not None
            at_text = next(iter(parse_qs(query).get("at") or []), None)
            try:
                at = datetime.fromisoformat(at_text.replace("Z", "+00:00")) if at_text else datetime.now(UTC)
            except ValueError:
                self._json(400, {"message": "at: expected an ISO 8601 time such as 2026-03-02T09:00:00Z"})
                return
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            if function_id not in {f for f, _ in stack.runner.schedules()}:
                known = sorted({f for f, _ in stack.runner.schedules()})
                self._json(404, {"message": f"{function_id} has no schedule; scheduled functions: {known}"})
                return
            try:
                result = stack.runner.fire_schedule(function_id, at)
            except Exception as exc:
                self._json(502, {"function": function_id, "error": f"{type(exc).__name__}: {exc}"})
                return
            self._json(200, {"function": function_id, "at": at.isoformat(), "result": result})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    return Handler


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy or `timeout` seconds pass; returns the
    last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
