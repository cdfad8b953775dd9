"""The visitor journal: what happens to one beacon's page activity once the collector checked it.

The identity rule for browsers (a browser is `ExternalId(WEB_VISITOR_NAMESPACE, <visitor id>)`):
1. A browser is linked to the email of the LAST form submitted in it, "last" by the link's time
   (`IdentityStore.link` keeps the newest link whatever the arrival order). A form is an `identify`
   beacon (a tagged form, the last one of a beacon wins) or an HTML form posted with `_visitor`.
2. Events sent while the browser is anonymous are parked against it (bounded by
   TRACK_MAX_PARKED_EVENTS, kept TRACK_ANONYMOUS_RETENTION_DAYS). The identification that first
   links the browser releases them: they join that first lead only, once, with their own times
   (recency applies), and are unparked. A park can never slip past a link: a park holds only while
   the browser has no link, and a link's release reads the parked events consistently after the
   link is committed. The first link is written with that link (the browser's `release` item,
   never moved): whoever finds parked events still there (a later email's identification, a
   concurrent one, the retry of one that died before unparking) records them for that first lead.
3. Events recorded while the browser is linked to A stay with A forever.
4. After a second identification with B, the browser's later events go to B (a beacon's events go
   to the email of its own last identification, else its token's, else the browser's link).
5. No `email_changed` event and no merge is ever made from a browser link: two people can share a
   browser, so a browser linked to A and then B says nothing about A's address.
6. An erased person (the identity table's erasure mark) is linked to no browser until they opt in
   again through a form: an identification of them links nothing, records and parks nothing for
   them, discards what the browser had parked, and gets no token; a form that opts them in again
   discards (never releases) what the browser parked while they were erased.

Costs (DynamoDB requests of the journal): a view of a browser with a valid token: 1 PutItem, 0
reads. An anonymous view: 1 TransactWriteItems (3 items), 0 reads. An identification: 1
TransactWriteItems (the link), 1 Query of the parked events, when there are some 1 GetItem of
the browser's first link, their PutItems and a BatchWriteItem to unpark them.
A linked browser that lost its token: its failed park, 1 GetItem of the link, 1 Query (parked
events a crashed release left behind), then PutItems, and a fresh token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from leadscore.config import Settings
from leadscore.domain import LeadEvent, PendingEvent
from leadscore.keys import LeadKeys
from leadscore.repository.identities import IdentityStore
from leadscore.repository.ledger import EventLedger
from leadscore.services import services
from leadscore.tracking.activity import Activity, Recorded
from leadscore.tracking.tokens import VisitorTokens

logger = Logger(child=True)


def record(activity: Activity, settings: Settings) -> Recorded:
    """Record one beacon's identifications and page activity (see the module's identity rule).
    Retry-safe: the same activity recorded again changes nothing and counts as duplicates. Raises
    StorageUnavailable (503: the beacon may be retried) when DynamoDB could not be written."""
    svc = services(settings)
    keys = LeadKeys.from_settings(settings)
    journal = _Journal(
        activity=activity,
        settings=settings,
        store=svc.identities,
        ledger=svc.ledger,
        keys=keys,
        tokens=VisitorTokens.for_keys(keys, settings.track_token_lifetime_days),
    )
    return journal.run()


@dataclass
class _Journal:
    activity: Activity
    settings: Settings
    store: IdentityStore
    ledger: EventLedger
    keys: LeadKeys
    tokens: VisitorTokens | None
    direct: list[LeadEvent] = field(default_factory=list)  # to the ledger in this request
    released: list[str] = field(default_factory=list)  # parked event ids to forget once recorded
    parked: int = 0
    dropped: int = 0
    duplicates: int = 0
    email: str | None = None  # whom this beacon's events belong to
    token: str | None = None  # what the browser is handed back

    def run(self) -> Recorded:
        if self.activity.identifications:
            self._identify()
        elif self.tokens is not None:
            self.email = self.tokens.open(
                self.activity.token,
                self.activity.site,
                self.activity.visitor.value,
                self.activity.received_at,
            )
            self.token = self.activity.token if self.email else None
        erased = bool(self.activity.identifications) and self.email is None
        for event in self.activity.events:
            if erased:
                self.dropped += 1
            elif self.email is not None:
                self.direct.append(event.identified(self.email))
            else:
                self._park(event)
        # a retried beacon's event may also be among those it releases: record it once, as released
        # (for the browser's first link), which comes first
        first: dict[str, LeadEvent] = {}
        for lead_event in self.direct:
            first.setdefault(lead_event.event_id, lead_event)
        unique = list(first.values())
        outcomes = self.ledger.record_all(self.keys.assign(unique), self.activity.received_at)
        if self.released:
            self.store.unpark(self.activity.visitor, self.released)
        duplicates = self.duplicates + sum(1 for outcome in outcomes if outcome.duplicate)
        return Recorded(
            accepted=len(outcomes) - sum(1 for outcome in outcomes if outcome.duplicate),
            duplicates=duplicates,
            parked=self.parked,
            dropped=self.dropped,
            token=self.token,
        )

    def _identify(self) -> None:
        """Link the browser for each identification (in beacon order: the last one wins), release
        what it had parked to the first that links it, and learn whom the events belong to."""
        visitor, released, last = self.activity.visitor, False, "erased"
        for identification in self.activity.identifications:
            email = identification.email
            last = self.store.link(visitor, email, self.keys.lead_id_for(email), identification.at)
            if last == "erased":
                self.email = None
                self._discard_parked()
                continue
            self.email = email
            if last == "linked" and not released:
                released = True
                self._release(email)
        if self.email is not None:
            # after a stale link (a newer one holds) the events are still this beacon's person's,
            # but the token names the browser's current link
            current = self.email if last == "linked" else self.store.email_of(visitor)
            self.token = self._seal(current) if current else None

    def _park(self, event: PendingEvent) -> None:
        outcome = self.store.park_visit(
            event,
            self.activity.received_at,
            max_parked=self.settings.track_max_parked_events,
            retention_days=self.settings.track_anonymous_retention_days,
        )
        if outcome == "parked":
            self.parked += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "full":
            self.dropped += 1
        else:  # linked: the browser lost its token (or a link just committed): read the link once
            email = self.store.email_of(self.activity.visitor)
            if email is None:  # erased between the check and the read
                self.dropped += 1
                return
            self.email, self.token = email, self._seal(email)
            self._release(email)  # what a release that crashed after its link left behind
            self.direct.append(event.identified(email))

    def _release(self, email: str) -> None:
        found = self.store.parked(self.activity.visitor)
        if found:  # they are the browser's first link's, whoever finds them (rule 2)
            email = self.store.release_owner(self.activity.visitor) or email
        self.direct.extend(event.identified(email) for event in found)
        self.released.extend(event.event_id for event in found)

    def _discard_parked(self) -> None:
        found = self.store.parked(self.activity.visitor)
        if found:
            self.store.unpark(self.activity.visitor, [event.event_id for event in found])
            self.dropped += len(found)
            logger.info("an erased person's browser: parked events discarded", extra={"events": len(found)})

    def _seal(self, email: str) -> str | None:
        if self.tokens is None:
            return None
        return self.tokens.seal(
            self.activity.site, self.activity.visitor.value, email, self.activity.received_at
        )
