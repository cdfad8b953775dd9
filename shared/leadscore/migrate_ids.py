"""Moving a deployment's leads from unkeyed ids (SHA-256 of the email, before keyed ids) to keyed
ids (`leadscore.keys`): the use case behind `leadscore migrate-lead-ids`.

For each profile whose id is the legacy id of its email (a Scan), in this order:
1. its ledger items are all applied (else the lead is left for a re-run: score_events is busy);
2. the profile is copied under the keyed id, marked `migrated_from` (evaluate_thresholds does not
   announce a copy again);
3. its ledger items are copied under the keyed id with their `applied_at`, so score_events takes
   each copy's INSERT as already applied (its points are in the copied profile);
4. the legacy ledger items are deleted, then the legacy profile, only if nothing wrote to it since
   step 2 (else the lead is left for a re-run, which refreshes the untouched copy).
Every write is conditional: a stopped run is resumed by running again, and a finished one finds
nothing to do. Profiles whose id is already keyed are counted and left alone.

A lead that had events between the stack's switch to keyed ids and its migration already has a
keyed profile (those events only). It is merged: the legacy events are copied under the keyed id
*without* `applied_at`, score_events adds each to the keyed profile once (updates are additive and
order-independent, so the score is exact), and the legacy items are deleted. Its stage is decided
again from the merged score, so a stage it re-reaches is announced again (with a new transition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from leadscore.domain import legacy_lead_id_for
from leadscore.keys import LeadKeys
from leadscore.repository import review_shard_for
from leadscore.repository.ledger import APPLIED
from leadscore.repository.relabel import MIGRATED_FROM, MIGRATED_REVISION, LeadRelabeling
from leadscore.schema import Model


class MigrationReport(Model):
    dry_run: bool
    scanned: int = 0
    to_migrate: int = 0  # legacy profiles found (what a dry run reports)
    migrated: int = 0  # legacy profiles moved under their keyed id
    merged: int = 0  # legacy leads folded into a keyed profile created since the switch
    events_copied: int = 0
    already_keyed: int = 0
    unrecognised: int = 0  # ids neither scheme gives their email (left alone)
    left_for_rerun: list[str] = Field(default_factory=list)  # legacy ids: events in flight, or changed
    conflicts: list[str] = Field(default_factory=list)  # legacy ids whose old and new profile both changed

    @property
    def complete(self) -> bool:
        return not self.left_for_rerun and not self.conflicts


def migrate_lead_ids(
    store: LeadRelabeling, keys: LeadKeys, review_shards: int, *, dry_run: bool = False
) -> MigrationReport:
    if keys.scheme != "keyed":
        raise ValueError("the migration moves leads to keyed ids: give it the deployment's key")
    report = MigrationReport(dry_run=dry_run)
    for item in store.profiles():
        report.scanned += 1
        lead_id, email = str(item["lead_id"]), item.get("email")
        try:
            keyed, legacy = keys.lead_id_for(str(email)), legacy_lead_id_for(str(email))
        except ValueError:
            report.unrecognised += 1
            continue
        if lead_id == keyed:
            report.already_keyed += 1
        elif lead_id != legacy:
            report.unrecognised += 1
        elif dry_run:
            report.to_migrate += 1
        else:
            report.to_migrate += 1
            _migrate(store, item, keyed, review_shard_for(keyed, review_shards), report)
    return report


def _migrate(
    store: LeadRelabeling, old: dict[str, Any], keyed: str, shard: str, report: MigrationReport
) -> None:
    legacy = str(old["lead_id"])
    events = store.ledger_items(legacy)
    copy = store.profile(keyed)
    if copy is not None and copy.get(MIGRATED_FROM) != legacy:
        _merge(store, old, events, keyed, report)
        return
    if copy is None or copy.get(MIGRATED_REVISION) != old.get("revision", 0):
        if not _all_applied(events):
            report.left_for_rerun.append(legacy)  # score_events has not caught up: try again soon
            return
        if copy is None and not store.copy_profile(old, keyed, shard):
            report.left_for_rerun.append(legacy)  # a keyed profile appeared meanwhile: merged next run
            return
        if copy is not None and not store.refresh_copy(old, copy, shard):
            report.conflicts.append(legacy)  # both changed since the copy: see the README
            return
    report.events_copied += sum(store.copy_ledger_item(e, keyed, keep_applied=True) for e in events)
    for event in events:
        store.delete_ledger_item(legacy, str(event["event_id"]))
    if store.delete_profile(old, if_unchanged=True):
        report.migrated += 1
    else:
        report.left_for_rerun.append(legacy)  # written to since copied: the re-run refreshes the copy


def _merge(
    store: LeadRelabeling,
    old: dict[str, Any],
    events: list[dict[str, Any]],
    keyed: str,
    report: MigrationReport,
) -> None:
    legacy = str(old["lead_id"])
    report.events_copied += sum(store.copy_ledger_item(e, keyed, keep_applied=False) for e in events)
    for event in events:
        store.delete_ledger_item(legacy, str(event["event_id"]))
    store.delete_profile(old, if_unchanged=False)
    report.merged += 1


def _all_applied(events: Sequence[Mapping[str, Any]]) -> bool:
    return all(APPLIED in event for event in events)
