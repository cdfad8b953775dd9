"""Account scores: pure functions, no I/O. Leads roll up to an account; its score is made from them.

- `account_key(catalog, state)`: the account a lead belongs to (an explicit `account_id`, else its
  `company_domain`, else its email's domain when that is a company's: free and disposable mailboxes
  never form an account). The explicit attributes are kept only from trusted sources
  (`account_model.ACCOUNT_SOURCES`).
- `member_of(catalog, lead_id, state, revision)`: what the account keeps of one lead (no email):
  its fit, and what its engagement is made of (the feeding model's engagement accumulators and
  counters, activity dates and the attributes that section reads), so the member's engagement at
  ANY time T is exactly `engine.score(model, view(catalog, model_id, state), T).engagement`.
- `score_account(catalog, members, at)`: the account's score at `at` from its members' summaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from pydantic import ConfigDict, Field

from leadscore.domain import AttributeValue
from leadscore.schema import Model
from leadscore.scoring import engine
from leadscore.scoring.account_model import AccountModel
from leadscore.scoring.catalog import Catalog, view
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    EventRule,
    PairRule,
    ScoringModel,
    SegmentRule,
)

ACCOUNT_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")
DOMAIN = re.compile(r"^(?=.{3,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
SHOWN_TEXT = 64  # characters of a member's job title / role kept (readable reasons, bounded items)
TOP_SHOWN = 5  # engaged members named in an account's score


def feeding_model(catalog: Catalog) -> tuple[str, ScoringModel]:
    """(id, model) of the catalog model whose fit and engagement feed accounts."""
    accounts = _accounts(catalog)
    entry = catalog.entry(accounts.model) if accounts.model else catalog.primary
    return entry.id, entry.model


def _accounts(catalog: Catalog) -> AccountModel:
    if catalog.accounts is None:
        raise ValueError(f"catalog {catalog.name!r} scores no accounts (no `accounts:`)")
    return catalog.accounts


# --- the account key ---------------------------------------------------------------------------------
def normalize_domain(value: str) -> str | None:
    """`https://www.Acme.io/about` -> `acme.io`; None when no domain is left."""
    text = value.strip().casefold()
    for scheme in ("https://", "http://"):
        text = text.removeprefix(scheme)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    text = text.removeprefix("www.").rstrip(".")
    return text if DOMAIN.fullmatch(text) else None


def _company_domain(model: ScoringModel, domain: str | None) -> str | None:
    if domain is None:
        return None
    reference = model.reference
    if domain in reference.free_email_domains or domain in reference.disposable_email_domains:
        return None
    return domain


def account_key(catalog: Catalog, state: engine.LeadState) -> str | None:
    """The lead's account: `account_id` (lowercase), else `company_domain` (normalized), else the
    email's domain, when that is no free or disposable mailbox provider's. None: no account."""
    if catalog.accounts is None:
        return None
    _, model = feeding_model(catalog)
    explicit = state.attributes.get("account_id")
    if isinstance(explicit, str | int) and not isinstance(explicit, bool):
        key = str(explicit).strip().casefold()
        if ACCOUNT_KEY.fullmatch(key):
            return key
    claimed = state.attributes.get("company_domain")
    if isinstance(claimed, str):
        domain = _company_domain(model, normalize_domain(claimed))
        if domain:
            return domain
    _, at, email_domain = state.email.rpartition("@")
    return _company_domain(model, normalize_domain(email_domain)) if at else None


def member_account(catalog: Catalog, state: engine.LeadState) -> str | None:
    """The account a lead counts in: its `account_key`, once it has done something (an active
    event). Leads known only from email plumbing (sent, delivered, bounced) take no member's place."""
    return account_key(catalog, state) if state.last_activity_at is not None else None


# --- members ------------------------------------------------------------------------------------------
class MemberSummary(Model):
    """What an account keeps of one lead: no email, nothing a score at any time does not need,
    except a job title and role to name engaged people ("incl. VP Marketing")."""

    model_config = ConfigDict(frozen=True)

    lead: str
    rev: int = Field(ge=0, description="The lead's profile revision this summary was made from")
    fit: float
    title: str | None = None
    role: str | None = None
    acc: dict[str, float] = Field(default_factory=dict)  # engagement event rule -> epoch-form sum
    n: dict[str, int] = Field(default_factory=dict)  # engagement aggregate rule -> count
    attrs: dict[str, AttributeValue] = Field(default_factory=dict)  # derived, read by engagement rules
    first_seen: datetime | None = None
    last_active: datetime | None = None

    def same_as(self, other: MemberSummary | None) -> bool:
        """Equal but for the revision: storing it again would change no score."""
        return other is not None and self.model_dump(exclude={"rev"}) == other.model_dump(exclude={"rev"})

    def engagement_state(self) -> engine.LeadState:
        return engine.LeadState(
            email="",
            attributes=self.attrs,
            accumulators=self.acc,
            counts=self.n,
            last_activity_at=self.last_active,
            first_seen_at=self.first_seen,
        )


def engagement_inputs(model: ScoringModel) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(event rule ids, aggregate rule ids, attribute names) the model's engagement section reads."""
    events: set[str] = set()
    aggregates: set[str] = set()
    names: set[str] = set()
    for rule in model.engagement.rules:
        if isinstance(rule, EventRule):
            events.add(rule.id)
        elif isinstance(rule, AggregateRule):
            aggregates.add(rule.id)
        elif isinstance(rule, AttributeRule):
            names.add(rule.attribute)
        elif isinstance(rule, PairRule):
            names.update(side.attribute for side in rule.attributes)
        elif isinstance(rule, SegmentRule):
            names.update(condition.attribute for condition in rule.conditions)
    return frozenset(events), frozenset(aggregates), frozenset(names)


def _shown(value: AttributeValue | None) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text[:SHOWN_TEXT] or None


def member_of(catalog: Catalog, lead_id: str, state: engine.LeadState, revision: int) -> MemberSummary:
    """The account's summary of one lead (its profile `state` at profile `revision`)."""
    accounts = _accounts(catalog)
    model_id, model = feeding_model(catalog)
    own = view(catalog, model_id, state)
    derived = engine.derived_attributes(model, own)
    events, aggregates, names = engagement_inputs(model)
    role = derived.get(accounts.roles.attribute)
    return MemberSummary(
        lead=lead_id,
        rev=revision,
        fit=engine.section_points(model, "fit", own, own.last_activity_at or model.epoch, derived),
        title=_shown(derived.get("job_title")),
        role=None if _shown(role) is None else str(_shown(role)).casefold(),
        acc={k: v for k, v in own.accumulators.items() if k in events},
        n={k: v for k, v in own.counts.items() if k in aggregates},
        attrs={k: v for k, v in derived.items() if k in names},
        first_seen=own.first_seen_at,
        last_active=own.last_activity_at,
    )


def member_engagement(catalog: Catalog, member: MemberSummary, at: datetime) -> float:
    """The member's engagement at `at`, exactly as the feeding model scores the lead."""
    _, model = feeding_model(catalog)
    return engine.section_points(model, "engagement", member.engagement_state(), at, member.attrs)


# --- the account's score ----------------------------------------------------------------------------
class EngagedMember(Model):
    model_config = ConfigDict(frozen=True)

    lead_id: str
    title: str | None
    role: str | None
    fit: float
    engagement: float


class AccountScore(Model):
    """An account's score at `at`: its parts, the members that count as engaged, readable reasons."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    total: float
    fit: float
    engagement: float
    people: float
    roles: float
    members: int
    engaged: list[EngagedMember] = Field(description="Engaged members, most engaged first")
    reasons: list[str]


def _describe(member: EngagedMember) -> str:
    return member.title or (member.role or "someone").replace("_", " ")


def score_account(catalog: Catalog, members: Iterable[MemberSummary], at: datetime) -> AccountScore:
    """The account's score at `at` from its members' summaries (a pure function: any order of the
    same members gives the same score)."""
    accounts = _accounts(catalog)
    ordered = sorted(members, key=lambda m: m.lead)
    scored = [
        EngagedMember(
            lead_id=m.lead,
            title=m.title,
            role=m.role,
            fit=m.fit,
            engagement=member_engagement(catalog, m, at),
        )
        for m in ordered
    ]
    by_engagement = sorted(scored, key=lambda m: (-m.engagement, m.lead_id))
    engaged = [m for m in by_engagement if m.engagement >= accounts.engaged_at]
    fit = accounts.fit.weight * max((m.fit for m in scored), default=0.0)
    top = by_engagement[: accounts.engagement.top]
    engagement = accounts.engagement.weight * sum(m.engagement for m in top)
    people = min(accounts.people.max, accounts.people.points * len(engaged))
    roles_seen = {m.role for m in engaged if m.role is not None}
    roles = min(accounts.roles.max, sum(accounts.roles.points.get(r, 0.0) for r in sorted(roles_seen)))
    total = min(max(fit + engagement + people + roles, 0.0), accounts.total_max)
    return AccountScore(
        at=at,
        total=total,
        fit=fit,
        engagement=engagement,
        people=people,
        roles=roles,
        members=len(scored),
        engaged=engaged,
        reasons=_reasons(accounts, scored, engaged, fit, engagement),
    )


def _reasons(
    accounts: AccountModel,
    scored: list[EngagedMember],
    engaged: list[EngagedMember],
    fit: float,
    engagement: float,
) -> list[str]:
    reasons: list[str] = []
    if engaged:
        senior = max(engaged, key=lambda m: (accounts.roles.points.get(m.role or "", 0.0), m.engagement))
        people = f"{len(engaged)} {'person' if len(engaged) == 1 else 'people'} engaged"
        if accounts.roles.points.get(senior.role or "", 0.0) > 0:
            people += f", incl. {_describe(senior)}"
        reasons.append(people)
        top = engaged[: accounts.engagement.top]
        reasons.append(
            f"engagement {engagement:.0f} from the {len(top)} most engaged: "
            + ", ".join(f"{_describe(m)} ({m.engagement:.0f})" for m in top)
        )
    elif scored:
        reasons.append(f"{len(scored)} {'person' if len(scored) == 1 else 'people'} known, none engaged yet")
    if scored:
        best = max(scored, key=lambda m: (m.fit, m.lead_id))
        reasons.append(f"best fit {fit:.0f} ({_describe(best)})")
    return reasons
