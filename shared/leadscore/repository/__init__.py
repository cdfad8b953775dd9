"""Data access: the only package that talks to DynamoDB. `ledger` (events, recorded once),
`profiles` (one item per lead), `ratelimits` (the public forms' counters), `codec` (values,
times and update expressions for all of them)."""

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
