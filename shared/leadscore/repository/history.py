"""Reads the operator's history commands need: the event ledger a page at a time (`export-history`),
which events are already recorded and which leads are erased (`outcomes import`). Reads only; the
import records through `EventLedger.record_all`, exactly as ingest does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import boto3

from leadscore.repository.profiles import ALIAS_OF, ERASED, MAX_ALIAS_HOPS

BATCH_GET = 100  # BatchGetItem's limit per request


class HistoryReads:
    def __init__(self, ledger_table: str, profiles_table: str | None = None, dynamodb: Any | None = None):
        self._resource = dynamodb or boto3.resource("dynamodb")
        self._ledger = ledger_table
        self._profiles = profiles_table

    @property
    def ledger_table(self) -> str:
        return self._ledger

    def ledger_page(
        self, start_key: Mapping[str, Any] | None, limit: int | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a Scan of the ledger, and the key to continue from (None: the end)."""
        kwargs: dict[str, Any] = {}
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        if limit:
            kwargs["Limit"] = limit
        response = self._resource.Table(self._ledger).scan(**kwargs)
        return list(response.get("Items", [])), response.get("LastEvaluatedKey")

    def recorded(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (lead_id, event_id) pairs the ledger already holds."""
        found = self._batch_get(
            self._ledger, [{"lead_id": lead, "event_id": event} for lead, event in keys], "lead_id, event_id"
        )
        return {(str(item["lead_id"]), str(item["event_id"])) for item in found}

    def erased(self, lead_ids: Iterable[str]) -> set[str]:
        """The leads among these whose profile is a tombstone (erased, not opted in since)."""
        if self._profiles is None:
            raise ValueError("no profiles table: cannot tell erased leads")
        keys = [{"lead_id": lead} for lead in sorted(set(lead_ids))]
        found = self._batch_get(self._profiles, keys, "lead_id, #erased", {"#erased": ERASED})
        return {str(item["lead_id"]) for item in found if ERASED in item}

    def current_emails(self, lead_ids: Iterable[str]) -> dict[str, str]:
        """Each lead's address now: a lead whose person changed address is an alias of the lead
        that carries on (`alias_of`, followed), so its events belong to that person's address.
        Leads without a profile (or without a profiles table) are left out: keep the ledger's."""
        if self._profiles is None:
            return {}
        pending = {lead: lead for lead in set(lead_ids)}  # origin -> lead to read next
        emails: dict[str, str] = {}
        for _ in range(MAX_ALIAS_HOPS + 1):
            if not pending:
                break
            keys = [{"lead_id": lead} for lead in sorted(set(pending.values()))]
            found = {
                str(item["lead_id"]): item
                for item in self._batch_get(
                    self._profiles, keys, "lead_id, email, #alias", {"#alias": ALIAS_OF}
                )
            }
            following: dict[str, str] = {}
            for origin, lead in pending.items():
                item = found.get(lead)
                if item is None:
                    continue
                if item.get(ALIAS_OF):
                    following[origin] = str(item[ALIAS_OF])
                elif item.get("email"):
                    emails[origin] = str(item["email"])
            pending = following
        return emails

    def _batch_get(
        self,
        table: str,
        keys: Sequence[dict[str, str]],
        projection: str,
        names: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        unique = list({tuple(sorted(k.items())): k for k in keys}.values())
        items: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_GET):
            spec: dict[str, Any] = {
                "Keys": unique[start : start + BATCH_GET],
                "ProjectionExpression": projection,
            }
            if names:
                spec["ExpressionAttributeNames"] = names
            request: dict[str, Any] = {table: spec}
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                items.extend(response["Responses"].get(table, []))
                request = response.get("UnprocessedKeys") or {}
        return items
