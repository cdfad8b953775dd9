"""Rescoring every lead under a (new) model: a fan-out job over SQS, idempotent and resumable.

A job is started once (`start_job`): it records the job and enqueues one work item per
parallel-scan segment of the profiles table. Each work item rescores one page of a segment
(`process_page`): one GetItem reads the segment's progress (which carries the job's parameters),
one Scan the page's lead ids, one BatchGetItem their profiles, and a few threads their ledgers
(one Query per lead, `QUERY_WORKERS` at a time); each lead is then replayed under the job's model
(`replay`, pure) and its recomputed state written with one guarded write (or, in a dry run, only
counted); the next page is enqueued and this page recorded in the segment's progress with a
conditional write, so a redelivered work item is counted once. A stage change written by a rescore
is announced by `evaluate_thresholds` like any other, once. `resume_job` re-enqueues the
unfinished segments of an interrupted job from their last page.

Segments are sized to the table (`segments_for`): ceil(ItemCount / LEADS_PER_SEGMENT), at least
MIN_SEGMENTS, at most the rescore queue's MaximumConcurrency (more segments than concurrent
workers only wait). `python -m leadscore.bench --areas rescore` turns this run's per-lead figures
into the time and cost of rescoring 1M leads (README, "Rescoring a million leads").
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field, RootModel

from leadscore import clock, lifecycle
from leadscore.config import Settings
from leadscore.domain import LeadEvent
from leadscore.errors import InvalidRequest, NotFound
from leadscore.lifecycle import Decision
from leadscore.model_store import load_catalog
from leadscore.repository import EventLedger, LeadProfile, LeadProfiles, from_dynamo, to_dynamo
from leadscore.schema import Model
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import ScoringModel

PAGE_SIZE = 100  # lead ids per page: one BatchGetItem (at most 100 keys) reads their profiles
JOB_PART = "job"
# Segment sizing (`segments_for`): a segment of 20,000 leads takes 3-5 minutes at the per-lead
# cost `make bench` measures (README), so a table of N leads finishes in about that time as long
# as N / 20,000 segments can run at once.
LEADS_PER_SEGMENT = 20_000
MIN_SEGMENTS = 8
MAX_SEGMENTS = 1000
# The job's parameters copied into every segment item: a page reads them with its progress.
JOB_FIELDS = ("model", "model_version", "dry_run", "segments")


class StartRescore(Model):
    """What starts a job (CLI arguments, or a direct invocation of the rescore function)."""

    action: Literal["start"] = "start"
    model: str = Field(min_length=1, description="bundled:NAME, a path, s3://bucket/key or ssm:/name")
    dry_run: bool = False
    # None: sized to the table (`segments_for`); a number overrides it
    segments: int | None = Field(default=None, ge=1, le=MAX_SEGMENTS)


class JobCommand(Model):
    action: Literal["status", "resume"]
    job_id: str = Field(min_length=1)


class RescoreCommand(RootModel[Annotated[StartRescore | JobCommand, Field(discriminator="action")]]):
    """A direct invocation of the rescore function."""

    model_config = ConfigDict(defer_build=True)  # as `Model`: built on first use


class WorkItem(Model):
    job_id: str
    segment: int
    page: int = 0
    start_key: dict[str, Any] | None = None


class LeadOutcome(Model):
    from_stage: str
    to_stage: str
    score_before: float
    score_after: float
    skipped: bool = False
    others: dict[str, str] = Field(default_factory=dict)  # a catalog's other models: id -> "from->to"


class JobProgress(Model):
    job_id: str
    model: str
    model_version: str
    dry_run: bool
    segments: int
    segments_done: int
    scanned: int
    score_changed: int
    skipped_incomplete_history: int
    stage_changes: dict[str, int]
    promotions: int
    demotions: int

    @property
    def finished(self) -> bool:
        return self.segments_done == self.segments


def recompute(
    models: Catalog | ScoringModel, events: Iterable[LeadEvent]
) -> tuple[dict[str, float], dict[str, int]]:
    """The model-dependent part of a lead's state (every model's event rule accumulators and
    counters), rebuilt from its recorded events exactly as `score_events` builds it one event at a
    time."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    for event in events:
        effect = catalogs.effect_of(catalog, event)
        for key, value in effect.accumulators.items():
            accumulators[key] = accumulators.get(key, 0.0) + value
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
    return accumulators, counts


class RescoreJobs:
    """The jobs table and the work queue (the only place the rescore job talks to them)."""

    def __init__(self, table_name: str, queue_url: str, dynamodb: Any | None = None, sqs: Any | None = None):
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)
        self._sqs = sqs or boto3.client("sqs")
        self._queue_url = queue_url

    def create(
        self, job_id: str, request: StartRescore, model_version: str, now: datetime, segments: int
    ) -> None:
        job: dict[str, Any] = {
            "model": request.model,
            "model_version": model_version,
            "dry_run": request.dry_run,
            "segments": segments,
        }
        self._table.put_item(
            Item={"job_id": job_id, "part": JOB_PART, **job, "created_at": now.isoformat()},
            ConditionExpression="attribute_not_exists(job_id)",
        )
        for segment in range(segments):
            self._table.put_item(
                Item={"job_id": job_id, "part": _segment_part(segment), "page": 0, "done": False, **job}
            )

    def job(self, job_id: str) -> dict[str, Any]:
        item = self._table.get_item(Key={"job_id": job_id, "part": JOB_PART}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(f"no rescore job {job_id}")
        return dict(from_dynamo(item))

    def segment(self, job_id: str, segment: int) -> dict[str, Any] | None:
        """One segment's progress (and, for jobs started by this version, the job's parameters):
        what a page reads, with one GetItem."""
        item = self._table.get_item(
            Key={"job_id": job_id, "part": _segment_part(segment)}, ConsistentRead=True
        ).get("Item")
        return None if item is None else dict(from_dynamo(item))

    def segments(self, job_id: str) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression="job_id = :j AND begins_with(part, :s)",
            ExpressionAttributeValues={":j": job_id, ":s": "segment#"},
            ConsistentRead=True,
        )
        return [dict(from_dynamo(item)) for item in response.get("Items", [])]

    def enqueue(self, item: WorkItem) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=item.model_dump_json())

    def record_page(self, item: WorkItem, tally: Mapping[str, int], next_key: dict[str, Any] | None) -> bool:
        """Add one page's counts to its segment, once: the write only succeeds if the segment is
        still at this page. Returns False for a redelivered, already counted page."""
        names = {f"#c{i}": key for i, key in enumerate(tally)}
        values: dict[str, Any] = {f":c{i}": n for i, n in enumerate(tally.values())}
        adds = [f"#c{i} :c{i}" for i in range(len(tally))]
        values.update({":page": item.page, ":next": item.page + 1, ":done": next_key is None})
        sets = ["page = :next", "done = :done"]
        if next_key is None:
            update = "SET " + ", ".join(sets) + " REMOVE last_key"
        else:
            values[":key"] = json.dumps(next_key, default=str)
            update = "SET " + ", ".join([*sets, "last_key = :key"])
        if adds:
            update += " ADD " + ", ".join(adds)
        kwargs: dict[str, Any] = {
            "Key": {"job_id": item.job_id, "part": _segment_part(item.segment)},
            "UpdateExpression": update,
            "ConditionExpression": "page = :page",
            "ExpressionAttributeValues": to_dynamo(values),
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._table.update_item(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _segment_part(segment: int) -> str:
    return f"segment#{segment:04d}"


def _jobs(settings: Settings) -> RescoreJobs:
    if not settings.rescore_jobs_table or not settings.rescore_queue_url:
        raise InvalidRequest("rescoring needs RESCORE_JOBS_TABLE and RESCORE_QUEUE_URL")
    return RescoreJobs(settings.rescore_jobs_table, settings.rescore_queue_url)


def start_job(request: StartRescore, settings: Settings, job_id: str | None = None) -> str:
    """Record a job and fan it out: one work item per scan segment."""
    catalog = load_catalog(request.model)  # fail now, not in every worker, if the model is bad
    deployed = load_catalog(settings.scoring_model)
    if not request.dry_run and _versions(deployed) != _versions(catalog):
        raise InvalidRequest(
            f"the deployment scores new events with {_versions(deployed)}; publish {_versions(catalog)} "
            "first (ScoringModel parameter), then rescore with it, so new events and old ones agree"
        )
    model = catalog.primary.model
    job_id = job_id or f"rs-{clock.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    jobs = _jobs(settings)
    segments = request.segments
    if segments is None:
        from leadscore.pipeline import services

        leads, _ = services(settings).profiles.approximate_size()
        segments = segments_for(leads, settings.rescore_max_concurrency, LEADS_PER_SEGMENT)
    jobs.create(job_id, request, model.version, clock.now(), segments)
    for segment in range(segments):
        jobs.enqueue(WorkItem(job_id=job_id, segment=segment))
    return job_id


def segments_for(leads: int, max_concurrency: int, leads_per_segment: int = LEADS_PER_SEGMENT) -> int:
    """Scan segments for a table of about `leads` items (DescribeTable's ItemCount):

        segments = min(max_concurrency, max(MIN_SEGMENTS, ceil(leads / leads_per_segment)))

    Each segment is read page after page by one worker at a time, so a job takes about
    `leads / segments` leads' time; more segments than the queue's MaximumConcurrency would only
    wait for a worker (and never fewer than MIN_SEGMENTS: a table DescribeTable has not counted
    yet, its figures are six hours old at worst, still gets some parallelism)."""
    wanted = max(MIN_SEGMENTS, math.ceil(max(leads, 0) / leads_per_segment))
    return max(1, min(max_concurrency, wanted, MAX_SEGMENTS))


def _versions(catalog: Catalog) -> str:
    """The models and versions a catalog scores with, as an operator reads them."""
    if catalog.single:
        return f"model {catalog.primary.model.version}"
    return "models " + ", ".join(f"{e.id} {e.model.version}" for e in catalog.models)


def resume_job(job_id: str, settings: Settings) -> int:
    """Re-enqueue every unfinished segment from the page it reached. Safe to run while work items
    are still in flight: a page is counted once whichever copy gets there first."""
    jobs = _jobs(settings)
    jobs.job(job_id)
    resumed = 0
    for segment in jobs.segments(job_id):
        if segment.get("done"):
            continue
        key = json.loads(segment["last_key"]) if segment.get("last_key") else None
        number = int(segment["part"].split("#")[1])
        jobs.enqueue(WorkItem(job_id=job_id, segment=number, page=int(segment["page"]), start_key=key))
        resumed += 1
    return resumed


def progress(job_id: str, settings: Settings) -> JobProgress:
    jobs = _jobs(settings)
    job = jobs.job(job_id)
    totals: Counter[str] = Counter()
    done = 0
    for segment in jobs.segments(job_id):
        done += bool(segment.get("done"))
        for key, value in segment.items():
            if key.startswith(("n_", "stage:")):
                totals[key] += int(value)
    stage_changes = {k.removeprefix("stage:"): v for k, v in sorted(totals.items()) if k.startswith("stage:")}
    return JobProgress(
        job_id=job_id,
        model=job["model"],
        model_version=job["model_version"],
        dry_run=bool(job["dry_run"]),
        segments=int(job["segments"]),
        segments_done=done,
        scanned=totals["n_scanned"],
        score_changed=totals["n_score_changed"],
        skipped_incomplete_history=totals["n_skipped"],
        stage_changes=stage_changes,
        promotions=totals["n_promotions"],
        demotions=totals["n_demotions"],
    )


@dataclass(frozen=True)
class Replayed:
    """A lead replayed under a catalog: its recomputed state, the decision on it, the outcome."""

    accumulators: dict[str, float]
    counts: dict[str, int]
    decision: Decision | None  # None: skipped (its history cannot be replayed exactly)
    outcome: LeadOutcome


def replay(
    catalog: Catalog, profile: LeadProfile, events: Sequence[LeadEvent], now: datetime, horizon: timedelta
) -> Replayed:
    """The pure part of rescoring one lead (no I/O): its applied events replayed under the catalog,
    every model's stage decided. `events` must be exactly the events the profile holds."""
    # some expired from the ledger, or more leads were folded than `merged` lists: cannot
    # replay exactly
    if len(events) != profile.version or profile.merged_overflow:
        skipped = LeadOutcome(
            from_stage=profile.stage,
            to_stage=profile.stage,
            score_before=profile.score,
            score_after=profile.score,
            skipped=True,
        )
        return Replayed({}, {}, None, skipped)
    model = catalog.primary.model
    accumulators, counts = recompute(catalog, events)
    state = profile.state.model_copy(update={"accumulators": accumulators, "counts": counts})
    rebuilt = profile.model_copy(update={"state": state})
    decision = lifecycle.decide(catalog, rebuilt, now, "rescore", horizon)
    evaluation = decision.primary
    outcome = LeadOutcome(
        from_stage=profile.stage,
        to_stage=evaluation.stage,
        score_before=engine.totals(model, profile.state, now).total
        if profile.model_version == model.version
        else profile.score,
        score_after=evaluation.total,
        others={
            model_id: f"{other.transition.from_stage}->{other.transition.to_stage}"
            for model_id, other in decision.others.items()
            if other.transition is not None
        },
    )
    return Replayed(accumulators, counts, decision, outcome)


def _already_rescored(profile: LeadProfile, job_id: str) -> LeadOutcome | None:
    """The outcome a redelivered page already wrote for this lead (None: not rescored by the job)."""
    if profile.rescored_by == job_id and profile.rescore_outcome:
        return LeadOutcome.model_validate(profile.rescore_outcome)
    return None


def _partitions(profile: LeadProfile) -> list[str]:
    """The ledger partitions of a lead's events: a lead that changed address holds the events of
    every lead folded into it (`merged`), each in the partition of the address it was sent to."""
    return [profile.lead_id, *profile.merged]


def _write(
    catalog: Catalog,
    profile: LeadProfile,
    events: Sequence[LeadEvent],
    profiles: LeadProfiles,
    now: datetime,
    horizon: timedelta,
    job_id: str,
    dry_run: bool,
) -> LeadOutcome:
    replayed = replay(catalog, profile, events, now, horizon)
    decision = replayed.decision
    if decision is None or dry_run:
        return replayed.outcome
    if not profiles.replace_scoring_state(
        profile,
        replayed.accumulators,
        replayed.counts,
        decision.primary,
        job_id,
        replayed.outcome.model_dump(),
        decision.others,
    ):
        raise RuntimeError(
            f"lead {profile.lead_id} changed while it was rescored; the work item will be retried"
        )
    return replayed.outcome


def rescore_lead(
    models: Catalog | ScoringModel,
    lead_id: str,
    profiles: LeadProfiles,
    ledger: EventLedger,
    now: datetime,
    horizon: timedelta,
    job_id: str,
    dry_run: bool,
) -> LeadOutcome | None:
    """Rescore one lead: its profile (GetItem), then its ledger, then one guarded write."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    profile = profiles.get(lead_id)
    if profile is None or profile.alias_of is not None:
        return None  # an alias is an address folded into another lead: rescored with that lead
    done = _already_rescored(profile, job_id)  # a redelivered page
    if done is not None:
        return done
    # Exactly the events the profile holds: one recorded but not yet applied is added by the
    # stream later, to the rescored state (counting it here too would count it twice).
    events = [
        event
        for partition in _partitions(profile)
        for event in ledger.events_of(partition, applied_only=True)
    ]
    return _write(catalog, profile, events, profiles, now, horizon, job_id, dry_run)


def rescore_page(
    models: Catalog | ScoringModel,
    lead_ids: Sequence[str],
    profiles: LeadProfiles,
    ledger: EventLedger,
    now: datetime,
    horizon: timedelta,
    job_id: str,
    dry_run: bool,
) -> list[LeadOutcome]:
    """Rescore a page of leads as `rescore_lead` rescores each, with batched reads: one
    BatchGetItem for the profiles, their ledgers queried concurrently, then one write per lead.

    The profiles are read before the ledgers, so a ledger can only hold more applied events than
    its profile counts (an event applied in between): such a lead is rescored again alone, from a
    fresh read (`rescore_lead`), exactly as before batching."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    found = profiles.get_page(lead_ids)
    leads = [found[i] for i in dict.fromkeys(lead_ids) if i in found and found[i].alias_of is None]
    done = {p.lead_id: seen for p in leads if (seen := _already_rescored(p, job_id)) is not None}
    todo = [p for p in leads if p.lead_id not in done]
    ledgers = ledger.events_of_many([x for p in todo for x in _partitions(p)], applied_only=True)
    outcomes: list[LeadOutcome] = []
    for profile in leads:
        outcome: LeadOutcome | None = done.get(profile.lead_id)
        if outcome is None:
            events = [event for partition in _partitions(profile) for event in ledgers[partition]]
            if len(events) > profile.version:  # applied since the profile was read
                outcome = rescore_lead(
                    catalog, profile.lead_id, profiles, ledger, now, horizon, job_id, dry_run
                )
            else:
                outcome = _write(catalog, profile, events, profiles, now, horizon, job_id, dry_run)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def process_page(item: WorkItem, settings: Settings, page_size: int = PAGE_SIZE) -> bool:
    """Rescore one page of one segment, enqueue the next page, and count this page once.
    Returns False when the page had already been counted (a redelivered work item)."""
    from leadscore.pipeline import services

    jobs = _jobs(settings)
    segment = jobs.segment(item.job_id, item.segment)  # the page's one progress read
    if segment is None or int(segment["page"]) != item.page:
        return False
    # jobs started before segments carried the job's parameters read them from the job item
    job = segment if all(field in segment for field in JOB_FIELDS) else jobs.job(item.job_id)
    catalog = load_catalog(job["model"])
    svc = services(settings)
    ids, next_key = svc.profiles.scan_page(item.segment, int(job["segments"]), item.start_key, page_size)
    horizon = timedelta(hours=settings.review_horizon_hours)
    outcomes = rescore_page(
        catalog, ids, svc.profiles, svc.ledger, clock.now(), horizon, item.job_id, bool(job["dry_run"])
    )
    if next_key is not None:
        jobs.enqueue(
            WorkItem(job_id=item.job_id, segment=item.segment, page=item.page + 1, start_key=next_key)
        )
    return jobs.record_page(item, tally(outcomes, catalog.primary.model), next_key)


def tally(outcomes: Iterable[LeadOutcome], model: ScoringModel) -> Counter[str]:
    """A page's counts, as the job's progress adds them up."""
    counts: Counter[str] = Counter()
    for outcome in outcomes:
        counts["n_scanned"] += 1
        if outcome.skipped:
            counts["n_skipped"] += 1
            continue
        counts["n_score_changed"] += abs(outcome.score_after - outcome.score_before) >= 0.005
        if outcome.to_stage != outcome.from_stage:
            counts[f"stage:{outcome.from_stage}->{outcome.to_stage}"] += 1
            promoted = model.is_promotion(outcome.from_stage, outcome.to_stage)
            counts["n_promotions" if promoted else "n_demotions"] += 1
        for model_id, change in outcome.others.items():  # a catalog's other models
            counts[f"stage:{model_id}:{change}"] += 1
    return counts


def run_command(command: StartRescore | JobCommand, settings: Settings) -> dict[str, Any]:
    """Start a job, resume one, or report its progress."""
    if isinstance(command, StartRescore):
        return {"job_id": start_job(command, settings)}
    if command.action == "resume":
        return {"job_id": command.job_id, "segments_resumed": resume_job(command.job_id, settings)}
    report = progress(command.job_id, settings)
    return {**report.model_dump(), "finished": report.finished}
