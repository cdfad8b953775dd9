"""`calibrate --segment-by ATTRIBUTE`: one learned model per value of a lead attribute, plus a
shared fallback, written as a catalog (`leadscore.scoring.catalog`).

The data flow, the same for a CSV history and an event history (the caller supplies the learner):

1. Each historical lead's value of the attribute, as the runtime reads it (derived attributes
   included: `seniority` from `job_title`, `region` from `country`), trimmed and case-folded like
   a catalog condition compares it. Values are taken as text: a numeric attribute segments by its
   exact values (bin it into a text attribute upstream for ranges).
2. A value is a candidate segment when it has at least the floor of leads (`--min-segment-leads`,
   never below the learner's own `guardrails.MIN_LEADS`) and `guardrails.MIN_RARER` of each outcome.
3. The fallback is learned on ALL leads; each candidate's model on its own leads. Both learners'
   out-of-fold (5-fold cross-validated) scores give a held-out AUC on the segment's leads for the
   segment model and for the fallback; a segment model that does not beat the fallback there is
   dropped (the fallback serves its leads).
4. The catalog: the fallback first (the primary model: it keeps the single-model storage names)
   applying to leads whose value is none of the kept segments' or missing; each kept segment's
   model applying to its value. Every lead meets exactly one model; checked on the training leads
   through the runtime's own `applicable` before anything is written.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.metrics import roc_auc_score

from leadscore.cli import CommandError
from leadscore.learn import guardrails
from leadscore.learn.thresholds import Learned
from leadscore.model_store import CATALOG_FILE, parse_catalog
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog, applicable

FALLBACK_ID = "fallback"
MAX_SEGMENTS = 11  # a catalog holds at most 12 models, the fallback included
_ID_CHARS = re.compile(r"[^a-z0-9]+")

# Statuses of a segment in the report.
KEPT = "kept"
DROPPED = "dropped: the fallback ranks these leads at least as well"
UNDER_FLOOR = "under the floor"


@dataclass
class Segment:
    """One value of the attribute: its leads, and what became of its model."""

    value: str  # the most common spelling seen
    key: str  # trimmed, case-folded: what a catalog condition compares
    leads: int
    positives: int
    model_id: str | None = None
    status: str = UNDER_FLOOR
    own_auc: float | None = None  # held-out AUC of the segment's model on its leads
    fallback_auc: float | None = None  # held-out AUC of the fallback on the same leads
    learned: Learned | None = None

    @property
    def kept(self) -> bool:
        return self.status == KEPT


@dataclass
class Segmented:
    """What `learn_segmented` produced: the catalog, its files, and the figures for the report."""

    attribute: str
    catalog: Catalog
    files: dict[str, str]  # file name in the --out folder -> text (catalog.yaml included)
    fallback: Learned
    segments: list[Segment]
    floor: int
    served_by_fallback: dict[str, Any]  # leads, positives, held-out AUC of the leads it serves
    model_of: list[str]  # per training lead: the id of the model that applies to it
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def results(self) -> list[engine.ScoreResult]:
        """Each training lead's in-sample score by the model that applies to it."""
        by_id = {s.model_id: s.learned for s in self.segments if s.kept and s.learned}
        position = dict.fromkeys(by_id, 0)
        out: list[engine.ScoreResult] = []
        for index, model_id in enumerate(self.model_of):
            learned = by_id.get(model_id)
            if learned is None:
                out.append(self.fallback.results[index])
            else:
                out.append(learned.results[position[model_id]])
                position[model_id] += 1
        return out


def key_of(value: engine.AttributeValue | None) -> str:
    """A value as a catalog condition compares it ("" for missing): see `engine._Readings`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    return str(value).strip().casefold()


def check_floor_option(min_leads: int | None) -> int:
    """The floor a segment needs: --min-segment-leads, never below the learner's own."""
    if min_leads is None:
        return guardrails.MIN_LEADS
    if min_leads < 1:
        raise CommandError(f"--min-segment-leads must be at least 1, got {min_leads}")
    return max(min_leads, guardrails.MIN_LEADS)


def _model_id(value: str, taken: set[str]) -> str:
    base = _ID_CHARS.sub("-", value.casefold()).strip("-") or "segment"
    if not base[0].isalpha():
        base = f"s-{base}"
    base = base[:28].rstrip("-")
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return round(float(roc_auc_score(y, scores)), 4)


def candidates(
    attribute: str, raw: Sequence[engine.AttributeValue | None], y: np.ndarray, floor: int
) -> list[Segment]:
    """Every value seen, most leads first, each marked as a candidate or under the floor."""
    keys = [key_of(v) for v in raw]
    spellings: dict[str, Counter[str]] = {}
    for key, value in zip(keys, raw, strict=True):
        if key:
            spellings.setdefault(key, Counter())[str(value).strip()] += 1
    if not spellings:
        raise CommandError(f"--segment-by {attribute}: no lead of the history has a value for it")
    segments = []
    for key, spelled in spellings.items():
        mask = np.array([k == key for k in keys])
        positives = int(y[mask].sum())
        segment = Segment(
            value=spelled.most_common(1)[0][0], key=key, leads=int(mask.sum()), positives=positives
        )
        rarer = min(positives, segment.leads - positives)
        if segment.leads >= floor and rarer >= guardrails.MIN_RARER:
            segment.status = "candidate"
        segments.append(segment)
    segments.sort(key=lambda s: (-s.leads, s.key))
    chosen = [s for s in segments if s.status == "candidate"]
    for extra in chosen[MAX_SEGMENTS:]:
        extra.status = f"{UNDER_FLOOR} (a catalog holds at most {MAX_SEGMENTS} segment models)"
    if not chosen:
        raise CommandError(
            f"--segment-by {attribute}: no value has enough leads to learn from (each segment needs at least "
            f"{floor} leads and {guardrails.MIN_RARER} of each outcome; the largest, "
            f"{segments[0].value!r}, has {segments[0].leads} leads, {segments[0].positives} converted)"
        )
    return segments


def learn_segmented(
    attribute: str,
    raw: Sequence[engine.AttributeValue | None],
    y: np.ndarray,
    floor: int,
    learn: Callable[[np.ndarray | None, str | None], Learned],
    state_of: Callable[[int], engine.LeadState],
    name: str,
) -> Segmented:
    """`raw[i]`, `y[i]`: lead i's value of the attribute and outcome, in the learner's lead order.
    `learn(mask, model_id)` learns on the leads of `mask` (None: all of them), its results in the
    same order; `state_of(i)` is lead i's runtime state (to check every lead meets one model)."""
    started = time.perf_counter()
    segments = candidates(attribute, raw, y, floor)
    keys = np.array([key_of(v) for v in raw], dtype=object)
    fallback = learn(None, FALLBACK_ID)
    assert fallback.oof_scores is not None
    warnings = [f"[{FALLBACK_ID}] {w}" for w in fallback.warnings]
    taken = {FALLBACK_ID}
    for segment in segments:
        if segment.status != "candidate":
            continue
        mask = keys == segment.key
        segment.model_id = _model_id(segment.value, taken)
        try:
            learned = learn(mask, segment.model_id)
        except CommandError as exc:
            segment.status = f"not learned ({exc.message})"
            continue
        assert learned.oof_scores is not None
        segment.learned = learned
        segment.own_auc = _auc(y[mask], learned.oof_scores)
        segment.fallback_auc = _auc(y[mask], fallback.oof_scores[mask])
        beats = segment.own_auc is not None and (
            segment.fallback_auc is None or segment.own_auc > segment.fallback_auc
        )
        segment.status = KEPT if beats else DROPPED
        if beats:
            warnings += [f"[{segment.model_id}] {w}" for w in learned.warnings]
    kept = [s for s in segments if s.kept]
    catalog, files = _catalog(attribute, name, fallback, kept)
    expected = {s.key: s.model_id for s in kept}
    model_of = []
    for index in range(len(y)):
        applying = [entry.id for entry in applicable(catalog, state_of(index))]
        # Leads were learned from by the model the engine will score them with: checked, never assumed.
        if applying != [expected.get(keys[index], FALLBACK_ID)]:
            raise CommandError(
                f"internal error: lead {index} meets {applying or 'no model'} of the segmented catalog"
            )
        model_of.append(applying[0])
    served = np.array([m == FALLBACK_ID for m in model_of])
    return Segmented(
        attribute=attribute,
        catalog=catalog,
        files=files,
        fallback=fallback,
        segments=segments,
        floor=floor,
        served_by_fallback={
            "leads": int(served.sum()),
            "positives": int(y[served].sum()),
            "auc": _auc(y[served], fallback.oof_scores[served]) if served.any() else None,
        },
        model_of=model_of,
        warnings=warnings,
        seconds=time.perf_counter() - started,
    )


def _catalog(
    attribute: str, name: str, fallback: Learned, kept: list[Segment]
) -> tuple[Catalog, dict[str, str]]:
    values = [s.value for s in kept]
    rest = {"attributes": [{"attribute": attribute, "not_values": values, "missing": True}]} if values else {}
    entries: list[dict[str, Any]] = [{"id": FALLBACK_ID, "applies_when": rest, "file": f"{FALLBACK_ID}.yaml"}]
    files = {f"{FALLBACK_ID}.yaml": fallback.text}
    for segment in kept:
        assert segment.learned is not None and segment.model_id is not None
        entries.append(
            {
                "id": segment.model_id,
                "applies_when": {"attributes": [{"attribute": attribute, "values": [segment.value]}]},
                "file": f"{segment.model_id}.yaml",
            }
        )
        files[f"{segment.model_id}.yaml"] = segment.learned.text
    document = {
        "name": name[:64],
        "description": (
            f"Learned by `leadscore calibrate --segment-by {attribute}`: one model per value of {attribute} "
            f"with enough history ({', '.join(values) or 'none kept'}), and `{FALLBACK_ID}`, learned on all "
            "leads, for every other value and for leads without one."
        ),
        "models": entries,
    }
    text = (
        f"# Segmented by {attribute}: every lead meets exactly one model (the first is the fallback).\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    )
    files[CATALOG_FILE] = text

    def sibling(file_name: str) -> str:
        return files[file_name]

    return parse_catalog(text, "segmented catalog", sibling), files


def write_folder(out: str | Path, files: dict[str, str]) -> None:
    """Write every file into a new folder, all at once: a temporary folder renamed at the end,
    so `--out` is either absent or complete. An existing `--out` is never overwritten."""
    target = Path(out)
    if target.exists():
        raise CommandError(f"--out {target}: already exists; with --segment-by, --out names a new folder")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"--out {target}: directory {parent} does not exist")
    temporary = parent / f".{target.name}.{time.time_ns()}.tmp"
    temporary.mkdir()
    try:
        for file_name, text in files.items():
            (temporary / file_name).write_text(text, encoding="utf-8")
        temporary.rename(target)
    except BaseException:
        for child in temporary.glob("*"):
            child.unlink()
        temporary.rmdir()
        raise


def report_lines(segmented: Segmented) -> list[str]:
    """The per-segment table calibrate prints (and the HTML report's notes)."""
    attribute = segmented.attribute
    kept = [s for s in segmented.segments if s.kept]
    dropped = [s for s in segmented.segments if s.status == DROPPED]
    under = [s for s in segmented.segments if s.status.startswith(UNDER_FLOOR)]
    lines = [
        f"segmented by {attribute}: {len(kept)} segment model(s) kept, {len(dropped)} dropped, "
        f"{len(under)} value(s) under the floor ({segmented.floor} leads and {guardrails.MIN_RARER} of each "
        f"outcome); `{FALLBACK_ID}` learned on all {len(segmented.model_of)} leads",
        "held-out AUC = 5-fold cross-validated (out-of-fold) AUC on the segment's own leads",
        f"{'segment':<28} {'model':<16} {'leads':>6} {'positives':>9} {'AUC segment':>11} "
        f"{'AUC fallback':>12}  outcome",
    ]

    def shown(auc: float | None) -> str:
        return "-" if auc is None else f"{auc:.4f}"

    for s in segmented.segments:
        label = f"{attribute}={s.value}"[:28]
        model = s.model_id if s.kept else "-"
        lines.append(
            f"{label:<28} {model:<16} {s.leads:>6} {s.positives:>9} {shown(s.own_auc):>11} "
            f"{shown(s.fallback_auc):>12}  {s.status}"
        )
    missing = len(segmented.model_of) - sum(s.leads for s in segmented.segments)
    if missing:
        lines.append(f"{f'{attribute} missing':<28} {'-':<16} {missing:>6}")
    served = segmented.served_by_fallback
    auc = "" if served["auc"] is None else f", held-out AUC {served['auc']:.4f}"
    lines.append(
        f"`{FALLBACK_ID}` serves {served['leads']} leads ({served['positives']} converted{auc}): "
        f"{attribute} missing or not one of {', '.join(s.value for s in kept) or 'the segments'}"
    )
    return lines
