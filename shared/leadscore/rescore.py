"""Rescoring every lead under a (new) model: a fan-out job over SQS, idempotent and resumable.

A job is started once (`start_job`): it records the job and enqueues one work item per
parallel-scan segment of the profiles table. Each work item rescoring one page of a segment
(`process_page`) replays each lead's ledger under the job's model, writes the recomputed state
(or, in a dry run, only counts what would change), enqueues the next page, and records the page
in the job's progress with a conditional write, so a redelivered work item is counted once.
A stage change written by a rescore is announced by `evaluate_thresholds` like any other, once.
`resume_job` re-enqueues the unfinished segments of an interrupted job from their last page.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field, RootModel

from leadscore import clock, lifecycle
from leadscore.config import Settings
from leadscore.domain import LeadEvent
from leadscore.errors import InvalidRequest, NotFound
from leadscore.model_store import load_catalog
from leadscore.repository import EventLedger, LeadProfiles, from_dynamo, to_dynamo
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import ScoringModel

PAGE_SIZE = 50
JOB_PART = "job"


class StartRescore(BaseModel):
    """What starts a job (CLI arguments, or a direct invocation of the rescore function)."""

    action: Literal["start"] = "start"
    model: str = Field(min_length=1, description="bundled:NAME, a path, s3://bucket/key or ssm:/name")
    dry_run: bool = False
    segments: int = Field(default=8, ge=1, le=1000)


class JobCommand(BaseModel):
    action: Literal["status", "resume"]
    job_id: str = Field(min_length=1)


class RescoreCommand(RootModel[Annotated[StartRescore | JobCommand, Field(discriminator="action")]]):
    """A direct invocation of the rescore function."""


class WorkItem(BaseModel):
    job_id: str
    segment: int
    page: int = 0
    start_key: dict[str, Any] | None = None


class LeadOutcome(BaseModel):
    from_stage: str
    to_stage: str
    score_before: float
    score_after: float
    skipped: bool = False
    others: dict[str, str] = Field(default_factory=dict)  # a catalog's other models: id -> "from->to"


class JobProgress(BaseModel):
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

    def create(self, job_id: str, request: StartRescore, model_version: str, now: datetime) -> None:
        self._table.put_item(
            Item={
                "job_id": job_id,
                "part": JOB_PART,
                "model": request.model,
                "model_version": model_version,
                "dry_run": request.dry_run,
                "segments": request.segments,
                "created_at": now.isoformat(),
            },
            ConditionExpression="attribute_not_exists(job_id)",
        )
        for segment in range(request.segments):
            self._table.put_item(
                Item={"job_id": job_id, "part": _segment_part(segment), "page": 0, "done": False}
            )

    def job(self, job_id: str) -> dict[str, Any]:
        item = self._table.get_item(Key={"job_id": job_id, "part": JOB_PART}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(f"no rescore job {job_id}")
        return dict(from_dynamo(item))

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
    jobs.create(job_id, request, model.version, clock.now())
    for segment in range(request.segments):
        jobs.enqueue(WorkItem(job_id=job_id, segment=segment))
    return job_id


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
    profile = profiles.get(lead_id)
    if profile is None or profile.alias_of is not None:
        return None  # an alias is an address folded into another lead: rescored with that lead
    if profile.rescored_by == job_id and profile.rescore_outcome:  # a redelivered page: already done
        return LeadOutcome.model_validate(profile.rescore_outcome)
    # Exactly the events the profile holds: one recorded but not yet applied is added by the
    # stream later, to the rescored state (counting it here too would count it twice). A lead
    # that changed address holds the events of every lead folded into it (`merged`), each in
    # the ledger partition of the address it was sent to.
    events = [
        event
        for partition in [lead_id, *profile.merged]
        for event in ledger.events_of(partition, applied_only=True)
    ]
    # some expired from the ledger, or more leads were folded than `merged` lists: cannot
    # replay exactly
    if len(events) != profile.version or profile.merged_overflow:
        return LeadOutcome(
            from_stage=profile.stage,
            to_stage=profile.stage,
            score_before=profile.score,
            score_after=profile.score,
            skipped=True,
        )
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    model = catalog.primary.model
    accumulators, counts = recompute(catalog, events)
    state = profile.state.model_copy(update={"accumulators": accumulators, "counts": counts})
    rebuilt = profile.model_copy(update={"state": state})
    decision = lifecycle.decide(catalog, rebuilt, now, "rescore", horizon)
    evaluation = decision.primary
    outcome = LeadOutcome(
        from_stage=profile.stage,
        to_stage=evaluation.stage,
        score_before=engine.score(model, profile.state, now).total
        if profile.model_version == model.version
        else profile.score,
        score_after=evaluation.total,
        others={
            model_id: f"{other.transition.from_stage}->{other.transition.to_stage}"
            for model_id, other in decision.others.items()
            if other.transition is not None
        },
    )
    if not dry_run and not profiles.replace_scoring_state(
        profile, accumulators, counts, evaluation, job_id, outcome.model_dump(), decision.others
    ):
        raise RuntimeError(f"lead {lead_id} changed while it was rescored; the work item will be retried")
    return outcome


def process_page(item: WorkItem, settings: Settings, page_size: int = PAGE_SIZE) -> bool:
    """Rescore one page of one segment, enqueue the next page, and count this page once.
    Returns False when the page had already been counted (a redelivered work item)."""
    from leadscore.pipeline import services

    jobs = _jobs(settings)
    job = jobs.job(item.job_id)
    catalog = load_catalog(job["model"])
    model = catalog.primary.model
    svc = services(settings)
    segment = next((s for s in jobs.segments(item.job_id) if s["part"] == _segment_part(item.segment)), None)
    if segment is None or int(segment["page"]) != item.page:
        return False
    ids, next_key = svc.profiles.scan_page(item.segment, int(job["segments"]), item.start_key, page_size)
    tally: Counter[str] = Counter()
    now = clock.now()
    horizon = timedelta(hours=settings.review_horizon_hours)
    for lead_id in ids:
        outcome = rescore_lead(
            catalog, lead_id, svc.profiles, svc.ledger, now, horizon, item.job_id, bool(job["dry_run"])
        )
        if outcome is None:
            continue
        tally["n_scanned"] += 1
        if outcome.skipped:
            tally["n_skipped"] += 1
            continue
        tally["n_score_changed"] += abs(outcome.score_after - outcome.score_before) >= 0.005
        if outcome.to_stage != outcome.from_stage:
            tally[f"stage:{outcome.from_stage}->{outcome.to_stage}"] += 1
            promoted = model.is_promotion(outcome.from_stage, outcome.to_stage)
            tally["n_promotions" if promoted else "n_demotions"] += 1
        for model_id, change in outcome.others.items():  # a catalog's other models
            tally[f"stage:{model_id}:{change}"] += 1
    if next_key is not None:
        jobs.enqueue(
            WorkItem(job_id=item.job_id, segment=item.segment, page=item.page + 1, start_key=next_key)
        )
    return jobs.record_page(item, tally, next_key)


def run_command(command: StartRescore | JobCommand, settings: Settings) -> dict[str, Any]:
    """Start a job, resume one, or report its progress."""
    if isinstance(command, StartRescore):
        return {"job_id": start_job(command, settings)}
    if command.action == "resume":
        return {"job_id": command.job_id, "segments_resumed": resume_job(command.job_id, settings)}
    report = progress(command.job_id, settings)
    return {**report.model_dump(), "finished": report.finished}
