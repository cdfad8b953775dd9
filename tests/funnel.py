"""A synthetic marketing funnel with known truth, written as an event history (JSON Lines).

Every lead arrives with a form (job title, company size, country), then acts: page views (pricing
or blog), email opens and clicks, downloads, webinars, demo requests, unsubscribes, each action a
Poisson process over the lead's active weeks. At the lead's decision moment its chance of
becoming a customer is a logistic function of its fit and of each action's count decayed with
the true half-life (`Truth`). Winners get `opportunity_created` then `deal_won`; losers get
`deal_lost`, `disqualified` or no outcome at all (then the decision moment is the end of the
maturity window, as the product labels them). Activity continues after the decision (customers
keep clicking): a learner that looks past the decision moment learns from the future.

Nothing here is a file of expected numbers: tests compare what the product learns with `Truth`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2025, 3, 1, tzinfo=UTC)
MATURITY_DAYS = 90.0


@dataclass(frozen=True)
class Action:
    key: str
    event: str
    url: str | None
    rate_per_week: float  # for an average lead
    weight: float  # true log-odds per decayed event


ACTIONS = (
    Action("demo", "demo_requested", None, 0.05, 2.2),
    Action("pricing", "page_viewed", "https://acme.example/pricing", 0.35, 0.9),
    Action("webinar", "webinar_registered", None, 0.12, 0.7),
    Action("download", "content_downloaded", None, 0.2, 0.45),
    Action("click", "email_clicked", None, 0.5, 0.3),
    Action("open", "email_opened", None, 1.2, 0.12),
    Action("blog", "page_viewed", "https://acme.example/blog/ten-tips", 0.8, 0.03),
    Action("unsubscribe", "email_unsubscribed", None, 0.02, -1.8),
)
TITLES = {"VP of Sales": 0.9, "Director of Marketing": 0.6, "Marketing Manager": 0.2, "Engineer": -0.3}
COUNTRIES = {"United States": 0.3, "Germany": 0.1, "India": -0.4, "Brazil": -0.2}


@dataclass
class Truth:
    half_life_days: float = 14.0
    intercept: float = -3.2
    actions: tuple[Action, ...] = ACTIONS
    titles: dict[str, float] = field(default_factory=lambda: dict(TITLES))
    countries: dict[str, float] = field(default_factory=lambda: dict(COUNTRIES))


@dataclass
class Lead:
    email: str
    arrived: datetime
    decision: datetime
    won: bool
    decayed: dict[str, float]  # true decayed count per action at the decision moment
    title: str
    country: str


def _decayed(times: list[float], at: float, half_life: float) -> float:
    return float(sum(2.0 ** (-(at - t) / half_life) for t in times if t < at))


def generate(
    path: Path, leads: int = 3000, seed: int = 0, truth: Truth | None = None, after_decision: bool = True
) -> list[Lead]:
    """Write the history to `path`; return each lead's truth (for oracles and checks)."""
    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    out: list[Lead] = []
    lines: list[str] = []

    def emit(email: str, event: str, day: float, url: str | None = None, attrs: dict | None = None) -> None:
        record: dict[str, object] = {
            "email": email,
            "event": event,
            "occurred_at": (START + timedelta(days=day)).isoformat().replace("+00:00", "Z"),
        }
        if url:
            record["url"] = url
        if attrs:
            record["attributes"] = attrs
        lines.append(json.dumps(record))

    for n in range(leads):
        email = f"lead{n}@company{n % 97}.example"
        arrived = float(rng.uniform(0, 300))
        has_outcome = rng.random() < 0.7
        decision = arrived + (float(rng.uniform(15, 80)) if has_outcome else MATURITY_DAYS)
        activity = float(rng.gamma(2.0, 0.5))
        title = str(rng.choice(list(truth.titles)))
        country = str(rng.choice(list(truth.countries)))
        size = int(rng.choice([8, 40, 150, 800, 5000]))
        emit(
            email,
            "form_submitted",
            arrived,
            attrs={"job_title": title, "country": country, "company_size": size},
        )
        end = arrived + 150.0
        decayed: dict[str, float] = {}
        for action in truth.actions:
            count = rng.poisson(activity * action.rate_per_week * (end - arrived) / 7.0)
            times = sorted(float(t) for t in rng.uniform(arrived, end, size=count))
            if not after_decision:
                times = [t for t in times if t < decision]
            decayed[action.key] = _decayed(times, decision, truth.half_life_days)
            for t in times:
                emit(email, action.event, t, action.url)
        logit = (
            truth.intercept
            + truth.titles[title]
            + truth.countries[country]
            + 0.25 * math.log10(size)
            + sum(a.weight * decayed[a.key] for a in truth.actions)
        )
        won = bool(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
        if won:
            emit(email, "opportunity_created", decision)
            emit(email, "deal_won", decision + float(rng.uniform(5, 30)))
            if after_decision:  # customers keep engaging: bait for a learner that leaks
                for k in range(int(rng.integers(3, 12))):
                    emit(email, "email_clicked", decision + 1 + k)
        elif has_outcome:
            emit(email, "deal_lost" if rng.random() < 0.6 else "disqualified", decision)
        out.append(
            Lead(
                email=email,
                arrived=START + timedelta(days=arrived),
                decision=START + timedelta(days=decision),
                won=won,
                decayed=decayed,
                title=title,
                country=country,
            )
        )
    # A late lead, younger than the maturity window at the history's end: left out of learning.
    emit("late@company.example", "form_submitted", 460.0, attrs={"job_title": "Engineer"})
    order = rng.permutation(len(lines))  # file order must not matter
    path.write_text("\n".join(lines[i] for i in order) + "\n", encoding="utf-8")
    return out


def split(path: Path, train: Path, test: Path, share: float = 0.7) -> None:
    """Split a history by lead (a lead's events all go to one side)."""
    keep: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        keep.setdefault(json.loads(line)["email"], []).append(line)
    emails = sorted(keep)
    rng = np.random.default_rng(123)
    chosen = set(rng.permutation(emails)[: int(share * len(emails))].tolist())
    train.write_text(
        "".join(line + "\n" for e in emails if e in chosen for line in keep[e]), encoding="utf-8"
    )
    test.write_text(
        "".join(line + "\n" for e in emails if e not in chosen for line in keep[e]), encoding="utf-8"
    )
