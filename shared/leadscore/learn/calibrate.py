"""Learning an additive scoring model from a CSV of historical leads: the data flow.

1. `encoding`: which columns become features, and how (categorical levels, thermometer-coded
   numeric bins with short decimal edges, event counts; counts and sizes monotone);
2. `shapes`: bins and the L2 penalty by stratified 5-fold cross-validated ROC AUC, then only the
   features that add at least `shapes.FEATURE_GAIN` of CV AUC, then the bounded main-effects fit;
3. `pairs`: interaction tables while they pay (each adds at least `pairs.PAIR_GAIN` of CV AUC);
4. `trees` (only with `segments=True`, `--segments`): boosted depth-3 trees as segment rules;
5. `guardrails`: warnings with figures (learning curve, fold spread), refusal below the floor;
6. `assembly`: rules and points; `thresholds.finish`: stages, grades, probabilities, average lead.

The default model is what a person can review: main effects, monotone where a column is a count
or a size, a few pairs, at most `max_rules` rules (150) in all.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from leadscore.cli import CommandError
from leadscore.learn import guardrails
from leadscore.learn import pairs as pairing
from leadscore.learn import trees as boosting
from leadscore.learn.assembly import (
    POINT_DECIMALS,
    Rule,
    _pair_rule,
    _rule,
    assemble,
    extremes,
    pair_axes,
    tree_inputs,
)
from leadscore.learn.columnar import Table, sample_note
from leadscore.learn.dataset import History
from leadscore.learn.encoding import (
    Feature,
    FeatureKind,
    _column_values,
    _numeric_edges,
    _unique_id,
    bounds,
    design,
    plan_features,
    set_edges,
)
from leadscore.learn.evaluate import score_rows
from leadscore.learn.leadstate import StateBuilder, builder_from_metadata
from leadscore.learn.mapping import Mapping
from leadscore.learn.shapes import (
    BIN_GRID,
    C_GRID,
    FEATURE_GAIN,
    FOLDS,
    Fit,
    _classifier,
    _Shape,
    _shape,
    choose,
    fit_main,
    resolve_directions,
    select_features,
    splitter,
)
from leadscore.learn.thresholds import AverageAccumulator, Learned, Scored, finish
from leadscore.scoring.engine import ScoreResult, score
from leadscore.scoring.model import Grade, ScoringModel, Section, SegmentRule, Stage

SCORE_SPAN = 100.0
MAX_RULES = 150

# What learn/events.py (the event-history learner) and older callers import from here.
__all__ = [
    "BIN_GRID",
    "C_GRID",
    "FOLDS",
    "MAX_RULES",
    "SCORE_SPAN",
    "Feature",
    "FeatureKind",
    "Fit",
    "Options",
    "_Shape",
    "_column_values",
    "_numeric_edges",
    "_pair_rule",
    "_rule",
    "_shape",
    "_unique_id",
    "bounds",
    "choose",
    "design",
    "learn",
    "pair_axes",
    "plan_features",
    "resolve_directions",
    "set_edges",
    "tree_inputs",
]


@dataclass
class Options:
    sql_share: float = 0.10
    mql_share: float = 0.30
    name: str | None = None
    seed: int = 0
    max_rules: int = MAX_RULES  # every rule counts: attribute, aggregate, pair and segment rules
    segments: bool = False  # boosted-tree segment rules on top (many rules: raise max_rules)
    keep_results: bool = True  # keep the engine's answers for the fitted leads (for a report)


def score_table(
    model: ScoringModel, table: Table, builder: StateBuilder, kept: np.ndarray, keep_results: bool
) -> Scored:
    """Every row of `table` scored by THE engine, batch after batch: totals, fits and the
    average lead of every lead; the full answers only of the rows at `kept` (when asked)."""
    totals = np.empty(table.rows)
    fits = np.empty(table.rows)
    average = AverageAccumulator()
    keep = np.zeros(table.rows, dtype=bool)
    keep[kept] = keep_results
    results: list[ScoreResult] = []
    position = 0
    for rows, ids in table.batches(sorted(builder.columns)):
        for row, lead_id in zip(rows, ids, strict=True):
            result = score(model, builder.build(row, lead_id), model.epoch)
            totals[position], fits[position] = result.total, result.fit
            average.add(result)
            if keep[position]:
                results.append(result)
            position += 1
    return Scored(
        totals=totals,
        fits=fits,
        y=table.y.astype(int),
        average=average.average(totals),
        results=results if keep_results else None,
    )


def learn(history: History, mapping: Mapping, options: Options) -> Learned:
    # Small dense solves: one BLAS thread each is several times faster than oversubscribed threads.
    with threadpool_limits(1):
        return _learn(history, mapping, options)


def _learn(history: History, mapping: Mapping, options: Options) -> Learned:  # noqa: PLR0915
    timings: dict[str, float] = {}
    warnings: list[str] = []
    started = time.perf_counter()
    if not 0 < options.sql_share < options.mql_share < 1:
        raise CommandError("--sql-share and --mql-share must satisfy 0 < sql-share < mql-share < 1")
    if options.max_rules < 1:
        raise CommandError("--max-rules must be at least 1")
    placeholders = mapping.placeholders()
    for column in mapping.columns:
        if column not in history.frame.columns:
            warnings.append(f"the mapping names column {column!r}, which the file does not have")
    frame, y = history.frame, history.y
    guardrails.check_floor(y)
    counts = history.column_counts()  # every row's frequencies (the frame may be a sample)
    candidates = plan_features(history, mapping, warnings)
    fit = choose(candidates, frame, y, placeholders, options.seed, counts)
    x = design(candidates, frame, placeholders)
    resolve_directions(candidates, _classifier(fit.c).fit(x, y).coef_[0])
    selection = select_features(candidates, x, y, fit.c, options.seed, limit=options.max_rules)
    features = selection.features
    for feature in candidates:
        if feature not in features:
            why = f"not selected (adds less than {FEATURE_GAIN} cross-validated AUC)"
            history.dropped[feature.column] = why
    timings["cross_validation_s"] = time.perf_counter() - started

    t = time.perf_counter()
    x = design(features, frame, placeholders)
    axes, codes = pair_axes(features, frame, placeholders, counts)
    sizes = [axis.size for axis in axes]
    pair_fit = pairing.choose_pairs(
        x,
        y,
        codes,
        sizes,
        _classifier,
        fit.c,
        options.seed,
        FOLDS,
        max_pairs=options.max_rules - len(features),
    )
    folds = splitter(y, options.seed)
    curve = guardrails.learning_curve(x, y, _classifier(pair_fit.c).fit, folds, options.seed)
    warnings += guardrails.check_history(y, curve.full, curve.half)
    timings["interactions_cv_s"] = time.perf_counter() - t

    t = time.perf_counter()
    main = fit_main(features, x, y, pair_fit.c)
    main_logits = main.decision_function(x)
    chosen_pairs = pairing.rank_pairs(main_logits, y, codes, sizes, pairing.LAMBDA_GRID[0])[: pair_fit.k]
    cells = [pairing.cells(codes, sizes, pair)[0] for pair in chosen_pairs]
    tables = pairing.fit_tables(
        main_logits, y, cells, [sizes[a] * sizes[b] for a, b in chosen_pairs], pair_fit.lam
    )
    ga2m_logits = main_logits + sum(
        (table[index] for table, index in zip(tables, cells, strict=True)), np.zeros(len(y))
    )
    timings["ga2m_fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    blend = boosting.Blend(
        rounds=0, weight=0.0, cv_auc=pair_fit.cv_auc, oof_logits=pair_fit.oof_logits, grid=[]
    )
    ensemble, tree_x = None, np.zeros((len(y), 0))
    tree_axes: list[boosting.TreeAxis] = []
    if options.segments:
        tree_axes, tree_x = tree_inputs(features, frame, placeholders, y)
        min_leaf = max(20, math.ceil(0.005 * len(y)))
        blend = boosting.choose_blend(tree_x, y, pair_fit.oof_logits, min_leaf, options.seed, FOLDS)
        ensemble = (
            boosting.boost(tree_x, y, blend.rounds, min_leaf, options.seed)[0] if blend.rounds else None
        )
    tree_logits = ensemble.logits(tree_x) if ensemble else np.zeros(len(y))
    logits = blend.ga2m_factor * ga2m_logits + blend.tree_factor * tree_logits
    span = SCORE_SPAN / max(float(logits.max() - logits.min()), 1e-9)
    scale = span * blend.ga2m_factor  # points per GA2M logit
    timings["trees_cv_s"] = time.perf_counter() - t

    t = time.perf_counter()
    coef, position = main.coef, 0
    shapes = []
    for feature in features:
        shapes.append(_shape(feature, coef[position : position + feature.width()]))
        position += feature.width()
    built = assemble(features, shapes, main.intercept, axes, chosen_pairs, tables, scale, history.dropped)
    rules = built.rules
    mapping_meta = built.mapping
    tree_constant = 0.0
    if ensemble is not None:
        category_of = {f.attribute: f.category for f in features if f.attribute}
        segments, tree_constant = boosting.segment_rules(
            ensemble, tree_axes, span * blend.tree_factor, POINT_DECIMALS
        )
        for segment in segments:
            both = {category_of[c.attribute] for c in segment.conditions}
            rules["engagement" if both == {"engagement"} else "fit"].append(segment)
        used = {c.attribute for segment in segments for c in segment.conditions}
        for tree_axis in tree_axes:  # a column whose main effect came out flat may still be in segments
            if tree_axis.attribute in used:
                kind = "numeric" if tree_axis.numeric else "categorical"
                mapping_meta.setdefault(tree_axis.column, {"attribute": tree_axis.attribute, "type": kind})
                history.dropped.pop(tree_axis.column, None)
    offset = round(
        scale * built.offset_logit + span * (blend.tree_factor * tree_constant - float(logits.min())),
        POINT_DECIMALS,
    )
    all_rules: list[Rule] = [r for section in rules.values() for r in section]
    if len(all_rules) > options.max_rules:
        raise CommandError(
            f"the learned model has {len(all_rules)} rules, more than --max-rules {options.max_rules} "
            f"({sum(isinstance(r, SegmentRule) for r in all_rules)} of them segment rules from "
            "--segments): raise --max-rules or leave out --segments"
        )
    low = offset + sum(extremes(r)[0] for r in all_rules)
    high = offset + sum(extremes(r)[1] for r in all_rules)
    created = datetime.now(UTC)
    digest = history.sha256 or hashlib.sha256(history.path.read_bytes()).hexdigest()
    every_y = history.y if history.table is None else history.table.y
    version = f"learned-{created:%Y%m%d%H%M%S}-{digest[:8]}"
    metadata: dict[str, Any] = {
        "learned_by": "leadscore calibrate",
        "created_at": created.isoformat(timespec="seconds"),
        "method": (
            "binned L2 logistic regression (additive; thermometer-coded numeric bins, one-hot "
            "categories with rare levels pooled, missing indicators); bins and C chosen by "
            f"stratified 5-fold CV AUC; features kept only when they add >= {FEATURE_GAIN} CV AUC; "
            "counts and sizes monotone (bounded thermometer steps); plus the K most useful pairwise "
            "interaction tables (FAST ranking on the main-effects logits, cyclic penalised Newton fit), "
            f"each kept only when it adds >= {pairing.PAIR_GAIN} CV AUC, the ranking redone in each fold; "
            "each side's main effect folded into the first pair table using it"
            + (
                "; blended with Newton-boosted depth-3 trees whose leaves are segment rules (--segments)"
                if options.segments
                else ""
            )
        ),
        "source": {
            "file": history.path.name,
            "sha256": digest,
            "target": history.target_column,
            "id_column": history.id_column,
        },
        "rows": len(every_y),
        "conversions": int(every_y.sum()),
        "base_rate": round(float(every_y.mean()), 6),
        "cv_auc": round(blend.cv_auc if blend.rounds else pair_fit.cv_auc, 5),
        "cv_auc_ga2m": round(pair_fit.cv_auc, 5),
        "cv_auc_main_effects": round(fit.cv_auc, 5),
        "cv_grid": fit.grid,
        "cv_feature_selection": selection.ranking,
        "cv_fold_aucs": [round(a, 5) for a in curve.full],
        "cv_fold_aucs_half_history": [round(a, 5) for a in curve.half],
        "max_rules": options.max_rules,
        "cv_grid_interactions": pair_fit.grid,
        "cv_grid_segments": blend.grid,
        "chosen": {
            "bins": fit.bins,
            "C": pair_fit.c,
            "pairs": pair_fit.k,
            "pair_lambda": pair_fit.lam,
            "trees": blend.rounds,
            "tree_weight": blend.weight,
        },
        "interactions": built.interactions,
        "points_per_logit": round(span, 6),
        "missing_values": sorted(placeholders),
        "features": built.features,
        "dropped_columns": dict(history.dropped),
        "mapping": mapping_meta,
    }
    if len(y) < len(every_y):
        metadata["fitted_on"] = sample_note(len(every_y), len(y))
    draft = ScoringModel(
        name=options.name or f"learned-{history.path.stem}"[:64],
        version=version,
        description=(
            f"Learned by `leadscore calibrate` from {history.path.name} "
            f"({len(every_y)} leads, base rate {every_y.mean():.1%})."
        ),
        offset=offset,
        total_min=math.floor(low) - 1,
        total_max=math.ceil(high) + 1,
        fit=Section(rules=rules["fit"]),
        engagement=Section(rules=rules["engagement"]),
        negative=Section(rules=rules["negative"]),
        grades=[Grade(grade="A", min_fit=0.0)],
        stages=[Stage(name="lead")],
        metadata=metadata,
    )
    timings["fit_s"] = time.perf_counter() - t
    builder = builder_from_metadata(draft)
    assert builder is not None
    oof_scores = span * (blend.oof_logits - float(logits.min()))
    if history.table is None:
        results = score_rows(draft, frame, history.ids, builder)
        return finish(draft, results, y, oof_scores, options, timings, warnings, started)
    assert history.positions is not None
    t = time.perf_counter()
    scored = score_table(draft, history.table, builder, history.positions, options.keep_results)
    timings["scoring_every_row_s"] = time.perf_counter() - t
    # Leads outside the sample are held out from every fit: their own scores calibrate honestly.
    held_out = scored.totals.copy()
    held_out[history.positions] = oof_scores
    return finish(draft, scored, y, oof_scores, options, timings, warnings, started, held_out)
