"""Data access: the only package that talks to DynamoDB. `ledger` (events, recorded once),
`profiles` (one item per lead), `ratelimits` (the public forms' counters), `codec` (values,
times and update expressions for all of them).

The names below are loaded on first use (PEP 562): importing `leadscore.repository.ledger` must
not import `profiles`, which needs the scoring engine an ingest Lambda never loads."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadscore.repository.codec import from_dynamo, iso, parse_iso, to_dynamo
    from leadscore.repository.identities import IdentityStore
    from leadscore.repository.ledger import EventLedger, RecordOutcome, event_from_item
    from leadscore.repository.profiles import (
        Evaluation,
        LeadProfile,
        LeadProfiles,
        Transition,
        profile_from_item,
        review_shard_for,
    )
    from leadscore.repository.ratelimits import RateLimitCounters

_HOMES = {
    "from_dynamo": "codec",
    "iso": "codec",
    "parse_iso": "codec",
    "to_dynamo": "codec",
    "IdentityStore": "identities",
    "EventLedger": "ledger",
    "RecordOutcome": "ledger",
    "event_from_item": "ledger",
    "Evaluation": "profiles",
    "LeadProfile": "profiles",
    "LeadProfiles": "profiles",
    "Transition": "profiles",
    "profile_from_item": "profiles",
    "review_shard_for": "profiles",
    "RateLimitCounters": "ratelimits",
}

__all__ = [
    "Evaluation",
    "EventLedger",
    "IdentityStore",
    "LeadProfile",
    "LeadProfiles",
    "RateLimitCounters",
    "RecordOutcome",
    "Transition",
    "event_from_item",
    "from_dynamo",
    "iso",
    "parse_iso",
    "profile_from_item",
    "review_shard_for",
    "to_dynamo",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
