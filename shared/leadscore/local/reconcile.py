"""The demo's check that a model's stage counts (from the lead API) follow from the stage changes
it announced: a stage holds the leads that entered it minus those that left it, and each lead is in
the stage its last announced transition took it to (the first stage without one).

This holds for a model that announces every transition (each stage after the first has `on_enter`
and `on_exit`), counting the leads the model ranks and that are not suppressed: a suppressed lead's
promotions are never announced, and a lead the model stopped applying to leaves it silently."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.scoring.model import ScoringModel


@dataclass
class Reconciliation:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def unannounced_stages(model: ScoringModel) -> list[str]:
    """Stages (after the first) a lead can enter or leave without an announcement."""
    return [s.name for s in model.stages[1:] if s.on_enter is None or s.on_exit is None]


def reconcile(
    model_id: str,
    model: ScoringModel,
    messages: Iterable[Mapping[str, Any]],
    leads: Iterable[Mapping[str, Any]],
) -> Reconciliation:
    """`messages`: every stage change the model announced (all topics, no filter, any order);
    `leads`: the model's ranked leads from the lead API (`lead_id`, `stage`, `suppressed`)."""
    result = Reconciliation()
    silent = unannounced_stages(model)
    if silent:
        result.lines.append(
            f"  {model_id}: not reconciled: {', '.join(silent)} can be entered or left without an "
            "announcement (no on_enter/on_exit)"
        )
        return result
    ranked = list(leads)
    counted = {str(lead["lead_id"]): str(lead["stage"]) for lead in ranked if not lead.get("suppressed")}
    moves: dict[str, list[Mapping[str, Any]]] = {}
    unique = {str(m["transition_id"]): m for m in messages}  # SNS may deliver a message twice
    for message in sorted(unique.values(), key=lambda m: str(m["occurred_at"])):
        moves.setdefault(str(message["lead_id"]), []).append(message)
    listed = {str(lead["lead_id"]) for lead in ranked}
    left = sorted(lead_id for lead_id in moves if lead_id not in listed)
    transitions = [m for lead_id, lead_moves in moves.items() if lead_id in counted for m in lead_moves]
    by_move = Counter(f"{m['from_stage']} -> {m['to_stage']}" for m in transitions)
    promotions = {k: n for k, n in by_move.items() if _is_promotion(model, k)}
    demotions = {k: n for k, n in by_move.items() if not _is_promotion(model, k)}
    paths = Counter(
        " -> ".join([str(lead_moves[0]["from_stage"]), *(str(m["to_stage"]) for m in lead_moves)])
        for lead_id, lead_moves in moves.items()
        if lead_id in counted and len(lead_moves) > 1
    )
    result.lines.append(
        f"  {model_id}: promotions {sum(promotions.values())} ({_listed(promotions) or 'none'}), "
        f"demotions {sum(demotions.values())} ({_listed(demotions) or 'none'}); "
        f"leads that moved more than once {sum(paths.values())} "
        f"({_listed(dict(paths.most_common(3))) or 'none'})"
    )
    stages = [s.name for s in model.stages]
    counts = Counter(counted.values())
    for stage in stages[1:]:
        entered = sum(n for k, n in by_move.items() if k.endswith(f" -> {stage}"))
        gone = {k.split(" -> ")[1]: n for k, n in by_move.items() if k.startswith(f"{stage} -> ")}
        expected = entered - sum(gone.values())
        went = ", ".join(f"{n} to {to}" for to, n in sorted(gone.items()))
        result.lines.append(
            f"    {stage} {counts[stage]} = {entered} in - {sum(gone.values())} out"
            + (f" ({went})" if went else "")
        )
        if counts[stage] != expected:
            result.problems.append(
                f"{model_id}: the lead API has {counts[stage]} leads in {stage}, its announcements {expected}"
            )
    others = " - ".join(str(counts[s]) for s in stages[1:])
    result.lines.append(f"    {stages[0]} {counts[stages[0]]} = {len(counted)} leads - {others}")
    suppressed = Counter(str(lead["stage"]) for lead in ranked if lead.get("suppressed"))
    if suppressed or left:
        per_stage = ", ".join(f"{s} {suppressed[s]}" for s in stages if suppressed[s])
        result.lines.append(
            f"    not counted: {sum(suppressed.values())} suppressed leads ({per_stage or 'none'}), whose "
            f"promotions are never announced, and {len(left)} announced leads the model no longer ranks"
        )
    for lead_id, stage in sorted(counted.items()):
        announced = str(moves[lead_id][-1]["to_stage"]) if lead_id in moves else stages[0]
        if announced != stage and len(result.problems) < 10:
            result.problems.append(
                f"{model_id}: lead {lead_id} is in {stage}, its last announced move took it to {announced}"
            )
    return result


def _is_promotion(model: ScoringModel, move: str) -> bool:
    from_stage, _, to_stage = move.partition(" -> ")
    return model.is_promotion(from_stage, to_stage)


def _listed(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
