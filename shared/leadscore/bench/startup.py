"""Issue 12's startup rows: each handler's cold import against `import boto3` + one client, the warm
ingest CPU against a minimal Powertools handler doing the same one `put_item`, and the layer's size.

- Imports are measured on the layer as it ships: its runtime code is built by `leadscore.layer`
  (compiled, for this Python), first on the path, in fresh subprocesses set up as Lambda runs
  them (LAMBDA_TASK_ROOT set, so the Tracer is on and patches; the template's constant
  environment, e.g. PYDANTIC_DISABLE_PLUGINS). Handler and baseline runs alternate; the figure
  is the median CPU time of the import (an import is CPU work: on a shared machine wall time
  measures the neighbours; the wall times are printed too), and `-X importtime` names the
  heaviest imports of the slowest handler. Two floors put the ratio in proportion: Powertools
  alone, and the stack every handler stands on (Powertools, boto3 and pydantic, no code of ours).
- A cold start is the import and the first request: `ingest_form`'s first request (clients,
  secrets, the models it validates) is timed in the same fresh process, against the minimal
  handler's import and first `put_item`.
- Warm ingest runs in a subprocess where botocore's HTTP send answers from canned responses (the
  same no-op send for both sides: neither a network nor moto's CPU is in the figure): the
  shipped `ingest_form` handler with a signed generic form event, against a minimal Powertools
  handler (Logger/Metrics/Tracer decorators, an APIGatewayHttpResolver route, one `put_item` of
  the same item's shape). CPU time per invocation, batches alternating, median; each part of the
  ingest request is then timed alone for the breakdown (a profiler would skew it).
- The layer is built as `sam build` builds it (pip, for python3.12 on arm64) when a python3.12
  is found (LAYER_PYTHON or python3.12), otherwise without bytecode, and `--quick` measures only
  the runtime code (no registry needed).

`python -m leadscore.bench --areas startup [--quick]`.
"""

from __future__ import annotations

import base64
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from leadscore import layer
from leadscore.bench.table import Row

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = ROOT / "functions"
IMPORT_TARGET = 1.2
WARM_TARGET = 1.1
IMPORT_PATH = "handler import vs `import boto3` + one client: {}"
COLD_PATH = "cold start CPU (import + first request): ingest_form vs minimal handler"
WARM_PATH = "warm ingest CPU vs a minimal Powertools handler (one put_item)"
LAYER_PATH = "layer size (unzipped)"
BASELINE_IMPORT = "import boto3; boto3.client('dynamodb', region_name='us-east-1')"
# What a Powertools HTTP handler cannot do without: the floor any handler of ours stands on.
POWERTOOLS_FLOOR = (
    "from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; "
    "Logger(); Metrics(); Tracer(); APIGatewayHttpResolver()"
)
# The stack any handler of ours stands on: the Powertools floor, boto3 and pydantic, no code of ours.
STACK_FLOOR = POWERTOOLS_FLOOR + "; import boto3; from pydantic import BaseModel, ConfigDict, Field"
TIMED = (
    "import sys, time\nstarted, cpu = time.perf_counter(), time.process_time()\n{}\n"
    "print(time.perf_counter() - started, time.process_time() - cpu)\n"
)
REGION = "us-east-1"


def handlers() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS.glob("*/handler.py"))


def rows(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="leadscore-startup-") as scratch:
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        code = layer.build(Path(scratch) / "code", code_only=True, python_version=running) / "python"
        path, how = shipped_path(Path(scratch), code, quick)
        measured = import_rows(path, how, runs=1 if quick else 9)
        measured.append(cold_ingest_row(runs=1 if quick else 9))
        measured.append(warm_ingest_row(batches=1 if quick else 9, per_batch=10 if quick else 300))
        measured.append(layer_row(Path(scratch) / "layer", code.parent, quick))
    return measured


# ---------------------------------------------------------------------------------------- imports
# What the python3.12 Lambda runtime provides besides the standard library (import names).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3")


def shipped_path(scratch: Path, code: Path, quick: bool) -> tuple[list[Path], str]:
    """The import path a function sees on Lambda: the layer's code, the layer's dependencies
    (shared/requirements.txt, installed for this Python), then the runtime's boto3 and its own
    dependencies (this environment's copies) and nothing else: `python -S` keeps this
    environment's other packages out (X-Ray's patch_all would import every one it can patch).
    A quick run, or one without the registry, puts the layer's code before this environment's
    packages instead, and says so."""
    if quick:
        return [code], "layer code first, then this environment's packages (--quick)"
    deps, runtime = scratch / "deps", scratch / "runtime"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--only-binary=:all:", "--target", str(deps)]
    command += ["-r", str(layer.SHARED / "requirements.txt")]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1][:120]
        return [code], f"layer code first, then this environment's packages (no registry: {reason})"
    import importlib.util

    runtime.mkdir()
    site = None
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        site = origin.parent.parent if origin.name == "__init__.py" else origin.parent
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, runtime / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, runtime / origin.name)
    for distribution in RUNTIME_DISTRIBUTIONS:  # their metadata: botocore asks for versions
        for info in site.glob(f"{distribution}-*.dist-info") if site else []:
            shutil.copytree(info, runtime / info.name)
    compileall.compile_dir(runtime, quiet=1, workers=0)  # the runtime's copy is compiled too
    compileall.compile_dir(deps, quiet=1, workers=0)
    return [code, deps, runtime], "as shipped: the layer (code + pinned deps), then the runtime's boto3"


def template_constants() -> dict[str, str]:
    """The constant variables of the template's `Globals` environment (every function has them)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !Ref, !Sub...: not constants
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=Loader)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {name: value for name, value in variables.items() if isinstance(value, str)}


def _lambda_env(path: list[Path], task_root: Path | None = None) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON"))}
    return {
        **keep,
        **template_constants(),
        "PYTHONPATH": os.pathsep.join(map(str, path)),  # the layer first, as /opt/python on Lambda
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": "leadscore",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScore",
        "LAMBDA_TASK_ROOT": str(task_root or path[0]),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
    }


def _timed_import(
    statement: str, env: dict[str, str], cwd: Path, importtime: bool = False, isolated: bool = False
) -> tuple[tuple[float, float], str]:
    """((wall seconds, CPU seconds), stderr) of one fresh process running `statement`."""
    command = [sys.executable, *(["-S"] if isolated else []), *(["-X", "importtime"] if importtime else [])]
    command += ["-c", TIMED.format(statement)]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {done.stderr.strip().splitlines()[-1:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return (float(wall), float(cpu)), done.stderr


def _handler_statement(name: str) -> str:
    return f"sys.path.insert(0, {str(FUNCTIONS / name)!r}); import handler"


def import_rows(path: list[Path], how: str, runs: int) -> list[Row]:
    env, code, isolated = _lambda_env(path), path[0], len(path) > 1
    names = handlers()
    statements = {"baseline": BASELINE_IMPORT, "floor": POWERTOOLS_FLOOR, "stack": STACK_FLOOR}
    statements.update({name: _handler_statement(name) for name in names})
    for statement in statements.values():  # warm the disk cache and the venv's own bytecode
        _timed_import(statement, env, code, isolated=isolated)
    runs_of: dict[str, list[tuple[float, float]]] = {key: [] for key in statements}
    for _ in range(runs):  # alternate, so a slow moment of the machine hits every side alike
        for key, statement in statements.items():
            runs_of[key].append(_timed_import(statement, env, code, isolated=isolated)[0])
    cpu = {key: statistics.median(cpu for _, cpu in values) for key, values in runs_of.items()}
    wall = {key: statistics.median(wall for wall, _ in values) for key, values in runs_of.items()}
    base, floor, stack = cpu["baseline"], cpu["floor"], cpu["stack"]
    slowest = max(names, key=lambda name: cpu[name])
    profiled = _timed_import(statements[slowest], env, code, importtime=True, isolated=isolated)
    heaviest = _heaviest_imports(profiled[1])
    baseline = (
        f"`{BASELINE_IMPORT}` {base * 1000:.0f} ms CPU; floors: Powertools Logger+Metrics+Tracer"
        f"+APIGatewayHttpResolver alone {floor * 1000:.0f} ms = {floor / base:.2f}x, with boto3 and "
        f"pydantic (no code of ours) {stack * 1000:.0f} ms = {stack / base:.2f}x"
    )
    out = []
    for name in names:
        ratio = cpu[name] / base
        detail = (
            f"{cpu[name] * 1000:.0f} ms vs {base * 1000:.0f} ms CPU ({wall[name] * 1000:.0f} vs "
            f"{wall['baseline'] * 1000:.0f} ms wall), {cpu[name] / stack:.2f}x the boto3+pydantic+Powertools "
            f"floor, median of {runs} fresh processes; {how}"
        )
        if name == slowest:
            detail += f"; heaviest imports (-X importtime): {heaviest}"
        out.append(
            Row(
                path=IMPORT_PATH.format(name),
                measured=f"{ratio:.2f}x",
                target=f"<= {IMPORT_TARGET}x",
                met=ratio <= IMPORT_TARGET,
                baseline=baseline,
                detail=detail,
            )
        )
    return out


def _heaviest_imports(importtime: str, top: int = 4) -> str:
    """The handler's direct imports (and theirs' heaviest), cumulative microseconds, largest first."""
    entries = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit():
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            entries.append((depth, int(cumulative), name.strip()))
    direct = [entry for entry in entries if entry[0] == 1]  # the handler module is depth 0
    direct.sort(key=lambda entry: -entry[1])
    return ", ".join(f"{name} {micro / 1000:.0f} ms" for _, micro, name in direct[:top])


# ------------------------------------------------------------------------------------ warm ingest
def warm_ingest_row(batches: int, per_batch: int) -> Row:
    # The source tree (this module is bench code, which the layer does not hold); tracing off
    # on both sides, as a local process has no X-Ray daemon.
    env = {**_lambda_env([ROOT / "shared"]), "POWERTOOLS_TRACE_DISABLED": "true"}
    command = [sys.executable, "-m", "leadscore.bench.startup", str(batches), str(per_batch)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        return Row(WARM_PATH, f"not measured: {done.stderr.strip()[-300:]}", f"<= {WARM_TARGET}x", None)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = result["ingest_us"] / result["baseline_us"]
    parts = ", ".join(f"{name} {micro:.0f}" for name, micro in result["parts"])
    return Row(
        path=WARM_PATH,
        measured=f"{ratio:.2f}x",
        target=f"<= {WARM_TARGET}x",
        met=ratio <= WARM_TARGET,
        baseline=(
            f"minimal Powertools handler {result['baseline_us']:.0f} us vs ingest_form "
            f"{result['ingest_us']:.0f} us CPU per request (median of {batches} x {per_batch}, canned HTTP)"
        ),
        detail=f"ingest CPU by part, us (each timed alone): {parts}",
    )


def cold_ingest_row(runs: int) -> Row:
    """`ingest_form`'s import and first request against the minimal handler's, each side in fresh
    processes (alternating), CPU time; the median of `runs`."""
    env = {**_lambda_env([ROOT / "shared"]), "POWERTOOLS_TRACE_DISABLED": "true"}
    sides: dict[str, list[tuple[float, float]]] = {"ingest": [], "baseline": []}
    for _ in range(runs + 1):
        for side, figures in sides.items():
            command = [sys.executable, "-m", "leadscore.bench.startup", "cold", side]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
            if done.returncode != 0:
                return Row(COLD_PATH, f"not measured: {done.stderr.strip()[-300:]}", "(reported)", None)
            imported, first = json.loads(done.stdout.strip().splitlines()[-1])
            figures.append((imported, first))
    median = {
        side: tuple(statistics.median(run[i] for run in figures[1:]) for i in (0, 1))  # first: disk warm-up
        for side, figures in sides.items()
    }
    (ingest_import, ingest_first), (base_import, base_first) = median["ingest"], median["baseline"]
    ratio = (ingest_import + ingest_first) / (base_import + base_first)
    return Row(
        path=COLD_PATH,
        measured=f"{ratio:.2f}x",
        target="(reported: the import row's target, read for the whole cold start)",
        met=None,
        baseline=f"minimal handler: import with its client {base_import * 1000:.0f} + first put_item "
        f"{base_first * 1000:.0f} ms",
        detail=f"ingest_form: import {ingest_import * 1000:.0f} + first request {ingest_first * 1000:.0f} ms "
        f"(clients, both secrets, the models it validates), median of {runs} fresh processes each",
    )


def _cold(side: str) -> tuple[float, float]:
    """In a fresh process: CPU seconds of the side's import (the minimal handler's includes its
    client, as the import baseline does), then of its first request (canned HTTP)."""
    import time

    prepared = _prepare_ingest()
    started = time.process_time()
    function = _ingest_form_handler() if side == "ingest" else _minimal_handler()
    imported = time.process_time() - started
    _install_canned_send(prepared)
    from leadscore.local.glue import LambdaContext

    started = time.process_time()
    answer = function(prepared["event"], LambdaContext(function_name="bench"))
    first = time.process_time() - started
    assert answer["statusCode"] in (200, 202), answer
    return imported, first


def _ingest_form_handler() -> Any:
    """The shipped `ingest_form` handler, imported from its file (as Lambda loads it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ingest_form_handler", FUNCTIONS / "ingest_form" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def _prepare_ingest() -> dict[str, Any]:
    """The signed form request, and the environment both handlers read (no AWS call)."""
    prepared = _signed_form_event()
    os.environ.update(
        LEDGER_TABLE="bench-ledger",
        PROFILES_TABLE="bench-profiles",
        WEBHOOK_SECRET_NAME="bench-webhooks",
        LEAD_KEY_SECRET="bench-lead-key",
        SIGNATURE_TOLERANCE_SECONDS="86400",
    )
    return prepared


def _install_canned_send(prepared: dict[str, Any]) -> None:
    import botocore.httpsession

    secrets = {
        "bench-webhooks": json.dumps({"generic": {"secret": prepared["secret"]}}),
        "bench-lead-key": "bench-lead-key-" + "0" * 48,
    }
    botocore.httpsession.URLLib3Session.send = _canned_send(secrets)


def _canned_send(secrets: dict[str, str]) -> Any:
    """botocore's HTTP send answering from canned responses: PutItem succeeds, GetSecretValue
    returns the named secret. Both handlers' clients go through it alike."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Any:
            yield self.body

    def send(self: Any, request: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        body = b"{}"
        if target.endswith("GetSecretValue"):
            secret_id = json.loads(request.body)["SecretId"]
            body = json.dumps({"Name": secret_id, "SecretString": secrets[secret_id]}).encode()
        headers = {"x-amzn-requestid": "bench", "content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 200, headers, Raw(body))

    return send


def _signed_form_event() -> dict[str, Any]:
    import hashlib
    import hmac
    import time
    import uuid
    from datetime import UTC, datetime

    secret = "whsec_" + base64.b64encode(b"bench-generic-key-0123456789abcdef").decode()
    body = (ROOT / "events" / "providers" / "generic" / "demo_request.json").read_bytes()
    msg_id, sent = f"msg_{uuid.uuid4().hex}", int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{msg_id}.{sent}.".encode() + body, hashlib.sha256).digest())
    now = datetime.now(UTC)
    return {
        "secret": secret,
        "event": {
            "version": "2.0",
            "routeKey": "POST /v1/forms/{provider}",
            "rawPath": "/v1/forms/generic",
            "rawQueryString": "",
            "headers": {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(sent),
                "webhook-signature": "v1," + signature.decode(),
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "bench",
                "domainName": "bench.execute-api.localhost",
                "domainPrefix": "bench",
                "http": {
                    "method": "POST",
                    "path": "/v1/forms/generic",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                    "userAgent": "bench",
                },
                "requestId": "bench",
                "routeKey": "POST /v1/forms/{provider}",
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "pathParameters": {"provider": "generic"},
            "isBase64Encoded": False,
            "body": body.decode(),
        },
    }


def _minimal_handler() -> Any:
    """The baseline: what any Powertools HTTP handler recording one event does, nothing more."""
    import hashlib

    import boto3
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit

    logger, tracer, metrics = Logger(service="baseline"), Tracer(), Metrics()
    app = APIGatewayHttpResolver()
    table = boto3.resource("dynamodb").Table(os.environ["LEDGER_TABLE"])

    @app.post("/v1/forms/<provider>")
    def submit(provider: str) -> Response:
        payload = app.current_event.json_body
        event_id = app.current_event.headers["webhook-id"]
        table.meta.client.put_item(
            TableName=table.name,
            Item={
                "lead_id": hashlib.sha256(payload["email"].lower().encode()).hexdigest(),
                "event_id": event_id,
                "email": payload["email"].lower(),
                "event_type": payload["event"],
                "provider": provider,
                "occurred_at": payload["occurred_at"],
                "received_at": payload["occurred_at"],
                "attributes": payload["attributes"],
                "expires_at": 1_900_000_000,
                "url": payload["url"],
            },
            ConditionExpression="attribute_not_exists(event_id)",
        )
        metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=1)
        return Response(202, "application/json", json.dumps({"accepted": 1, "event_ids": [event_id]}))

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


def _per_call_us(function: Any, calls: int, tries: int = 1) -> float:
    """CPU microseconds per call: the best of `tries` runs of `calls` calls."""
    import time

    best = float("inf")
    for _ in range(tries):
        started = time.process_time()
        for _ in range(calls):
            function()
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return best


def _measure_warm(batches: int, per_batch: int) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    from leadscore.adapters import get_adapter, read_delivery
    from leadscore.config import Settings
    from leadscore.http import webhook_request
    from leadscore.ingest import ingest_webhook
    from leadscore.keys import LeadKeys
    from leadscore.local.glue import LambdaContext
    from leadscore.secrets import provider_secret
    from leadscore.services import services

    prepared = _prepare_ingest()
    _install_canned_send(prepared)
    sides = {"ingest": _ingest_form_handler(), "baseline": _minimal_handler()}
    context = LambdaContext(function_name="bench")
    event = prepared["event"]
    for handler in sides.values():  # first calls: clients, secrets, the adapters' registry
        answer = handler(event, context)
        assert answer["statusCode"] in (200, 202), answer
    per_request: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(batches):  # alternate, so a busy moment of the machine hits both alike
        for side, handler in sides.items():
            per_request[side].append(_per_call_us(lambda h=handler: h(event, context), per_batch))

    # The ingest request's parts, each timed alone on the same input.
    settings = Settings.from_env()
    request = webhook_request(APIGatewayProxyEventV2(event), "generic")
    adapter = get_adapter("generic", "form")
    options = {"tolerance_seconds": settings.signature_tolerance_seconds}
    options.update(provider_secret(settings.webhook_secret_name, "generic"))
    ledger, ports = services(settings).ledger, services(settings).ports
    found = read_delivery(adapter, request, options, ports).events
    keys = LeadKeys.from_settings(settings)
    events = keys.assign(found)
    calls = max(per_batch, 50)
    timed = {
        "settings": _per_call_us(Settings.from_env, calls, 3),
        "event -> request": _per_call_us(
            lambda: webhook_request(APIGatewayProxyEventV2(event), "generic"), calls, 3
        ),
        "verify + parse": _per_call_us(lambda: read_delivery(adapter, request, options, ports), calls, 3),
        "lead ids": _per_call_us(lambda: LeadKeys.from_settings(settings).assign(found), calls, 3),
        "item + put_item": _per_call_us(lambda: ledger.record_all(events, request.received_at), calls, 3),
    }
    whole = _per_call_us(lambda: ingest_webhook(request, "form", settings), calls, 3)
    ingest_us = statistics.median(per_request["ingest"])
    inside = sum(value for key, value in timed.items() if key != "event -> request")
    timed["rest of ingest_webhook (log line, result)"] = max(0.0, whole - inside)
    timed["Powertools, route, metrics, answer"] = max(0.0, ingest_us - whole - timed["event -> request"])
    return {
        "ingest_us": ingest_us,
        "baseline_us": statistics.median(per_request["baseline"]),
        "parts": list(timed.items()),
    }


# ------------------------------------------------------------------------------------------ layer
def _python312() -> str | None:
    """A python3.12 with pip to build the layer as SAM does: LAYER_PYTHON, python3.12 on the PATH,
    or pyenv's newest 3.12."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12"))
    candidates = [os.environ.get("LAYER_PYTHON"), shutil.which("python3.12"), *map(str, pyenv[-1:])]
    for candidate in filter(None, candidates):
        check = "import sys, pip; print(sys.version_info[:2])"
        done = subprocess.run([candidate, "-c", check], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return candidate
    return None


def layer_row(dest: Path, code: Path, quick: bool) -> Row:
    target = "runtime code + pinned deps only; no botocore of its own"
    if quick:
        size = layer.size_bytes(code)
        return Row(LAYER_PATH, f"{size / 1e6:.1f} MB (runtime code only: --quick)", target, None)
    python = _python312()
    command = [python, "-m", "leadscore.layer", str(dest)] if python else None
    how = "as `sam build` does (python3.12, bytecode)"
    if command is None:
        command = [sys.executable, "-m", "leadscore.layer", str(dest), "--no-compile"]
        how = "WITHOUT bytecode (no python3.12 found: set LAYER_PYTHON)"
    done = subprocess.run(
        command, cwd=ROOT / "shared", capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        return Row(LAYER_PATH, f"not measured: {done.stderr.strip()[-300:]}", target, None)
    python_dir = dest / "python"
    size = layer.size_bytes(dest)
    shipped = {path.name for path in python_dir.iterdir()}
    second_sdk = sorted(shipped & {"botocore", "boto3", "s3transfer"})
    dev_only = [
        name for name in ("local", "learn", "bench", "commands") if (python_dir / "leadscore" / name).exists()
    ]
    biggest = sorted(
        (
            (layer.size_bytes(path) if path.is_dir() else path.stat().st_size, path.name)
            for path in python_dir.iterdir()
        ),
        reverse=True,
    )[:5]
    return Row(
        path=LAYER_PATH,
        measured=f"{size / 1e6:.1f} MB",
        target=target,
        met=not second_sdk and not dev_only,
        baseline=f"built {how}",
        detail="largest: "
        + ", ".join(f"{name} {bytes_ / 1e6:.1f} MB" for bytes_, name in biggest)
        + (f"; SHIPS {second_sdk}" if second_sdk else "")
        + (f"; SHIPS dev code {dev_only}" if dev_only else ""),
    )


def _main(argv: list[str]) -> int:
    """The cold- and warm-ingest subprocesses: stdout goes to /dev/null while handlers run (their logs and
    metrics are written alike on both sides); the result is the last line on the real stdout."""
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    if argv[0] == "cold":  # `cold ingest|baseline`
        result: Any = _cold(argv[1])
    else:  # `BATCHES PER_BATCH`
        result = _measure_warm(int(argv[0]), int(argv[1]))
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
