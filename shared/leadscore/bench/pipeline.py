"""`make bench`: what one ingested event costs in DynamoDB requests, how fast the pipeline runs,
and how long `leadscore calibrate` and `leadscore backtest` take on the X Education export at
1x, 4x and 16x its size (rows replicated with fresh ids).

Runs the real handlers through the local runner against in-process moto (resources from
template.yaml) and counts every DynamoDB request the emulator receives, by function and
operation. Prints figures; asserts nothing (tests assert correctness, benchmarks measure).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import importlib.util
import io
import json
import os
import random
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READ_OPERATIONS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
SECRET = "whsec_" + base64.b64encode(b"benchmark-signing-key-0123456789").decode()
REPO = Path(__file__).resolve().parents[3]
X_EDUCATION = REPO.parent / "shared" / "data" / "x-education" / "Leads.csv"
X_EDUCATION_MAPPING = REPO / "events" / "calibration" / "x-education-mapping.yaml"
# The README's worked example: columns that leak the outcome, and the CRM sequence number.
X_EDUCATION_IGNORED = (
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "Lead Number",
)


class RequestCounter:
    """Counts DynamoDB requests reaching the emulator, attributed to the function running."""

    def __init__(self) -> None:
        self.current = "outside"
        self.counts: Counter[tuple[str, str]] = Counter()
        self.items_written: Counter[str] = Counter()  # a transaction writes each of its items
        self.tables: Counter[tuple[str, str, str]] = Counter()  # (function, operation, table)

    @contextmanager
    def installed(self) -> Iterator[None]:
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.process_request
        counter = self

        def process_request(stub: Any, request: Any) -> Any:
            target = str(request.headers.get("X-Amz-Target", b"") or b"")
            target = target.split("'")[1] if target.startswith("b'") else target
            if target.startswith("DynamoDB_20120810."):
                operation = target.split(".", 1)[1]
                counter.counts[(counter.current, operation)] += 1
                if operation == "TransactWriteItems":
                    counter.items_written[counter.current] += len(json.loads(request.body)["TransactItems"])
                elif operation in WRITE_OPERATIONS:
                    counter.items_written[counter.current] += 1
                body = request.body or b""
                if operation in WRITE_OPERATIONS | READ_OPERATIONS and b'"TableName"' in body:
                    table = str(json.loads(request.body).get("TableName", ""))
                    counter.tables[(counter.current, operation, table)] += 1
            return original(stub, request)

        BotocoreStubber.process_request = process_request  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            BotocoreStubber.process_request = original  # type: ignore[method-assign]

    def clear(self) -> None:
        self.counts.clear()
        self.items_written.clear()
        self.tables.clear()

    def totals(self, operations: set[str]) -> Counter[str]:
        result: Counter[str] = Counter()
        for (function, operation), n in self.counts.items():
            if operation in operations:
                result[function] += n
        return result


def _environment() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_METRICS_NAMESPACE": "LeadScoreBench",
            "POWERTOOLS_SERVICE_NAME": "leadscore",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]


class _Pipeline:
    """The real handlers behind the local runner, with requests attributed to the function running."""

    def __init__(self, runner: Any, counter: RequestCounter) -> None:
        self.runner = runner
        self.counter = counter
        original_invoke = runner.invoke

        def invoke(function_id: str, event: dict[str, Any], trigger: str) -> Any:
            counter.current = function_id
            try:
                return original_invoke(function_id, event, trigger)
            finally:
                counter.current = "outside"

        runner.invoke = invoke

    def post(self, payload: dict[str, Any], msg_id: str) -> None:
        from leadscore.local import signing

        body = json.dumps(payload).encode()
        headers = signing.standard_webhook_headers(body, SECRET, msg_id)
        status, _, answer = self.runner.handle_http("POST", "/v1/forms/generic", headers, body)
        if status != 202:
            raise RuntimeError(f"bench request refused: {status} {answer!r}")


def _hot_path(pipe: _Pipeline, emails: list[str], events: int, rng: random.Random) -> dict[str, Any]:
    """Engagement events for leads that stay in their stage."""
    pipe.counter.clear()
    now = datetime.now(UTC)
    kinds = ["email_delivered", "email_opened", "page_viewed", "email_clicked"]
    started = time.perf_counter()
    for i in range(events):
        occurred = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        payload = {
            "email": rng.choice(emails),
            "event": rng.choice(kinds),
            "url": f"https://example.com/blog/{rng.randint(1, 50)}",
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        pipe.post(payload, f"hot-{i}")
        if i % 100 == 99:
            pipe.runner.settle()
    pipe.runner.settle()
    elapsed = time.perf_counter() - started
    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    return {
        "events": events,
        "write_requests_per_event": round(sum(writes.values()) / events, 3),
        "items_written_per_event": round(sum(pipe.counter.items_written.values()) / events, 3),
        "read_requests_per_event": round(sum(reads.values()) / events, 3),
        "writes_by_function": {k: round(v / events, 3) for k, v in sorted(writes.items())},
        "requests": {f"{f} {op}": n for (f, op), n in sorted(pipe.counter.counts.items())},
        "events_per_second_through_local_runner": round(events / elapsed, 1),
    }


def _stack_keys() -> Any:
    """The lead-id keys `provision` gave the bench's stack (the TEST-ONLY key)."""
    from leadscore.keys import LeadKeys
    from leadscore.local.stack import local_generated_secrets

    return LeadKeys.keyed(local_generated_secrets()["LeadKeySecret"])


def _stage_changes(pipe: _Pipeline, profiles: Any, leads: int) -> dict[str, Any]:
    """Good-fit leads that request a demo and look at pricing: lead -> MQL -> SQL."""
    keys = _stack_keys()
    pipe.counter.clear()
    promoted = [f"vp{i}@globex{i}.com" for i in range(leads)]
    attributes = {"job_title": "VP Sales", "company_size": 900, "industry": "Software", "country": "US"}
    for i, email in enumerate(promoted):
        pipe.post({"email": email, "event": "demo_requested", "attributes": attributes}, f"stage-{i}")
        pipe.post(
            {"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"}, f"stage-p-{i}"
        )
    pipe.runner.settle()
    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    transitions = sum(
        int(profiles.get_item(Key={"lead_id": keys.lead_id_for(e)})["Item"]["stage_seq"]) for e in promoted
    )
    return {
        "events": 2 * len(promoted),
        "transitions": transitions,
        "write_requests_per_transition": round(sum(writes.values()) / transitions, 2),
        "read_requests_per_transition": round(sum(reads.values()) / transitions, 2),
        "writes_by_function": dict(sorted(writes.items())),
        "reads_by_function": dict(sorted(reads.items())),
    }


def _identity(
    pipe: _Pipeline, ledger: Any, emails: list[str], changes: int, events: int, rng: random.Random
) -> dict[str, Any]:
    """Email changes (each folds the new address's lead into the old one's), then engagement
    events sent to the new addresses, which are now aliases of the old addresses' leads. The
    change events are recorded straight into the ledger (the ingest put, counted `outside`):
    which providers send them is the adapters' business, what they cost here is the pipeline's."""
    from leadscore.domain import EventType, LeadEvent, Provider, event_id_for

    pipe.counter.clear()
    now = datetime.now(UTC)
    moved = {email: email.replace("@", ".moved@", 1) for email in emails[:changes]}
    for i, (old, new) in enumerate(moved.items()):
        change = LeadEvent(
            event_id=event_id_for("bench", f"change-{i}"),
            email=new,
            previous_email=old,
            event_type=EventType.EMAIL_CHANGED,
            occurred_at=now - timedelta(minutes=1),
            provider=Provider.GENERIC,
        )
        ledger.record(_stack_keys().assign([change])[0], now)  # ids as ingest would assign them
    pipe.runner.settle()
    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    merge = {
        "changes": changes,
        "write_requests_per_change": round(sum(writes.values()) / changes, 2),
        "items_written_per_change": round(sum(pipe.counter.items_written.values()) / changes, 2),
        "read_requests_per_change": round(sum(reads.values()) / changes, 2),
        "requests": {f"{f} {op}": n for (f, op), n in sorted(pipe.counter.counts.items())},
    }
    pipe.counter.clear()
    aliases = list(moved.values())
    for i in range(events):
        payload = {"email": rng.choice(aliases), "event": "email_opened", "occurred_at": now.isoformat()}
        pipe.post(payload, f"alias-{i}")
    pipe.runner.settle()
    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    alias = {
        "events": events,
        "write_requests_per_event": round(sum(writes.values()) / events, 3),
        "items_written_per_event": round(sum(pipe.counter.items_written.values()) / events, 3),
        "read_requests_per_event": round(sum(reads.values()) / events, 3),
        "requests": {f"{f} {op}": n for (f, op), n in sorted(pipe.counter.counts.items())},
    }
    return {"merge": merge, "alias": alias}


def _accounts(pipe: _Pipeline, leads: int, events: int, rng: random.Random) -> dict[str, Any]:
    """The shipped catalog with account scores (bundled:catalog): engagement events of people at
    ten companies. Each changes its lead's account summary: what does that cost on top of the hot
    path? (Expected: one conditional UpdateItem on the account, no read.)"""
    for environment in pipe.runner.environments.values():
        environment["SCORING_MODEL"] = "bundled:catalog"
    emails = [f"buyer{i}@account-{i % 10}.example" for i in range(leads)]
    for i, email in enumerate(emails):
        pipe.post(
            {"email": email, "event": "form_submitted", "attributes": {"job_title": "Analyst"}}, f"a-{i}"
        )
    pipe.runner.settle()
    pipe.counter.clear()
    now = datetime.now(UTC)
    for i in range(events):
        occurred = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        payload = {
            "email": rng.choice(emails),
            "event": rng.choice(["email_opened", "email_clicked", "page_viewed"]),
            "url": f"https://example.com/blog/{rng.randint(1, 50)}",
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        pipe.post(payload, f"acct-{i}")
        if i % 100 == 99:
            pipe.runner.settle()
    pipe.runner.settle()
    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    on_accounts = Counter(
        {(f, op): n for (f, op, table), n in pipe.counter.tables.items() if "AccountsTable" in table}
    )
    member_writes = on_accounts[("EvaluateThresholdsFunction", "UpdateItem")]
    return {
        "events": events,
        "account_member_writes_per_event": round(member_writes / events, 3),
        "write_requests_per_event": round(sum(writes.values()) / events, 3),
        "read_requests_per_event": round(sum(reads.values()) / events, 3),
        "account_requests": {f"{f} {op}": n for (f, op), n in sorted(on_accounts.items())},
        "writes_by_function": {k: round(v / events, 3) for k, v in sorted(writes.items())},
    }


@contextmanager
def _local_pipeline(
    counter: RequestCounter, scoring_model: str | None = None
) -> Iterator[tuple[_Pipeline, Any, Any]]:
    """A fresh local stack in moto, its requests counted: (pipeline, physical resources, session)."""
    _environment()
    import boto3
    from moto import mock_aws

    from leadscore import pipeline
    from leadscore.local import emulator
    from leadscore.local.stack import Runner, provision
    from leadscore.local.template import load_template, transform

    with mock_aws(), emulator.atomic_requests(), counter.installed():
        transformed = transform(load_template())
        session = boto3.Session(region_name="us-east-1")
        from leadscore.bench import tracking

        secret = json.dumps({"generic": {"secret": SECRET}, "track": tracking.SECRET_ENTRY})
        physical = provision(transformed, session, prefix="bench-", secret_strings={"WebhookSecret": secret})
        pipeline.reset()
        runner = Runner(transformed, physical, session, base_environment={}, log=None)
        if scoring_model is not None:
            for environment in runner.environments.values():
                environment["SCORING_MODEL"] = scoring_model
        yield _Pipeline(runner, counter), physical, session
        pipeline.reset()


def _seed_leads(pipe: _Pipeline, leads: int) -> list[str]:
    """Leads arrive; low fit, they stay in the first stage."""
    emails = [f"reader{i}@example-{i % 37}.com" for i in range(leads)]
    for i, email in enumerate(emails):
        pipe.post(
            {"email": email, "event": "form_submitted", "attributes": {"job_title": "Analyst"}}, f"seed-{i}"
        )
    pipe.runner.settle()
    return emails


def run(leads: int, events: int, seed: int) -> dict[str, Any]:
    from leadscore.bench import tracking
    from leadscore.repository import EventLedger

    counter = RequestCounter()
    # The lead path on its own (one model, no accounts); `catalog_figures` measures more models and
    # `_accounts` what the shipped catalog's account scores add.
    with _local_pipeline(counter, "bundled:default") as (pipe, physical, session):
        emails = _seed_leads(pipe, leads)
        hot = _hot_path(pipe, emails, events, random.Random(seed))
        profiles = session.resource("dynamodb").Table(physical.tables["LeadProfilesTable"])
        stage = _stage_changes(pipe, profiles, 20)
        ledger = EventLedger(physical.tables["EventLedgerTable"], 400, session.resource("dynamodb"))
        identity = _identity(pipe, ledger, emails, min(50, leads), min(200, events), random.Random(seed))
        website = tracking.figures(pipe, min(20, leads), 5)
        accounts = _accounts(pipe, min(50, leads), min(300, events), random.Random(seed))
    return {
        "hot_path": hot,
        "stage_changes": stage,
        "identity": identity,
        "website": website,
        "accounts": accounts,
    }


def catalog_figures(sizes: tuple[int, ...], leads: int, events: int, seed: int) -> dict[str, Any]:
    """The hot path under catalogs of 1, 2, ... models (copies of the shipped default, each with its
    own id, all applying to every lead): what one event that moves no stage costs, whatever the
    number of models, and what each model adds to the worst-case profile item."""
    from leadscore.model_store import load_catalog
    from leadscore.repository.profiles import worst_case_size

    rows = []
    default = (Path(__file__).parents[1] / "models" / "default.yaml").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            where = Path(folder) / f"catalog-{size}"
            where.mkdir()
            (where / "default.yaml").write_text(default, encoding="utf-8")
            entries = "\n".join(f"  - {{id: m{n}, file: default.yaml}}" for n in range(size))
            (where / "catalog.yaml").write_text(f"name: bench\nmodels:\n{entries}\n", encoding="utf-8")
            counter = RequestCounter()
            with _local_pipeline(counter, str(where)) as (pipe, _, _):
                hot = _hot_path(pipe, _seed_leads(pipe, leads), events, random.Random(seed))
            rows.append(
                {
                    "models": size,
                    "write_requests_per_event": hot["write_requests_per_event"],
                    "items_written_per_event": hot["items_written_per_event"],
                    "read_requests_per_event": hot["read_requests_per_event"],
                    "worst_case_profile_bytes": worst_case_size(load_catalog(str(where))),
                }
            )
    return {"measured": True, "events": events, "sizes": rows}


def _replicated(data: Path, copies: int, out: Path) -> int:
    """`data` written `copies` times to `out`, each copy with fresh lead ids (and Lead Numbers, so
    a sequence number stays distinct per row); returns the number of leads written."""
    with data.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        rows = list(reader)
    ids = header.index("Prospect ID")
    numbers = header.index("Lead Number") if "Lead Number" in header else None
    with out.open("w", encoding="utf-8", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(header)
        for copy in range(copies):
            for row in rows:
                fresh = list(row)
                if copy:
                    fresh[ids] = f"{row[ids]}-copy{copy}"
                    if numbers is not None and row[numbers]:
                        fresh[numbers] = str(int(float(row[numbers])) + copy * 10_000_000)
                writer.writerow(fresh)
    return copies * len(rows)


def _timed_cli(argv: list[str]) -> tuple[int, float, str]:
    from leadscore.cli import main as cli

    quiet = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        code = cli(argv)
    return code, time.perf_counter() - started, quiet.getvalue()


def calibrate_figures(
    data: Path, mapping: Path = X_EDUCATION_MAPPING, scales: tuple[int, ...] = (1, 4, 16)
) -> dict[str, Any]:
    """Time `leadscore calibrate` and `leadscore backtest` on the X Education export (the README's
    worked example) at each scale (the rows replicated with fresh ids), or say why not: the learn
    extra is optional and the data lives outside the repo."""
    if importlib.util.find_spec("sklearn") is None:
        return {"measured": False, "why": "the learn extra is not installed (make install)"}
    if not data.is_file():
        return {"measured": False, "why": f"no X Education data at {data}"}
    if not mapping.is_file():
        return {"measured": False, "why": f"no calibration mapping at {mapping}"}
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        for scale in scales:
            history, model = Path(out) / f"leads-{scale}x.csv", Path(out) / f"model-{scale}x.yaml"
            leads = _replicated(data, scale, history)
            argv = ["calibrate", str(history), "--target", "Converted", "--id-column", "Prospect ID"]
            argv += [arg for column in X_EDUCATION_IGNORED for arg in ("--ignore-column", column)]
            code, calibrate_s, said = _timed_cli([*argv, "--mapping", str(mapping), "--out", str(model)])
            if code != 0:
                return {"measured": False, "why": f"calibrate exited with {code}: {said[-500:]}"}
            backtest = ["backtest", str(model), str(history), "--target", "Converted"]
            code, backtest_s, said = _timed_cli([*backtest, "--id-column", "Prospect ID", "--json"])
            if code != 0:
                return {"measured": False, "why": f"backtest exited with {code}: {said[-500:]}"}
            figures.append(
                {
                    "scale": scale,
                    "leads": leads,
                    "calibrate_seconds": round(calibrate_s, 1),
                    "calibrate_rows_per_second": round(leads / calibrate_s),
                    "backtest_seconds": round(backtest_s, 1),
                    "backtest_rows_per_second": round(leads / backtest_s),
                }
            )
    first = figures[0]
    return {
        "measured": True,
        "leads": first["leads"],
        "seconds": first["calibrate_seconds"],
        "scales": figures,
    }


X_EDUCATION_LEADS = 9_240


def history_figures(scales: tuple[int, ...]) -> dict[str, Any]:
    """Time `calibrate --history` and `backtest --history` on the synthetic funnel of
    tests/funnel.py (run from a checkout) at each multiple of the X Education size, split by lead
    70/30 as the tests split it."""
    if importlib.util.find_spec("sklearn") is None:
        return {"measured": False, "why": "the learn extra is not installed (make install)"}
    try:
        from tests.funnel import generate, split
    except ImportError:
        return {"measured": False, "why": "tests/funnel.py not importable (run from the repository root)"}
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        for scale in scales:
            folder = Path(out)
            whole, train, test = folder / "all.jsonl", folder / "train.jsonl", folder / "test.jsonl"
            generate(whole, leads=X_EDUCATION_LEADS * scale, seed=scale)
            split(whole, train, test)
            lines = sum(1 for _ in train.open(encoding="utf-8"))
            model = folder / "model.yaml"
            code, calibrate_s, said = _timed_cli(["calibrate", "--history", str(train), "--out", str(model)])
            if code != 0:
                return {"measured": False, "why": f"calibrate --history exited with {code}: {said[-500:]}"}
            code, backtest_s, said = _timed_cli(["backtest", str(model), "--history", str(test), "--json"])
            if code != 0:
                return {"measured": False, "why": f"backtest --history exited with {code}: {said[-500:]}"}
            test_lines = sum(1 for _ in test.open(encoding="utf-8"))
            figures.append(
                {
                    "scale": scale,
                    "leads": X_EDUCATION_LEADS * scale,
                    "train_events": lines,
                    "calibrate_seconds": round(calibrate_s, 1),
                    "calibrate_events_per_second": round(lines / calibrate_s),
                    "backtest_seconds": round(backtest_s, 1),
                    "backtest_events_per_second": round(test_lines / backtest_s),
                    "held_out_auc": next(
                        json.loads(line)["auc"] for line in said.splitlines() if line.startswith("{")
                    ),
                }
            )
    return {"measured": True, "scales": figures}


def _print_accounts(accounts: dict[str, Any]) -> None:
    print(f"Account scores (bundled:catalog): {accounts['events']} engagement events, people at 10 companies")
    print(
        f"  account member writes per event: {accounts['account_member_writes_per_event']}"
        "  (target: at most 1 extra write, no read)"
    )
    print(f"  DynamoDB write requests per event: {accounts['write_requests_per_event']}")
    print(f"  DynamoDB read requests per event:  {accounts['read_requests_per_event']}")
    for name, n in accounts["account_requests"].items():
        print(f"    {name:<45} {n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Count DynamoDB requests per ingested event.")
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--x-education", type=Path, default=X_EDUCATION, metavar="LEADS.csv", help="data to calibrate on"
    )
    parser.add_argument(
        "--no-calibrate", action="store_true", help="skip timing calibrate and backtest (minutes at 16x)"
    )
    parser.add_argument(
        "--scales",
        default="",
        metavar="N,N,...",
        help="X Education sizes to time calibrate and backtest at here too (default: none; the "
        "calibrate area times calibrate at 1x, 4x, 16x and 1M leads)",
    )
    parser.add_argument(
        "--catalog-sizes",
        default="1,2,6",
        metavar="N,N,...",
        help="numbers of models to measure the hot path with (default 1,2,6)",
    )
    parser.add_argument(
        "--history-scales",
        default="1,4,16",
        metavar="N,N,...",
        help="sizes (multiples of X Education's 9,240 leads) to time calibrate/backtest --history at "
        "on the synthetic funnel (default 1,4,16; 16x takes about 6 minutes and 7 GB)",
    )
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the handlers' own metric and log lines are not figures
        result = run(args.leads, args.events, args.seed)
        scales = tuple(int(s) for s in args.scales.split(",") if s)
        result["calibrate"] = (
            {
                "measured": False,
                "why": "--no-calibrate" if args.no_calibrate else "the calibrate area times it",
            }
            if args.no_calibrate or not scales
            else calibrate_figures(args.x_education, scales=scales)
        )
        result["history"] = (
            {"measured": False, "why": "--no-calibrate"}
            if args.no_calibrate
            else history_figures(tuple(int(s) for s in args.history_scales.split(",")))
        )
    sizes = tuple(int(n) for n in args.catalog_sizes.split(",") if n)
    result["catalogs"] = catalog_figures(sizes, min(args.leads, 100), min(args.events, 300), args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    """The figures, as a person reads them."""
    from leadscore.bench import tracking

    hot, stage, calibrate = result["hot_path"], result["stage_changes"], result["calibrate"]
    print(f"Hot path: {hot['events']} ingested events that change no stage")
    print(f"  DynamoDB write requests per event: {hot['write_requests_per_event']}  (budget: 2)")
    print(
        f"  items written per event: {hot['items_written_per_event']}"
        "  (the ledger put, then one transaction: ledger marked applied + profile)"
    )
    print(f"  DynamoDB read requests per event:  {hot['read_requests_per_event']}  (budget: 0)")
    for name, n in hot["requests"].items():
        print(f"    {name:<45} {n}")
    print(f"  throughput through the local runner: {hot['events_per_second_through_local_runner']} events/s")
    print(f"Stage changes: {stage['transitions']} transitions from {stage['events']} events")
    print(f"  write requests per transition: {stage['write_requests_per_transition']}")
    print(f"    by function: {stage['writes_by_function']}")
    print(f"  read requests per transition:  {stage['read_requests_per_transition']}")
    merge, alias = result["identity"]["merge"], result["identity"]["alias"]
    print(f"Email changes: {merge['changes']} changes, each folding a lead into another")
    print(
        f"  write requests per change: {merge['write_requests_per_change']}"
        f"  (items written: {merge['items_written_per_change']}: the ledger put, the alias"
        " transaction (2 items), the fold transaction (3 items))"
    )
    print(
        f"  read requests per change:  {merge['read_requests_per_change']}"
        "  (consistent reads of both addresses' leads before and at the fold)"
    )
    for name, n in merge["requests"].items():
        print(f"    {name:<45} {n}")
    print(f"Events sent to a new address (an alias of the old address's lead): {alias['events']} events")
    print(
        f"  DynamoDB write requests per event: {alias['write_requests_per_event']}"
        "  (the hot path's 2, plus the transaction the alias refused)"
    )
    print(f"  items written per event: {alias['items_written_per_event']}")
    print(
        f"  DynamoDB read requests per event:  {alias['read_requests_per_event']}"
        "  (the refused transaction returns the alias item: it names the lead)"
    )
    for name, n in alias["requests"].items():
        print(f"    {name:<45} {n}")
    tracking.print_figures(result["website"])
    _print_accounts(result["accounts"])
    catalogs = result["catalogs"]
    print(f"Catalogs of models: {catalogs['events']} events that change no stage, per number of models")
    for row in catalogs["sizes"]:
        print(
            f"  {row['models']:>2} models: {row['write_requests_per_event']} write requests "
            f"({row['items_written_per_event']} items), {row['read_requests_per_event']} read requests "
            f"per event; worst-case profile item {row['worst_case_profile_bytes']} bytes"
        )
    if calibrate["measured"]:
        print(f"Calibrate: X Education, {calibrate['leads']} leads: {calibrate['seconds']} s")
        for row in calibrate["scales"]:
            print(
                f"  {row['scale']:>2}x ({row['leads']} leads): calibrate {row['calibrate_seconds']} s "
                f"({row['calibrate_rows_per_second']} rows/s), backtest {row['backtest_seconds']} s "
                f"({row['backtest_rows_per_second']} rows/s)"
            )
    else:
        print(f"Calibrate: not measured ({calibrate['why']})")
    history = result["history"]
    if history["measured"]:
        print("Calibrate --history: the synthetic funnel (tests/funnel.py), 70% to learn, 30% held out")
        for row in history["scales"]:
            print(
                f"  {row['scale']:>2}x ({row['leads']} leads, {row['train_events']} events to learn from): "
                f"calibrate {row['calibrate_seconds']} s ({row['calibrate_events_per_second']} events/s), "
                f"backtest {row['backtest_seconds']} s ({row['backtest_events_per_second']} events/s), "
                f"held-out AUC {row['held_out_auc']}"
            )
    else:
        print(f"Calibrate --history: not measured ({history['why']})")
