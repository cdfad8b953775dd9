"""Replay what a dead-letter queue holds, once the cause of the failure is fixed.

Each DLQ holds a different kind of message, so each has its own replay:

- `ses-events`, `rescore`: SQS messages that failed 5 times; they go back to their source queue
  (send, then delete from the DLQ; the consumers are idempotent, so a duplicate is harmless).
- `score-events`: Lambda on-failure records of the ledger stream. They hold only the batch's
  coordinates (shard, sequence numbers, arrival times), no keys. While the records are still in
  the stream (24 h) they are read back and each INSERT is re-applied; after that, the ledger items
  of the batch's arrival window that were never applied (no `applied_at`) are re-applied.
- `evaluate-thresholds`: on-failure records of the profile stream. While still in the stream,
  each record is evaluated again exactly as the consumer would; after that the records are gone
  and the decay job (which doubles as the sweeper of pending announcements) is run instead.
- `decay-scores`: schedule events EventBridge could not deliver: the decay job is run once.

A DLQ message is deleted only when everything it stood for was handled; the others are made
visible again at the end of the run so that the next run sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field, ValidationError

from leadscore import clock
from leadscore.batching import safe_error
from leadscore.config import ConfigurationError, Settings
from leadscore.pipeline import DecayReport, apply_ledger_record, on_profile_change, run_decay, services
from leadscore.schema import Model

STREAM_RETENTION = timedelta(hours=24)
# Stream records that can no longer be read: trimmed (older than 24 h), a stream that no longer
# exists (table recreated), or an iterator that outlived its 15 minutes.
_GONE = {"TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException"}
_HOLD_SECONDS = 900  # messages being replayed stay invisible to a concurrent run for this long
_EMPTY_READS = 5  # GetRecords may answer empty pages before reaching the records


Handler = Callable[[dict[str, Any], "ReplaySummary"], bool]


class DeadLetterQueue(StrEnum):
    SCORE_EVENTS = "score-events"
    EVALUATE_THRESHOLDS = "evaluate-thresholds"
    DECAY_SCORES = "decay-scores"
    SES_EVENTS = "ses-events"
    RESCORE = "rescore"


class StreamBatchInfo(Model):
    """`DDBStreamBatchInfo` of a Lambda on-failure record (DynamoDB stream event source)."""

    model_config = ConfigDict(populate_by_name=True)

    shard_id: str = Field(alias="shardId")
    start_sequence_number: str = Field(alias="startSequenceNumber")
    end_sequence_number: str = Field(alias="endSequenceNumber")
    stream_arn: str = Field(alias="streamArn")
    first_arrival: datetime = Field(alias="approximateArrivalOfFirstRecord")
    last_arrival: datetime = Field(alias="approximateArrivalOfLastRecord")
    batch_size: int = Field(alias="batchSize", ge=0)


class StreamFailure(Model):
    """The on-failure record Lambda sends to an SQS destination for a failed stream batch."""

    batch: StreamBatchInfo = Field(alias="DDBStreamBatchInfo")


class ReplaySummary(Model):
    """What one run did with one dead-letter queue."""

    queue: DeadLetterQueue
    dry_run: bool
    messages: int = 0  # DLQ messages looked at
    deleted: int = 0  # handled in full and deleted from the DLQ
    kept: int = 0  # left in the DLQ: something in them could not be replayed
    moved: int = 0  # sent back to the source queue
    records_in_batches: int = 0  # stream records the failed batches held (batchSize)
    batches_from_stream: int = 0
    batches_from_ledger: int = 0  # stream records expired: ledger items re-read instead
    batches_to_sweeper: int = 0  # stream records expired: covered by the decay job/sweeper
    records_replayed: int = 0
    records_already_applied: int = 0
    records_failed: int = 0
    decay_runs: int = 0
    decay: DecayReport | None = None
    errors: list[str] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.kept == 0 and self.records_failed == 0


class ReplayError(ConfigurationError):
    code = "replay_not_configured"


class QueueMessages:
    """Receive, send, release and delete SQS messages (the only SQS access of the replay)."""

    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self.url = queue_url
        self._sqs = sqs or boto3.client("sqs")

    def receive_all(self) -> Iterator[dict[str, Any]]:
        """Every message currently visible. Each is held invisible while the run works on it,
        so the loop ends once all have been seen."""
        while True:
            batch = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=_HOLD_SECONDS,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return
            yield from batch

    def send(self, message: dict[str, Any]) -> None:
        """Send a received message's body and attributes to this queue."""
        kwargs: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": message["Body"]}
        attributes = message.get("MessageAttributes")
        if attributes:
            kwargs["MessageAttributes"] = attributes
        self._sqs.send_message(**kwargs)

    def delete(self, message: dict[str, Any]) -> None:
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def release(self, message: dict[str, Any]) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


class StreamRecords:
    """Read a failed batch back from its DynamoDB stream, while the stream still holds it."""

    def __init__(self, streams: Any | None = None) -> None:
        self._streams = streams or boto3.client("dynamodbstreams")

    def batch(self, info: StreamBatchInfo, now: datetime) -> list[dict[str, Any]] | None:
        """The batch's records, oldest first, or None when the stream no longer has them."""
        if info.first_arrival < now - STREAM_RETENTION:
            return None
        end = int(info.end_sequence_number)
        try:
            iterator = self._streams.get_shard_iterator(
                StreamArn=info.stream_arn,
                ShardId=info.shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=info.start_sequence_number,
            ).get("ShardIterator")
            found: list[dict[str, Any]] = []
            empty = 0
            while iterator and empty < _EMPTY_READS:
                response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                records = response.get("Records", [])
                empty = 0 if records else empty + 1
                for record in records:
                    if int(record["dynamodb"]["SequenceNumber"]) > end:
                        return found
                    found.append(record)
                if found and int(found[-1]["dynamodb"]["SequenceNumber"]) == end:
                    return found
                iterator = response.get("NextShardIterator")
            return found
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _GONE:
                return None
            raise


_deserializer = TypeDeserializer()


def _image(record: dict[str, Any], name: str) -> dict[str, Any] | None:
    raw = record.get("dynamodb", {}).get(name)
    return {k: _deserializer.deserialize(v) for k, v in raw.items()} if raw else None


class Replayer:
    """Replays one dead-letter queue; see the module docstring for what each queue means."""

    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        window_margin: timedelta = timedelta(minutes=5),
        sqs: Any | None = None,
        streams: Any | None = None,
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.now = now or clock.now()
        self.margin = window_margin
        self._sqs = sqs or boto3.client("sqs")
        self._streams = StreamRecords(streams)

    def _url(self, name: str) -> str:
        value = getattr(self.settings, name)
        if not value:
            env = Settings.model_fields[name].alias
            raise ReplayError(f"{env} is not set: it names the queue to replay (see the stack outputs)")
        return str(value)

    def plan(self, queue: DeadLetterQueue) -> tuple[str, Handler]:
        """The queue's URL and what replays one of its messages. Raises ReplayError (a usage
        error) when a queue it needs is not configured."""
        match queue:
            case DeadLetterQueue.SCORE_EVENTS:
                return self._url("score_events_dlq_url"), self._score_events
            case DeadLetterQueue.EVALUATE_THRESHOLDS:
                return self._url("evaluate_thresholds_dlq_url"), self._evaluate_thresholds
            case DeadLetterQueue.DECAY_SCORES:
                return self._url("decay_scores_dlq_url"), self._decay_scores
            case DeadLetterQueue.SES_EVENTS:
                return self._url("ses_events_dlq_url"), self._move_to(self._url("ses_events_queue_url"))
            case DeadLetterQueue.RESCORE:
                return self._url("rescore_dlq_url"), self._move_to(self._url("rescore_queue_url"))

    def replay(self, queue: DeadLetterQueue) -> ReplaySummary:
        return self.run(queue, *self.plan(queue))

    def run(self, queue: DeadLetterQueue, url: str, handle: Handler) -> ReplaySummary:
        messages = QueueMessages(url, self._sqs)
        summary = ReplaySummary(queue=queue, dry_run=self.dry_run)
        kept: list[dict[str, Any]] = []
        for message in messages.receive_all():
            summary.messages += 1
            if self.dry_run:
                summary.records_in_batches += _batch_size(message)
                kept.append(message)
                continue
            try:
                done = handle(message, summary)
            except Exception as exc:  # one bad message never stops the others
                summary.errors.append(f"{message['MessageId']}: {type(exc).__name__}: {safe_error(exc)}")
                done = False
            if done:
                messages.delete(message)
                summary.deleted += 1
            else:
                kept.append(message)
        for message in kept:  # visible again for the next run
            messages.release(message)
        summary.kept = 0 if self.dry_run else len(kept)
        return summary

    # -- SQS queues with a source queue ---------------------------------------------------
    def _move_to(self, target_url: str) -> Handler:
        target = QueueMessages(target_url, self._sqs)

        def move(message: dict[str, Any], summary: ReplaySummary) -> bool:
            target.send(message)
            summary.moved += 1
            return True

        return move

    # -- the ledger stream (score_events) ---------------------------------------------------
    def _score_events(self, message: dict[str, Any], summary: ReplaySummary) -> bool:
        info = _stream_failure(message)
        summary.records_in_batches += info.batch_size
        records = self._streams.batch(info, self.now)
        images: list[dict[str, Any]]
        if records:
            summary.batches_from_stream += 1
            images = [
                image
                for record in records
                if record.get("eventName") == "INSERT" and (image := _image(record, "NewImage"))
            ]
        else:
            summary.batches_from_ledger += 1
            ledger = services(self.settings).ledger
            images = list(
                ledger.unapplied_between(info.first_arrival - self.margin, info.last_arrival + self.margin)
            )
        failed = 0
        for image in images:
            try:
                applied = apply_ledger_record(image, self.settings)
            except Exception as exc:
                failed += 1
                summary.errors.append(
                    f"event {image.get('event_id')}: {type(exc).__name__}: {safe_error(exc)}"
                )
                continue
            summary.records_replayed += applied
            summary.records_already_applied += not applied
        summary.records_failed += failed
        return failed == 0

    # -- the profile stream (evaluate_thresholds) -------------------------------------------
    def _evaluate_thresholds(self, message: dict[str, Any], summary: ReplaySummary) -> bool:
        info = _stream_failure(message)
        summary.records_in_batches += info.batch_size
        records = self._streams.batch(info, self.now)
        if not records:
            # The records (and with them the leads' ids) are gone. Saved transitions are still
            # announced by the sweeper (announce_pending), and thresholds are applied again at
            # each lead's next review: run that job now rather than wait for the schedule.
            summary.batches_to_sweeper += 1
            self._run_decay(summary)
            return True
        summary.batches_from_stream += 1
        failed = 0
        for record in records:
            new = _image(record, "NewImage")
            if record.get("eventName") == "REMOVE" or new is None:
                continue
            try:
                on_profile_change(_image(record, "OldImage"), new, self.settings)
            except Exception as exc:
                failed += 1
                summary.errors.append(
                    f"profile record {record.get('eventID')}: {type(exc).__name__}: {safe_error(exc)}"
                )
                continue
            summary.records_replayed += 1
        summary.records_failed += failed
        return failed == 0

    # -- the schedule (decay_scores) ----------------------------------------------------------
    def _decay_scores(self, message: dict[str, Any], summary: ReplaySummary) -> bool:
        self._run_decay(summary)
        return True

    def _run_decay(self, summary: ReplaySummary) -> None:
        if summary.decay_runs:
            return  # one run covers every missed tick and every expired batch
        summary.decay = run_decay(self.settings, now=clock.now())
        summary.decay_runs += 1


def _stream_failure(message: dict[str, Any]) -> StreamBatchInfo:
    try:
        return StreamFailure.model_validate_json(message["Body"]).batch
    except ValidationError as exc:
        raise ValueError(f"not a Lambda on-failure record of a stream: {safe_error(exc)}") from exc


def _batch_size(message: dict[str, Any]) -> int:
    try:
        info = json.loads(message["Body"]).get("DDBStreamBatchInfo") or {}
        return int(info.get("batchSize", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


def replay(queues: list[DeadLetterQueue], settings: Settings, **options: Any) -> list[ReplaySummary]:
    """Replay each queue in turn with one `Replayer` (see its options). Every queue's
    configuration is checked before any message is touched."""
    replayer = Replayer(settings, **options)
    plans = [(queue, *replayer.plan(queue)) for queue in queues]
    return [replayer.run(queue, url, handle) for queue, url, handle in plans]
