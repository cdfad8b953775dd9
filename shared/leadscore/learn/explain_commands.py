"""`leadscore explain` and `leadscore score`: one lead's (or every lead's) score and its reasons,
and a file of leads scored to CSV. Registered by `leadscore.cli`.

Both read the two kinds of input the learners read, and build each lead exactly as the backtests
do, so a score printed here is the one `backtest` (and the Lambdas) give:
- an event history (JSON Lines, `learn/history.py`): each lead's events replayed through the
  engine as of its decision moment when it has an outcome (just before its first one, as
  `label_leads` cuts), else as of the history's last event (`--at` sets another moment);
- a CSV with one row per lead (`--id-column`), built like `backtest` builds it
  (`learn/leadstate.py`) and scored at the model epoch; the outcome column is never read.

Neither needs the training extra: only pydantic (and PyYAML for a `--mapping`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from leadscore.cli import CommandError
from leadscore.domain import OUTCOME_EVENT_TYPES, ensure_utc, normalize_email
from leadscore.errors import ModelError
from leadscore.learn.commands import write_atomically
from leadscore.learn.history import check_moment, load_events, replay
from leadscore.learn.leadstate import StateBuilder, builder_for_columns, builder_from_metadata
from leadscore.learn.mapping import load_mapping
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.engine import LeadState
from leadscore.scoring.explain import Explanation, explain
from leadscore.scoring.model import ScoringModel

HISTORY_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
# "As of" a moment includes the events at that moment (a replay keeps those strictly before its cut).
INCLUSIVE = timedelta(microseconds=1)
SCORE_COLUMNS = ("lead", "score", "grade", "probability", "stage", "scored_at")


@dataclass(frozen=True)
class Lead:
    id: str  # the email (history) or the id column's value (CSV)
    state: LeadState
    at: datetime  # the moment it is scored


# ------------------------------------------------------------------------------------ commands
def register(subparsers: Any) -> None:
    explain_parser = subparsers.add_parser(
        "explain",
        help="print one lead's (or every lead's) score and the reasons for it",
        description=(
            "Score leads with the runtime engine and explain each score: at most 8 reasons, each "
            "compared with the model's average lead, the rest folded into 'other factors'."
        ),
    )
    explain_parser.add_argument("model", metavar="MODEL", help="model file, bundled:NAME, s3:// or ssm:")
    explain_parser.add_argument("csv", nargs="?", metavar="CSV", help="one row per lead (needs --id-column)")
    explain_parser.add_argument("--history", metavar="FILE.jsonl", help="an event history instead of a CSV")
    explain_parser.add_argument("--lead", metavar="EMAIL_OR_ID", help="only this lead (default: every lead)")
    explain_parser.add_argument("--json", action="store_true", help="JSON Lines: one object per lead")
    _input_options(explain_parser)
    explain_parser.set_defaults(run=run_explain)

    score_parser = subparsers.add_parser(
        "score",
        help="score a file of leads (CSV or event history) to CSV",
        description="Every lead's score, grade, probability and stage, as the runtime engine computes them.",
    )
    score_parser.add_argument("model", metavar="MODEL", help="model file, bundled:NAME, s3:// or ssm:")
    score_parser.add_argument(
        "file", metavar="FILE", help="an event history (.jsonl) or a CSV with one row per lead (--id-column)"
    )
    score_parser.add_argument("--out", metavar="OUT.csv", help="where to write the CSV (default: stdout)")
    _input_options(score_parser)
    score_parser.set_defaults(run=run_score)


def _input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-column", metavar="COL", help="CSV: the column with each lead's id")
    parser.add_argument("--target", metavar="COL", help="CSV: the outcome column, if any (never read)")
    parser.add_argument(
        "--mapping", metavar="MAPPING.yaml", help="CSV and a hand-written model: column -> attribute/events"
    )
    parser.add_argument(
        "--at",
        metavar="ISO",
        help="history: score every lead as of this moment (default: just before its first outcome, "
        "else the history's last event)",
    )


def run_explain(args: argparse.Namespace) -> int:
    if (args.history is None) == (args.csv is None):
        raise CommandError("give either a CSV file (with --id-column) or --history FILE.jsonl")
    model = _load_model(args.model)
    is_history = args.history is not None
    leads = _leads(model, args.history or args.csv, is_history, args)
    if args.lead is not None:
        leads = [_one(leads, args.lead, is_history)]
    for lead in leads:
        explanation = explain(model, engine.score(model, lead.state, lead.at), state=lead.state)
        print(_json_line(lead, explanation) if args.json else _text(lead, explanation))
    return 0


def run_score(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    if args.out is not None:
        parent = Path(args.out).parent
        if not parent.is_dir() or Path(args.out).is_dir():
            raise CommandError(f"--out {args.out}: not a file in an existing directory")
    leads = _leads(model, args.file, _is_history(Path(args.file)), args)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for lead in leads:
        result = engine.score(model, lead.state, lead.at)
        writer.writerow(
            [
                lead.id,
                f"{round(result.total, 2):g}",
                result.grade,
                "" if result.probability is None else f"{round(result.probability, 4):g}",
                engine.next_stage(model, model.initial_stage, result.total),
                result.at.isoformat().replace("+00:00", "Z"),
            ]
        )
    if args.out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        write_atomically(args.out, buffer.getvalue())
        print(
            f"scored {len(leads)} leads with {model.name} {model.version}: wrote {args.out}", file=sys.stderr
        )
    return 0


# ------------------------------------------------------------------------------------ output
def _json_line(lead: Lead, explanation: Explanation) -> str:
    return json.dumps(
        {
            "lead": lead.id,
            "score": explanation.score,
            "average": explanation.average,
            "reasons": [{"label": r.label, "points": r.points} for r in explanation.reasons],
            "other": explanation.other,
        },
        ensure_ascii=False,
    )


def _text(lead: Lead, explanation: Explanation) -> str:
    if explanation.relative_to == "average_lead":
        difference = explanation.score - explanation.average
        head = f"score {explanation.score:g}, average lead {explanation.average:g} ({difference:+.1f}):"
    else:
        head = f"score {explanation.score:g} (the model has no average lead: each rule's own points):"
    lines = [f"{lead.id}: {head}"]
    lines += [f"  {r.points:+6.1f}  {r.label}" for r in explanation.reasons]
    if explanation.other:
        lines.append(f"  {explanation.other:+6.1f}  other factors")
    return "\n".join(lines)


def _one(leads: Sequence[Lead], wanted: str, is_history: bool) -> Lead:
    try:
        key = normalize_email(wanted) if is_history and "@" in wanted else wanted.strip()
    except ValueError as exc:
        raise CommandError(f"--lead {wanted!r}: not an email address ({exc})") from None
    for lead in leads:
        if lead.id == key:
            return lead
    kind = "email" if is_history else "id"
    raise CommandError(f"no lead with {kind} {wanted!r} in the file ({len(leads)} leads)")


# ------------------------------------------------------------------------------------ input
def _load_model(source: str) -> ScoringModel:
    try:
        return load_model(source)
    except ModelError as exc:
        raise CommandError(exc.message) from exc


def _is_history(path: Path) -> bool:
    """A JSON Lines history by its suffix, or by its first character ({) when the suffix says nothing."""
    if path.suffix.casefold() in HISTORY_SUFFIXES:
        return True
    if path.suffix.casefold() in {".csv", ".tsv", ".txt"} or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig") as handle:
            head = handle.read(4096).lstrip()
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith("{")


def _leads(model: ScoringModel, source: str, is_history: bool, args: argparse.Namespace) -> list[Lead]:
    if is_history:
        for option in ("id_column", "mapping"):
            if getattr(args, option) is not None:
                raise CommandError(f"--{option.replace('_', '-')} applies to a CSV, not to an event history")
        return history_leads(model, Path(source), _moment(args.at))
    if args.at is not None:
        raise CommandError(
            "--at applies to an event history; CSV leads are scored as the file describes them"
        )
    if args.id_column is None:
        raise CommandError(f"{source}: a CSV needs --id-column (the column with each lead's id)")
    return csv_leads(model, Path(source), args.id_column, args.target, args.mapping)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = ensure_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError as exc:
        raise CommandError(f"--at {text!r}: not an ISO 8601 moment (e.g. 2026-03-01T00:00:00Z)") from exc
    try:
        return check_moment(moment, "--at")
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def history_leads(model: ScoringModel, path: Path, at: datetime | None = None) -> list[Lead]:
    """Each lead of a history as the runtime held it: as of `at` when given (leads not yet seen
    then are left out), else just before its first outcome, else as of the history's end."""
    history = load_events(path)
    leads: list[Lead] = []
    for email, events in history.leads.items():
        outcome = next((e.occurred_at for e in events if e.event in OUTCOME_EVENT_TYPES), None)
        if at is not None:
            if events[0].occurred_at > at:
                continue
            moment, cut = at, at + INCLUSIVE
        elif outcome is not None:
            moment = cut = outcome
        else:
            moment, cut = history.end, history.end + INCLUSIVE
        leads.append(Lead(id=email, state=replay(model, email, events, cut), at=moment))
    if not leads:
        raise CommandError(f"{path}: no lead had any event by --at {at.isoformat() if at else ''}")
    return leads


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV as `learn/dataset.read_csv` reads it (stripped strings, "" when empty, trailing empty
    unnamed columns dropped), with the csv module: no pandas needed."""
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if path.is_dir():
        raise CommandError(f"{path}: is a directory, not a CSV file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except (OSError, csv.Error) as exc:
        raise CommandError(f"{path}: not a readable CSV file: {exc}") from exc
    if not lines:
        raise CommandError(f"{path}: the file is empty (no header, no rows)")
    header = [name.strip() for name in lines[0]]
    repeated = sorted({n for n in header if n and header.count(n) > 1})
    if repeated:
        raise CommandError(f"{path}: repeated column names in the header: {', '.join(repeated[:5])}")
    rows: list[dict[str, str]] = []
    for number, values in enumerate(lines[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise CommandError(f"{path}: line {number} has {len(values)} fields, the header {len(header)}")
        padded = [v.strip() for v in values] + [""] * (len(header) - len(values))
        rows.append(dict(zip(header, padded, strict=True)))
    return [name for name in header if name], rows


def csv_leads(
    model: ScoringModel, path: Path, id_column: str, target: str | None, mapping_path: str | None
) -> list[Lead]:
    """Each row as the lead `backtest` builds from it, scored at the model epoch."""
    header, rows = read_rows(path)
    if id_column not in header:
        raise CommandError(
            f"{path}: no column {id_column!r} (--id-column); the columns are: {', '.join(header[:8])}"
        )
    if not rows:
        raise CommandError(f"{path}: the file has a header but no rows")
    source = model.metadata.get("source")
    ignored = {id_column, target, source.get("target") if isinstance(source, dict) else None}
    features = [c for c in header if c not in ignored]
    builder = None if mapping_path else builder_from_metadata(model)
    if builder is None:
        builder = builder_for_columns(model, features, load_mapping(mapping_path))
    for column in ignored & builder.columns:
        builder.attributes.pop(str(column), None)
        builder.counts.pop(str(column), None)
        builder.accumulators.pop(str(column), None)
    wanted = builder.columns
    missing = sorted(wanted - set(header))
    if wanted and len(missing) == len(wanted):
        raise CommandError(
            f"{path}: the file has none of the columns the model reads ({', '.join(missing[:10])})"
        )
    if missing:
        print(
            f"leadscore: warning: {path} lacks {', '.join(missing[:10])}: "
            "those rules score every lead as missing",
            file=sys.stderr,
        )
    return list(_rows_as_leads(model, path, rows, id_column, builder))


def _rows_as_leads(
    model: ScoringModel, path: Path, rows: list[dict[str, str]], id_column: str, builder: StateBuilder
) -> Iterator[Lead]:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        lead_id = row[id_column]
        if not lead_id:
            raise CommandError(f"{path}: id column {id_column!r} is empty on a row (about CSV line {number})")
        if lead_id in seen:
            raise CommandError(
                f"{path}: id {lead_id!r} appears twice in {id_column!r}; each lead must appear once"
            )
        seen.add(lead_id)
        yield Lead(id=lead_id, state=builder.build(row, lead_id), at=model.epoch)
