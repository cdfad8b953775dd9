"""`make bench`, area "rescore": what rescoring 1M leads on AWS takes, from figures measured here.

A rescore cannot run against AWS from a test machine, so the run is simulated: what does not depend
on AWS is measured in this run, the AWS side is a small cost model with stated assumptions.

Measured here (against moto, requests counted as `bench.pipeline.RequestCounter` counts them):
  - requests per page, by operation and table: leads seeded with EVENTS_PER_LEAD events each are
    rescored through the real rescore handler, one page of PAGE_SIZE leads per invocation;
  - the size of a profile item and of a lead's ledger (what DynamoDB bills reads and writes by);
  - CPU per lead of the pure replay (`rescore.replay`: the engine's public functions, so the figure
    follows every change to the engine) under the shipped catalog and under a learned-size model
    (LEARNED_RULES rules of which LEARNED_SEGMENTS segment rules, generated with a fixed seed).

The model, for N leads (`plan`):
  segments  S = rescore.segments_for(N, C)          C = RescoreMaxConcurrency (default 50)
  pages     per segment: ceil(N / S / P)            P = PAGE_SIZE
  page time t = hop + sum over serial requests r of n_r * latency_r
                  + ceil(ledger queries / W) * latency_Query    W = QUERY_WORKERS (concurrent)
                  + P * cpu_per_lead * core_factor / cpu_share  cpu_share = min(1, MB / 1769)
  wall time = pages per segment * t * ceil(S / C) + cold start
  cost      = Lambda GB-s (pages * t * GB) and requests, DynamoDB RRU (consistent: 1 per 4 KB read,
              a Scan bills the items it reads whole) and WRU (1 per KB written, indexes included),
              SQS requests (a send, a receive and a delete per page), at the prices in `Assumptions`.
The baseline is today's design in the same model and run: 8 segments, pages of 50, per lead one
GetItem, one Query and one write in sequence, 512 MB (issue 12: "3 sequential requests + CPU").
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from leadscore.bench.table import Row

TARGET_MINUTES = 10.0
LEADS = 1_000_000
EVENTS_PER_LEAD = 20  # issue 12's "a lead (~20 events)"
LEARNED_RULES = 926  # issue 12's learned model: 926 rules, 884 of them segments
LEARNED_SEGMENTS = 884
PATH = "rescore of 1M leads on AWS"


@dataclass(frozen=True)
class Assumptions:
    """What the model takes from AWS rather than from this run: p50 latencies in the same region
    (single-digit ms for small items, as DynamoDB documents), Lambda and prices (us-east-1, arm64,
    on-demand tables, standard queue)."""

    latency_ms: dict[str, float] = field(
        default_factory=lambda: {
            "GetItem": 4.0,
            "Query": 5.0,
            "Scan": 10.0,  # one page of lead ids
            "BatchGetItem": 15.0,  # up to 100 profiles
            "UpdateItem": 7.0,
            "TransactWriteItems": 12.0,
            "PutItem": 6.0,
            "DeleteItem": 6.0,
            "SendMessage": 8.0,
        }
    )
    hop_ms: float = 50.0  # SQS event source: a page's message to the next invocation
    cold_start_s: float = 1.5  # once per worker
    core_factor: float = 1.2  # a Graviton2 vCPU vs one core of this machine, pure Python
    concurrency: int = 50  # RescoreMaxConcurrency
    memory_mb: int = 1769  # RescoreFunction MemorySize: one full vCPU
    index_writes_per_lead: float = 2.0  # by_stage_score / review_due entries a rescore rewrites
    usd_per_gb_s: float = 0.0000133334
    usd_per_m_invocations: float = 0.20
    usd_per_m_rru: float = 0.125
    usd_per_m_wru: float = 0.625
    usd_per_m_sqs: float = 0.40


@dataclass(frozen=True)
class PageFigures:
    """Per page, as measured (or, for the baseline, as today's design issued them)."""

    leads: int  # leads per page
    serial: dict[str, float]  # operation -> requests per page, one after another
    ledger_queries: float  # Query requests per page, run `workers` at a time
    workers: int
    profile_bytes: float  # mean profile item
    ledger_bytes: float  # mean ledger of one lead (all its items)
    writes_per_lead: float  # profile writes per lead (UpdateItem or a transaction)
    transactional: float  # share of those writes that are transactions (2x WRU)


@dataclass(frozen=True)
class Plan:
    segments: int
    page_seconds: float
    wall_seconds: float
    gb_seconds: float
    rru: float
    wru: float
    sqs_requests: float
    usd: float
    peak_wru_per_second: float


def plan(
    page: PageFigures, cpu_per_lead_s: float, a: Assumptions, leads: int = LEADS, segments: int | None = None
) -> Plan:
    """Wall time and cost of rescoring `leads` leads (the formula in the module docstring)."""
    from leadscore import rescore

    segments = segments or rescore.segments_for(leads, a.concurrency)
    cpu_share = min(1.0, a.memory_mb / 1769)
    # an operation without a stated latency is taken as slow as a conditional write
    requests_ms = sum(n * a.latency_ms.get(op, a.latency_ms["UpdateItem"]) for op, n in page.serial.items())
    queries_ms = math.ceil(page.ledger_queries / page.workers) * a.latency_ms["Query"]
    cpu_ms = page.leads * cpu_per_lead_s * 1000 * a.core_factor / cpu_share
    page_seconds = (a.hop_ms + requests_ms + queries_ms + cpu_ms) / 1000
    pages_per_segment = math.ceil(leads / segments / page.leads)
    waves = math.ceil(segments / a.concurrency)
    wall = pages_per_segment * page_seconds * waves + a.cold_start_s
    pages = pages_per_segment * segments
    gb_seconds = pages * page_seconds * a.memory_mb / 1024
    profile_rru = math.ceil(page.profile_bytes / 4096)
    rru = (
        leads
        * (
            page.profile_bytes / 4096  # the Scan reads whole items, billed by the page's total size
            + profile_rru  # BatchGetItem (or GetItem): per item, rounded up
            + math.ceil(page.ledger_bytes / 4096)  # one Query per lead: its items' total size
        )
        + pages * 2
    )  # progress GetItem, rounded up
    write_units = math.ceil(page.profile_bytes / 1024) * (1 + page.transactional) + a.index_writes_per_lead
    wru = leads * page.writes_per_lead * write_units + pages * 1  # the page's progress
    sqs = pages * 3
    usd = (
        gb_seconds * a.usd_per_gb_s
        + pages / 1e6 * a.usd_per_m_invocations
        + rru / 1e6 * a.usd_per_m_rru
        + wru / 1e6 * a.usd_per_m_wru
        + sqs / 1e6 * a.usd_per_m_sqs
    )
    workers = min(segments, a.concurrency)
    peak = workers * page.leads * page.writes_per_lead * write_units / page_seconds
    return Plan(segments, page_seconds, wall, gb_seconds, rru, wru, sqs, usd, peak)


def baseline_page(measured: PageFigures) -> PageFigures:
    """Today's design (before batched reads), with this run's item sizes and write mix: pages of
    50; per page a GetItem of the job and a Query of its segments, the Scan, then per lead a
    GetItem, a Query and its write one after another, then the next page's message and the
    progress update."""
    leads = 50
    write = _write_ops(measured)
    serial: dict[str, float] = {"GetItem": 1 + leads, "Query": 1 + leads, "Scan": 1, "SendMessage": 1}
    serial["UpdateItem"] = 1  # the page's progress
    for op, share in write.items():
        serial[op] = serial.get(op, 0) + leads * measured.writes_per_lead * share
    return replace(
        measured, leads=leads, serial={k: n for k, n in serial.items() if n}, ledger_queries=0, workers=1
    )


def _write_ops(page: PageFigures) -> dict[str, float]:
    return {"UpdateItem": 1 - page.transactional, "TransactWriteItems": page.transactional}


# --- measuring ---------------------------------------------------------------------------------
def _events(keys: Any, email: str, rng: random.Random, now: datetime) -> list[Any]:
    """A lead's history: a form with who they are, then email and web engagement (~20 events)."""
    from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for

    attributes = LeadAttributes(
        job_title=rng.choice(["VP Sales", "Director of IT", "Analyst", "Marketing Manager", "CTO"]),
        company_size=rng.choice([8, 40, 150, 600, 4000]),
        industry=rng.choice(["Software", "Retail", "Healthcare", "Education", "Fintech"]),
        country=rng.choice(["US", "DE", "IN", "BR", "JP"]),
    )
    kinds = [
        (EventType.EMAIL_DELIVERED, None),
        (EventType.EMAIL_OPENED, None),
        (EventType.EMAIL_CLICKED, None),
        (EventType.PAGE_VIEWED, "https://example.com/pricing"),
        (EventType.PAGE_VIEWED, "https://example.com/blog/{n}"),
        (EventType.PAGE_VIEWED, "https://example.com/docs/{n}"),
        (EventType.WEBINAR_ATTENDED, None),
        (EventType.CONTENT_DOWNLOADED, None),
    ]
    history: list[tuple[EventType, str | None, LeadAttributes | None]] = [
        (EventType.FORM_SUBMITTED, None, attributes)
    ]
    history += [(*rng.choice(kinds), None) for _ in range(EVENTS_PER_LEAD - 1)]
    events = [
        LeadEvent(
            event_id=event_id_for("bench-rescore", f"{email}-{n}"),
            email=email,
            event_type=kind,
            url=url.format(n=rng.randint(1, 40)) if url else None,
            occurred_at=now - timedelta(minutes=rng.randint(0, 60 * 24 * 90)),
            provider=Provider.GENERIC,
            attributes=attrs or LeadAttributes(),
        )
        for n, (kind, url, attrs) in enumerate(history)
    ]
    return list(keys.assign(events))


def learned_size_model(seed: int = 12) -> Any:
    """The shipped default model grown to a learned model's size: LEARNED_SEGMENTS segment rules of
    1-4 conditions on the attributes a learned model splits on, and event rules on URL patterns up
    to LEARNED_RULES rules in all. Generated with a fixed seed: the same model every run."""
    from leadscore.model_store import load_model
    from leadscore.scoring.model import ScoringModel

    rng = random.Random(seed)
    data = load_model("bundled:default").model_dump(mode="json")
    data["version"] = f"learned-size-{seed}"
    choices: dict[str, Any] = {
        "seniority": ["c_level", "vp", "director", "manager", "individual"],
        "industry": ["software", "retail", "healthcare", "education", "fintech"],
        "region": ["north_america", "emea", "apac", "latam"],
        "email_domain_class": ["corporate", "free", "role"],
    }
    segments = []
    for n in range(LEARNED_SEGMENTS):
        attributes = rng.sample([*choices, "company_size"], rng.randint(1, 4))
        conditions: list[dict[str, Any]] = []
        for attribute in attributes:
            if attribute == "company_size":
                lower = rng.choice([10, 50, 200, 1000])
                conditions.append({"attribute": attribute, "lower": lower, "upper": lower * 5})
            else:
                conditions.append({"attribute": attribute, "values": rng.sample(choices[attribute], 2)})
        segments.append({"kind": "segment", "id": f"seg_{n}", "conditions": conditions, "points": 0.5})
    data["fit"]["rules"] += segments
    existing = sum(len(data[section]["rules"]) for section in ("fit", "engagement", "negative"))
    data["engagement"]["rules"] += [
        {
            "kind": "event",
            "id": f"topic_{n}",
            "event_types": ["page_viewed"],
            "url_pattern": f"*/{rng.choice(['blog', 'docs'])}/{n}*",
            "points": 1,
            "half_life_days": 30,
        }
        for n in range(LEARNED_RULES - existing)
    ]
    return ScoringModel.model_validate(data)


@dataclass
class Measured:
    page: PageFigures
    cases: list[tuple[Any, list[Any]]]  # (profile, its applied events) of every seeded lead
    requests: dict[str, float]  # "operation (per page|per lead)" -> requests, as counted


# Requests a page sends once per lead (the rest it sends once per page): the lead's ledger Query,
# its write (an UpdateItem, or a transaction with a catalog's rank entries), a fresh GetItem when
# its ledger moved between the page's two reads.
PER_LEAD = {
    ("Query", "EventLedgerTable"),
    ("UpdateItem", "LeadProfilesTable"),
    ("GetItem", "LeadProfilesTable"),
}
PER_LEAD_ANY_TABLE = {"TransactWriteItems"}  # names its tables inside, not as TableName


def measure(leads: int, seed: int) -> Measured:
    """Seed `leads` (at most a page) leads in moto, their events recorded and added to their
    profiles as score_events adds them, rescore them through the rescore handler (one page, real
    writes) and count every request it sends: once per page, and once per lead (scaled to a full
    page of PAGE_SIZE)."""
    from leadscore import pipeline
    from leadscore.bench.pipeline import RequestCounter, _local_pipeline
    from leadscore.bench.pipeline import _stack_keys as stack_keys
    from leadscore.config import Settings
    from leadscore.repository import EventLedger
    from leadscore.repository.ledger import QUERY_WORKERS
    from leadscore.repository.sizes import item_size
    from leadscore.rescore import PAGE_SIZE, StartRescore, run_command

    counter = RequestCounter()
    rng = random.Random(seed)
    with _local_pipeline(counter, "bundled:catalog") as (pipe, physical, session), quiet():
        now = datetime.now(UTC)
        ledger = EventLedger(physical.tables["EventLedgerTable"], 400, session.resource("dynamodb"))
        keys = stack_keys()
        settings = Settings.from_env(pipe.runner.environments["RescoreFunction"])
        # the profile stream is not run: stage decisions and announcements are not measured here
        for i in range(leads):
            for event in _events(keys, f"rescore{i}@bench{i % 97}.example", rng, now):
                ledger.record(event, now)
                pipeline.apply_ledger_record(ledger.item_for(event, now), settings, now)
        counter.clear()
        run_command(StartRescore(model="bundled:catalog", segments=1), settings)
        if pipe.runner.pump_queues() != 1:
            raise RuntimeError("the rescore job did not run its page")
        logical = {name: logical_id for logical_id, name in physical.tables.items()}
        per_page: Counter[str] = Counter()
        per_lead: Counter[str] = Counter()
        for (function, op, table), n in counter.tables.items():
            if function == "RescoreFunction":
                (per_lead if (op, logical[table]) in PER_LEAD else per_page)[op] += n
        for (function, op), n in counter.counts.items():
            if function == "RescoreFunction" and op not in per_lead and op not in per_page:
                (per_lead if op in PER_LEAD_ANY_TABLE else per_page)[op] += n  # BatchGetItem, transactions
        svc = pipeline.services(settings)
        ids = [str(i["lead_id"]) for i in svc.profiles.table.scan(ProjectionExpression="lead_id")["Items"]]
        profiles = svc.profiles.get_page(ids)
        ledgers = svc.ledger.events_of_many(ids, applied_only=True)
        profile_sizes = [item_size(item) for _, item in svc.profiles.get_many_items(ids)]
        ledger_items = session.resource("dynamodb").Table(physical.tables["EventLedgerTable"]).scan()["Items"]
    rescored = len(profiles)
    serial = {op: n + per_lead[op] / rescored * PAGE_SIZE for op, n in per_page.items()}
    serial.update({op: n / rescored * PAGE_SIZE for op, n in per_lead.items() if op not in per_page})
    serial["SendMessage"] = 1  # a page enqueues the next (all but a segment's last)
    writes = per_lead["UpdateItem"] + per_lead["TransactWriteItems"]
    page = PageFigures(
        leads=PAGE_SIZE,
        serial=serial,
        ledger_queries=serial.pop("Query", 0.0),
        workers=QUERY_WORKERS,
        profile_bytes=sum(profile_sizes) / max(1, len(profile_sizes)),
        ledger_bytes=sum(item_size(item) for item in ledger_items) / max(1, rescored),
        writes_per_lead=writes / max(1, rescored),
        transactional=per_lead["TransactWriteItems"] / max(1, writes),
    )
    counted: dict[str, float] = {f"{op} (per page)": n for op, n in per_page.items()}
    counted.update({f"{op} (per lead)": round(n / rescored, 3) for op, n in per_lead.items()})
    cases = [(profiles[i], ledgers[i]) for i in ids if i in profiles]
    return Measured(page, cases, dict(sorted(counted.items())))


@contextmanager
def quiet() -> Iterator[None]:
    """The handlers' metrics and logs (printed to stdout by Powertools) kept out of the bench's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def cpu_per_lead(catalog: Any, cases: list[tuple[Any, list[Any]]], repeat: int) -> float:
    """Seconds of CPU per lead for `rescore.replay` (replay + decide) under `catalog`, best of
    `repeat` passes over every case (process time: this machine's other work does not count)."""
    from leadscore.rescore import replay

    now = datetime.now(UTC)
    horizon = timedelta(hours=24)
    best = math.inf
    for _ in range(repeat):
        started = time.process_time()
        for profile, events in cases:
            replay(catalog, profile, events, now, horizon)
        best = min(best, time.process_time() - started)
    return best / max(1, len(cases))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def rows(quick: bool) -> list[Row]:
    from leadscore.model_store import load_catalog
    from leadscore.scoring.catalog import Catalog

    measured = measure(leads=15 if quick else 60, seed=12)
    shipped = load_catalog("bundled:catalog")
    learned = Catalog.of(learned_size_model())
    repeat = 1 if quick else 3
    cpu = {"shipped catalog": cpu_per_lead(shipped, measured.cases, repeat)}
    cpu["learned-size model"] = cpu_per_lead(learned, measured.cases, repeat)
    a = Assumptions()
    today = replace(a, memory_mb=512)
    page = measured.page
    print(
        f"rescore: per page of {page.leads} (measured) {_figures(page)}; "
        f"profile {page.profile_bytes / 1024:.1f} KB, ledger {page.ledger_bytes / 1024:.1f} KB per lead; "
        + ", ".join(f"CPU {name} {seconds * 1e6:.0f} us/lead" for name, seconds in cpu.items()),
        file=sys.stderr,
    )
    print(f"rescore: requests counted: {measured.requests}", file=sys.stderr)
    print(f"rescore: assumptions {a}", file=sys.stderr)
    return [_row(name, page, seconds, a, today) for name, seconds in cpu.items()]


def _row(name: str, page: PageFigures, cpu_s: float, a: Assumptions, today: Assumptions) -> Row:
    new = plan(page, cpu_s, a)
    old = plan(baseline_page(page), cpu_s, today, segments=8)
    design = "8 segments, pages of 50 serial, 3 sequential requests/lead, 512 MB"
    speedup = old.wall_seconds / new.wall_seconds
    dynamodb = f"{new.rru / 1e6:.1f}M RRU + {new.wru / 1e6:.1f}M WRU"
    return Row(
        path=f"{PATH}, {name}",
        measured=f"{_minutes(new.wall_seconds)}, ${new.usd:.2f}",
        target=f"≤ {TARGET_MINUTES:.0f} min",
        met=new.wall_seconds <= TARGET_MINUTES * 60,
        baseline=f"today's design in this model: {_minutes(old.wall_seconds)} ({design}) -> {speedup:.1f}x",
        detail=(
            f"{new.segments} segments x {math.ceil(LEADS / new.segments)} leads, "
            f"{new.page_seconds:.2f} s per page of {page.leads} (CPU {cpu_s * 1e6:.0f} us/lead here); "
            f"Lambda {new.gb_seconds:,.0f} GB-s, DynamoDB {dynamodb} "
            f"(peak {new.peak_wru_per_second:,.0f} WRU/s: warm the table to it), "
            f"SQS {new.sqs_requests:,.0f} requests"
        ),
    )


def _figures(page: PageFigures) -> str:
    serial = ", ".join(f"{op} {n:.2f}" for op, n in sorted(page.serial.items()))
    return f"{serial}, Query {page.ledger_queries:.1f} ({page.workers} at a time)"
