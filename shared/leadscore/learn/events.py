"""Learning a scoring model from an event history, and backtesting one on it.

The data flow (see `leadscore.learn.history` for the file format, labels and decision moments):

1. Label the leads (`label_leads`) and keep, per lead, only the events strictly before its
   decision moment: nothing after the outcome can reach a feature.
2. Fit features: each lead's attributes as its profile would hold them at that moment (the latest
   value of each), plus those the engine derives (seniority, email domain class, region), encoded
   as the CSV learner encodes columns (`leadscore.learn.calibrate`).
3. Behaviour features, in the runtime's own terms: one candidate rule per event type, plus URL
   patterns (`*/pricing*`) where a page's visits say more than the type alone. A rule's feature is
   its events' count decayed to the decision moment, sum(2 ** (-age / half_life)): exactly what an
   event rule's accumulator holds at that moment.
4. Half-lives are learned per rule by profile likelihood (each rule's half-life searched on a log
   grid and refined, the other rules held, two sweeps), caps where a saturating count fits the
   outcomes better by more than the BIC penalty of one parameter, and signs constrained where the
   domain dictates (an unsubscribe or a hard bounce never adds; a demo request never subtracts).
5. The penalty and bins are chosen by stratified 5-fold cross-validated AUC; the coefficients
   become points (one common scale), half-lives and caps become the rules' own fields, and the
   thresholds, grades and probability table come from the runtime engine's scores of the
   training leads replayed event by event (`replay`), so they are the scores the Lambdas give.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from leadscore.cli import CommandError
from leadscore.domain import OUTCOME_EVENT_TYPES, EventType
from leadscore.learn import guardrails
from leadscore.learn.calibrate import (
    BIN_GRID,
    C_GRID,
    SCORE_SPAN,
    Feature,
    _rule,
    _shape,
    _unique_id,
    bounds,
    design,
    plan_features,
    resolve_directions,
    set_edges,
    splitter,
)
from leadscore.learn.dataset import MIN_PER_OUTCOME, ColumnCounts, History
from leadscore.learn.evaluate import evaluate
from leadscore.learn.fit import fit_logistic
from leadscore.learn.history import (
    EventHistory,
    HistoryEvent,
    Labelled,
    LabelOptions,
    before,
    label_leads,
    latest_attributes,
    replay,
)
from leadscore.learn.mapping import Mapping
from leadscore.learn.thresholds import Learned, finish
from leadscore.scoring.engine import LeadState, ScoreResult, derived_attributes, score
from leadscore.scoring.model import (
    MIN_HALF_LIFE_DAYS,
    AggregateRule,
    AttributeRule,
    Category,
    EventRule,
    Grade,
    PairRule,
    ScoringModel,
    Section,
    SegmentRule,
    Stage,
)

# Not behaviour: identity and CRM bookkeeping, email plumbing the lead did not do.
NOT_FEATURES = OUTCOME_EVENT_TYPES | {
    EventType.EMAIL_CHANGED,
    EventType.PROFILE_UPDATED,
    EventType.EMAIL_SENT,
    EventType.EMAIL_DELIVERED,
}
# Signs the domain dictates.
NEVER_ADDS = frozenset(
    {
        EventType.EMAIL_UNSUBSCRIBED,
        EventType.EMAIL_COMPLAINED,
        EventType.EMAIL_BOUNCED_HARD,
        EventType.EMAIL_BOUNCED_SOFT,
        EventType.EMAIL_DROPPED,
        EventType.MEETING_CANCELED,
    }
)
NEVER_SUBTRACTS = frozenset(
    {
        EventType.DEMO_REQUESTED,
        EventType.CONTACT_REQUESTED,
        EventType.MEETING_BOOKED,
        EventType.WEBINAR_REGISTERED,
        EventType.WEBINAR_ATTENDED,
        EventType.CONTENT_DOWNLOADED,
        EventType.FORM_SUBMITTED,
        EventType.EMAIL_CLICKED,
        EventType.EMAIL_OPENED,
    }
)
# Attributes the engine derives from another one: where the derived one carries the same
# information (each source value maps to its own derived value), the derived one is kept, since
# it also scores live leads whose exact value the history never saw.
DERIVED_FROM = {"seniority": "job_title", "region": "country"}
# Personal details, never fit signals.
PERSONAL_ATTRIBUTES = frozenset({"first_name", "last_name", "phone", "email_domain", "website"})
HALF_LIFE_GRID = (7.0, 10.0, 14.0, 20.0, 28.0, 40.0, 56.0, 80.0, 112.0, 160.0, 240.0, 365.0)
NO_DECAY_AFTER_DAYS = 365.0  # a best half-life at the grid's end means "does not fade": no half-life
SEARCH_C = 1.0
SWEEPS = 2
MIN_RULE_LEADS = 20  # a rule is a candidate when at least this many labelled leads have its events
MAX_PATTERNS_PER_TYPE = 6
MIN_PATTERN_SHARE = 0.05
CAP_QUANTILES = (0.5, 0.75, 0.9)
EVENT_POINT_DECIMALS = 2
SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass
class HistoryOptions:
    labels: LabelOptions = field(default_factory=LabelOptions)
    sql_share: float = 0.10
    mql_share: float = 0.30
    name: str | None = None
    seed: int = 0


@dataclass
class EventColumn:
    """One candidate event rule: its events' (lead, age at the decision moment) pairs."""

    rule_id: str
    event_type: EventType
    url_pattern: str | None
    label: str
    lead: np.ndarray  # int lead index per matching event
    age_days: np.ndarray  # decision moment - occurred_at, > 0
    lower: float = -np.inf
    upper: float = np.inf
    half_life: float | None = 28.0
    cap: float | None = None  # in decayed events

    def values(self, n: int, capped: bool = True) -> np.ndarray:
        """Each lead's feature under the rule's own half-life (and cap)."""
        x = self.with_half_life(n, self.half_life)
        return np.minimum(x, self.cap) if capped and self.cap is not None else x

    def with_half_life(self, n: int, half_life: float | None) -> np.ndarray:
        """Each lead's events decayed to its decision moment (None: no decay), uncapped."""
        weights = np.ones_like(self.age_days) if half_life is None else np.exp2(-self.age_days / half_life)
        return np.bincount(self.lead, weights=weights, minlength=n)


# ---------------------------------------------------------------- inputs


def _words(event_type: EventType) -> str:
    return event_type.value.replace("_", " ").capitalize()


def _segment(url: str | None) -> str | None:
    if not url:
        return None
    try:
        path = urlsplit(url.strip().casefold()).path
    except ValueError:
        return None
    first = path.strip("/").split("/", 1)[0]
    return first if SEGMENT.match(first) else None


def event_columns(
    seen: Sequence[Sequence[HistoryEvent]], cuts: Sequence[datetime], warnings: list[str]
) -> list[EventColumn]:
    """Candidate rules: every event type enough leads did, and for types that carry URLs, the
    first path segments that account for a share of them (`*/pricing*`)."""
    by_type: dict[EventType, tuple[list[int], list[float], list[str | None]]] = {}
    for index, (events, cut) in enumerate(zip(seen, cuts, strict=True)):
        for event in events:
            if event.event in NOT_FEATURES:
                continue
            leads, ages, segments = by_type.setdefault(event.event, ([], [], []))
            leads.append(index)
            ages.append((cut - event.occurred_at).total_seconds() / 86_400.0)
            segments.append(_segment(event.url))
    columns: list[EventColumn] = []
    taken: set[str] = set()
    for event_type in sorted(by_type):
        leads, ages, segments = by_type[event_type]
        lead, age = np.asarray(leads), np.asarray(ages)
        if len(set(leads)) < MIN_RULE_LEADS:
            warnings.append(
                f"{event_type.value}: only {len(set(leads))} labelled leads have it before their decision; "
                "not learned (too few to trust)"
            )
            continue
        lower = 0.0 if event_type in NEVER_SUBTRACTS else -np.inf
        upper = 0.0 if event_type in NEVER_ADDS else np.inf
        columns.append(
            EventColumn(
                rule_id=_unique_id(event_type.value, taken),
                event_type=event_type,
                url_pattern=None,
                label=_words(event_type),
                lead=lead,
                age_days=age,
                lower=lower,
                upper=upper,
            )
        )
        counts: dict[str, int] = {}
        for segment in segments:
            if segment is not None:
                counts[segment] = counts.get(segment, 0) + 1
        common = sorted(counts, key=lambda s: (-counts[s], s))[:MAX_PATTERNS_PER_TYPE]
        marks = np.array([s or "" for s in segments], dtype=object)
        for segment in common:
            mask = marks == segment
            if counts[segment] < MIN_PATTERN_SHARE * len(segments) or len(set(lead[mask])) < MIN_RULE_LEADS:
                continue
            columns.append(
                EventColumn(
                    rule_id=_unique_id(f"{event_type.value}_{segment}".replace("-", "_"), taken),
                    event_type=event_type,
                    url_pattern=f"*/{segment}*",
                    label=f"{_words(event_type)}: /{segment}",
                    lead=lead[mask],
                    age_days=age[mask],
                    lower=lower,
                    upper=upper,
                )
            )
    return columns


def attribute_frame(
    emails: Sequence[str], seen: Sequence[Sequence[HistoryEvent]], reference: ScoringModel
) -> pd.DataFrame:
    """One row per lead: its attributes as its profile would hold them at the decision moment,
    plus those the engine derives from them, as text ("" when absent)."""
    rows: list[dict[str, str]] = []
    for email, events in zip(emails, seen, strict=True):
        state = LeadState(email=email, attributes=latest_attributes(events))
        values = derived_attributes(reference, state)
        rows.append({k: _text(v) for k, v in values.items() if k not in PERSONAL_ATTRIBUTES})
    frame = pd.DataFrame(rows).fillna("")
    return frame.astype(str)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _reference_model() -> ScoringModel:
    return ScoringModel(
        name="reference",
        version="reference",
        grades=[Grade(grade="A", min_fit=0)],
        stages=[Stage(name="lead")],
    )


def _without_duplicates(
    features: list[Feature], frame: pd.DataFrame, dropped: dict[str, str]
) -> list[Feature]:
    """Drop a source attribute whose derived attribute partitions the leads the same way."""
    present = {f.column for f in features}
    kept = list(features)
    for derived, source in DERIVED_FROM.items():
        if derived not in present or source not in present:
            continue
        pairs = frame[[source, derived]].apply(lambda s: s.str.casefold())
        pairs = pairs[pairs[source] != ""]
        if pairs.groupby(source)[derived].nunique().max() == 1 and (
            pairs[source].nunique() == pairs[derived].nunique()
        ):
            kept = [f for f in kept if f.column != source]
            dropped[source] = f"the same information as {derived}, which also scores values never seen"
    return kept


# ---------------------------------------------------------------- fitting


def _deviance_one(
    offset: np.ndarray, x: np.ndarray, y: np.ndarray, lower: float, upper: float
) -> tuple[float, float]:
    """Best -2 log-likelihood of logit = offset + a + b * x with lower <= b <= upper (Newton on
    two parameters, the intercept re-fitted); returns (deviance, b)."""
    a, b = 0.0, 0.0
    for _ in range(50):
        z = offset + a + b * x
        p = expit(z)
        w = np.maximum(p * (1 - p), 1e-12)
        r = y - p
        g = np.array([r.sum(), (r * x).sum()])
        h = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum() + 1e-6]])
        step = np.linalg.solve(h, g)
        a, b = a + step[0], b + step[1]
        if not lower <= b <= upper:
            b = min(max(b, lower), upper)
            # re-fit the intercept alone with b fixed
            for _ in range(25):
                z = offset + a + b * x
                p = expit(z)
                a += (y - p).sum() / max((p * (1 - p)).sum(), 1e-12)
            break
        if np.abs(step).max() < 1e-8:
            break
    z = offset + a + b * x
    deviance = -2.0 * float(np.sum(y * z - np.logaddexp(0.0, z)))
    return deviance, b


def _best_half_life(deviance: Callable[[float | None], float]) -> tuple[float | None, float]:
    """The half-life minimising `deviance`: a log grid, then golden-section refinement between the
    best point's neighbours. None (no fading) when the grid's longest does best and no decay at
    all does better still. Returns (half-life, its deviance)."""
    grid = list(HALF_LIFE_GRID)
    scores = [deviance(h) for h in grid]
    best = int(np.argmin(scores))
    if best == len(grid) - 1:
        flat = deviance(None)
        return (None, flat) if flat <= scores[best] else (grid[best], scores[best])
    low = math.log(grid[max(best - 1, 0)])
    high = math.log(grid[best + 1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = deviance(math.exp(a)), deviance(math.exp(b))
    for _ in range(12):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = deviance(math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = deviance(math.exp(b))
    h = max(MIN_HALF_LIFE_DAYS, round(math.exp((low + high) / 2), 1))
    return h, deviance(h)


def _choose_cap(column: EventColumn, offset: np.ndarray, y: np.ndarray, n: int) -> float | None:
    """A cap where a saturating count beats a linear one by more than one parameter's BIC cost."""
    x = column.values(n, capped=False)
    present = x[x > 0]
    if present.size < MIN_RULE_LEADS:
        return None
    base, coef = _deviance_one(offset, x, y, column.lower, column.upper)
    if coef == 0:
        return None
    best, best_cap = base - math.log(n), None
    for q in CAP_QUANTILES:
        cap = float(np.quantile(present, q))
        if cap <= 0:
            continue
        dev, _ = _deviance_one(offset, np.minimum(x, cap), y, column.lower, column.upper)
        if dev < best:
            best, best_cap = dev, cap
    return best_cap


@dataclass
class Design:
    attr: np.ndarray
    events: np.ndarray  # decayed (and capped) counts, one column per event rule
    scales: np.ndarray  # each event column's spread: the penalty sees standardised columns

    def matrix(self) -> np.ndarray:
        return np.column_stack([self.attr, self.events / self.scales])


def _bounds(
    columns: Sequence[EventColumn], attr: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The attribute columns' bounds (monotone counts and sizes) followed by the event rules' signs."""
    lower = np.concatenate([attr[0], [c.lower for c in columns]])
    upper = np.concatenate([attr[1], [c.upper for c in columns]])
    return lower, upper


def _event_matrix(columns: Sequence[EventColumn], n: int) -> tuple[np.ndarray, np.ndarray]:
    if not columns:
        return np.zeros((n, 0)), np.ones(0)
    events = np.column_stack([c.values(n) for c in columns])
    scales = np.maximum(events.std(axis=0), 1e-3)
    return events, scales


def _fit_all(
    columns: Sequence[EventColumn],
    attr: np.ndarray,
    limits: tuple[np.ndarray, np.ndarray],
    y: np.ndarray,
    n: int,
) -> tuple[float, np.ndarray]:
    """Deviance of the full model (search penalty) and its standardised design's logits per column.
    `limits`: the attribute columns' bounds."""
    events, scales = _event_matrix(columns, n)
    x = Design(attr, events, scales).matrix()
    fitted = fit_logistic(x, y, SEARCH_C, *_bounds(columns, limits))
    z = fitted.decision_function(x)
    deviance = -2.0 * float(np.sum(y * z - np.logaddexp(0.0, z)))
    return deviance, x * fitted.coef


def _learn_dynamics(
    columns: list[EventColumn], attr: np.ndarray, limits: tuple[np.ndarray, np.ndarray], y: np.ndarray, n: int
) -> dict[str, Any]:
    """Half-lives and caps, by profile likelihood. First one half-life shared by every rule; then
    a rule gets its own only where that fits the outcomes better by more than the BIC cost of one
    parameter (log n): a rule's half-life is estimated from all the data unless the data says it
    differs. Then caps, by the same test."""
    if not columns:
        return {}
    yf = y.astype(float)

    def shared(h: float | None) -> float:
        for column in columns:
            column.half_life = h
        return _fit_all(columns, attr, limits, y, n)[0]

    common, _ = _best_half_life(shared)
    for column in columns:
        column.half_life = common
    own: dict[str, float | None] = {}
    for column in columns:
        _, parts = _fit_all(columns, attr, limits, y, n)
        position = attr.shape[1] + columns.index(column)
        offset = parts.sum(axis=1) - parts[:, position]  # the intercept is re-fitted in _deviance_one

        def alone(h: float | None, column: EventColumn = column, offset: np.ndarray = offset) -> float:
            return _deviance_one(offset, column.with_half_life(n, h), yf, column.lower, column.upper)[0]

        h, deviance = _best_half_life(alone)
        if alone(common) - deviance > math.log(n):
            column.half_life = h
            own[column.rule_id] = h
    dropped: list[str] = []
    for column in [c for c in columns if c.url_pattern is not None]:
        _, parts = _fit_all(columns, attr, limits, y, n)
        position = attr.shape[1] + columns.index(column)
        offset = parts.sum(axis=1) - parts[:, position]
        x = column.values(n)
        free = _deviance_one(offset, x, yf, column.lower, column.upper)[0]
        if _deviance_one(offset, x, yf, 0.0, 0.0)[0] - free <= math.log(n):
            columns.remove(column)  # the page says nothing its event type does not
            dropped.append(column.rule_id)
    for column in columns:
        _, parts = _fit_all(columns, attr, limits, y, n)
        position = attr.shape[1] + columns.index(column)
        column.cap = _choose_cap(column, parts.sum(axis=1) - parts[:, position], yf, n)
    return {"shared_half_life_days": common, "own_half_lives": own, "patterns_without_gain": dropped}


def _cv_logits(
    x: np.ndarray, y: np.ndarray, c: float, bounds: tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[np.ndarray, list[float]]:
    logits = np.zeros(len(y))
    aucs: list[float] = []
    for train, test in splitter(y, seed).split(x, y):
        fitted = fit_logistic(x[train], y[train], c, *bounds)
        logits[test] = fitted.decision_function(x[test])
        aucs.append(float(roc_auc_score(y[test], logits[test])))
    return logits, aucs


# ---------------------------------------------------------------- the learner


def learn_history(history: EventHistory, options: HistoryOptions) -> Learned:
    with threadpool_limits(1):
        return _learn(history, options)


def _check_labels(history: EventHistory, labelled: Labelled) -> None:
    y = np.asarray(labelled.y)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    left_out = ", ".join(f"{n} with {why}" for why, n in labelled.excluded.items()) or "none"
    if min(positives, negatives) < MIN_PER_OUTCOME:
        raise CommandError(
            f"{history.path}: {positives} positive and {negatives} negative leads after labelling "
            f"(left out: {left_out}); at least {MIN_PER_OUTCOME} of each are needed to learn or measure "
            "a score"
        )


def _learn(history: EventHistory, options: HistoryOptions) -> Learned:  # noqa: PLR0915
    started = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    if not 0 < options.sql_share < options.mql_share < 1:
        raise CommandError("--sql-share and --mql-share must satisfy 0 < sql-share < mql-share < 1")
    labelled = label_leads(history, options.labels)
    _check_labels(history, labelled)
    y = np.asarray(labelled.y, dtype=int)
    guardrails.check_floor(y)
    n = len(y)
    seen = [
        before(history.leads[email], cut) for email, cut in zip(labelled.emails, labelled.cuts, strict=True)
    ]
    reference = _reference_model()

    # Fit attributes, encoded as the CSV learner encodes columns.
    frame = attribute_frame(labelled.emails, seen, reference)
    mapping = Mapping()
    placeholders = mapping.placeholders()
    table = History(
        path=history.path, frame=frame, target_column="", id_column="", y=y, ids=list(labelled.emails)
    )
    features: list[Feature] = []
    if len(frame.columns):
        try:
            features = plan_features(table, mapping, warnings)
        except CommandError:
            features = []  # no usable attribute: a behaviour-only model
    features = _without_duplicates(features, frame, table.dropped)
    frame_counts = ColumnCounts.of(frame)
    for feature in features:
        feature.label = (feature.attribute or feature.column).replace("_", " ").capitalize()
    set_edges(features, frame_counts, placeholders, BIN_GRID[0])
    attr = design(features, frame, placeholders)

    columns = event_columns(seen, labelled.cuts, warnings)
    if not features and not columns:
        raise CommandError(f"{history.path}: no attribute or event type is common enough to learn from")
    t = time.perf_counter()
    if features:  # counts and sizes are monotone, in the direction an unconstrained fit prefers
        resolve_directions(features, fit_logistic(attr, y, SEARCH_C).coef)
    dynamics = _learn_dynamics(columns, attr, bounds(features), y, n)
    timings["half_lives_s"] = time.perf_counter() - t

    # Penalty and bins by cross-validated AUC.
    t = time.perf_counter()
    events, scales = _event_matrix(columns, n)
    best: tuple[float, int, float, np.ndarray, list[float]] | None = None
    grid: list[dict[str, float]] = []
    for bins in BIN_GRID:
        set_edges(features, frame_counts, placeholders, bins)
        x = Design(design(features, frame, placeholders), events, scales).matrix()
        limits = _bounds(columns, bounds(features))
        for c in C_GRID:
            logits, aucs = _cv_logits(x, y, c, limits, options.seed)
            auc = float(roc_auc_score(y, logits))
            grid.append({"bins": bins, "C": c, "cv_auc": round(auc, 5)})
            if best is None or auc > best[0] + 1e-9:
                best = (auc, bins, c, logits, aucs)
        if not features:
            break
    assert best is not None
    cv_auc, bins, c, oof_logits, fold_aucs = best
    set_edges(features, frame_counts, placeholders, bins)
    attr = design(features, frame, placeholders)
    x = Design(attr, events, scales).matrix()
    limits = _bounds(columns, bounds(features))
    fitted = fit_logistic(x, y, c, *limits)
    curve = guardrails.learning_curve(
        x, y, lambda a, b: fit_logistic(a, b, c, *limits), splitter(y, options.seed), options.seed
    )
    warnings += guardrails.check_history(y, curve.full, curve.half)
    timings["cross_validation_s"] = time.perf_counter() - t
    logits = fitted.decision_function(x)
    span = SCORE_SPAN / max(float(logits.max() - logits.min()), 1e-9)

    # Coefficients -> rules.
    rules: dict[Category, list[AttributeRule | AggregateRule | PairRule | SegmentRule | EventRule]] = {
        "fit": [],
        "engagement": [],
        "negative": [],
    }
    offset_logit = fitted.intercept
    position = 0
    dropped = dict(table.dropped)
    for feature in features:
        shape = _shape(feature, fitted.coef[position : position + feature.width()])
        position += feature.width()
        values = shape.all_values(feature)
        shift = min(values)
        offset_logit += shift
        rule = _rule(feature, shape, span, shift)
        if rule is None:
            dropped[feature.column] = "no effect (all points 0)"
            continue
        rules["fit"].append(rule)
    half_lives: dict[str, float | None] = {}
    for index, column in enumerate(columns):
        beta = float(fitted.coef[attr.shape[1] + index] / scales[index])
        points = round(span * beta, EVENT_POINT_DECIMALS) + 0.0
        if points == 0:
            dropped[column.rule_id] = "no effect (0 points)"
            continue
        cap = None if column.cap is None else round(abs(points) * column.cap, EVENT_POINT_DECIMALS)
        event_rule = EventRule(
            id=column.rule_id,
            label=column.label,
            event_types=[column.event_type],
            url_pattern=column.url_pattern,
            points=points,
            half_life_days=column.half_life,
            cap=cap or None,
        )
        half_lives[column.rule_id] = column.half_life
        rules["negative" if points < 0 else "engagement"].append(event_rule)
    offset = round(span * (offset_logit - float(logits.min())), 4) + 0.0
    created = datetime.now(UTC)
    version = f"learned-{created:%Y%m%d%H%M%S}-{history.digest[:8]}"
    metadata: dict[str, Any] = {
        "learned_by": "leadscore calibrate --history",
        "created_at": created.isoformat(timespec="seconds"),
        "method": (
            "event-level L2 logistic regression: attributes as of each lead's decision moment (binned, "
            "one-hot with rare levels pooled), plus one feature per event rule = its events decayed to the "
            "decision moment; half-lives per rule by profile likelihood (log grid + golden section, two "
            "sweeps), caps where a saturating count beats a linear one by more than BIC, signs bounded "
            "where the domain dictates; bins and C chosen by stratified 5-fold CV AUC"
        ),
        "source": {"file": history.path.name, "sha256": history.digest, "events": history.lines},
        "history": options.labels.describe(),
        "rows": n,
        "conversions": int(y.sum()),
        "base_rate": round(float(y.mean()), 6),
        "left_out": dict(labelled.excluded),
        "cv_auc": round(cv_auc, 5),
        "cv_fold_auc": [round(a, 4) for a in fold_aucs],
        "cv_grid": grid,
        "chosen": {"bins": bins, "C": c},
        "half_lives": half_lives,
        "half_life_search": dynamics,
        "points_per_logit": round(span, 6),
        "dropped": dropped,
    }
    scores_logit = span * (logits - float(logits.min()))
    draft = ScoringModel(
        name=options.name or f"learned-{history.path.stem}"[:64],
        version=version,
        description=(
            f"Learned by `leadscore calibrate --history` from {history.path.name} "
            f"({n} leads, base rate {y.mean():.1%})."
        ),
        offset=offset,
        total_min=math.floor(min(0.0, float(scores_logit.min()))) - 50,
        total_max=math.ceil(float(scores_logit.max())) + 100,
        fit=Section(rules=rules["fit"]),
        engagement=Section(rules=rules["engagement"]),
        negative=Section(rules=rules["negative"]),
        grades=[Grade(grade="A", min_fit=0.0)],
        stages=[Stage(name="lead")],
        metadata=metadata,
    )
    t = time.perf_counter()
    results = score_leads(draft, history, labelled)
    timings["replay_s"] = time.perf_counter() - t
    return finish(
        draft, results, y, span * (oof_logits - float(logits.min())), options, timings, warnings, started
    )


# ---------------------------------------------------------------- scoring and backtesting


def score_leads(model: ScoringModel, history: EventHistory, labelled: Labelled) -> list[ScoreResult]:
    """Every labelled lead scored by THE engine at its decision moment, from its events replayed."""
    return [
        score(model, replay(model, email, history.leads[email], cut), cut)
        for email, cut in zip(labelled.emails, labelled.cuts, strict=True)
    ]


def label_options_for(
    model: ScoringModel, positive: Sequence[EventType] | None, maturity_days: float | None
) -> LabelOptions:
    """The labels the model was learned with, unless overridden on the command line."""
    recorded = model.metadata.get("history")
    spec = recorded if isinstance(recorded, dict) else {}
    try:
        chosen_positive = (
            tuple(positive) if positive else tuple(EventType(p) for p in spec.get("positive", ["deal_won"]))
        )
        days = maturity_days if maturity_days is not None else float(spec.get("maturity_days", 90.0))
    except (TypeError, ValueError) as exc:
        raise CommandError(
            f"the model's metadata.history is not usable ({exc}); pass --positive and --maturity-days"
        ) from None
    return LabelOptions(positive=chosen_positive, maturity_days=days)


def backtest_history(
    model: ScoringModel, history: EventHistory, options: LabelOptions
) -> tuple[dict[str, Any], list[ScoreResult], np.ndarray]:
    """Label the leads as calibrate does and score each by replaying its events through the
    runtime engine as of its decision moment."""
    labelled = label_leads(history, options)
    _check_labels(history, labelled)
    y = np.asarray(labelled.y, dtype=int)
    results = score_leads(model, history, labelled)
    metrics = evaluate(model, results, y)
    metrics["labels"] = {**options.describe(), "left_out": dict(labelled.excluded)}
    return metrics, results, y
