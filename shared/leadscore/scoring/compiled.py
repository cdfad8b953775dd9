"""A model compiled once, when it is first used, for scoring many leads fast: pure, no I/O.

What compiling saves, per score:
- Value classes. Whatever a rule does with an attribute (a value map, numeric bins, one side of a
  pair, a segment condition), its answer depends only on the *class* of the lead's value: missing,
  which listed key it is (or none), between which of the listed bounds a number falls (or not a
  number, or NaN). The model lists every key and bound each attribute is tested against, so each
  attribute is classed once per score (one set lookup, one bisection), and each rule reads its
  points (a pair its cell) from a table keyed by class, filled from the rule itself the first time
  a class is seen. Tables stay small: classes are bounded by the keys and bounds the model lists.
- Segment rules (a learned model has hundreds: the leaves of boosted trees) share few distinct
  conditions. Per attribute, its class maps to the set of segment rules it rules out (Python
  integers as bit sets, filled on first sight); a score ORs one set per attribute and reads the
  points of the rules left, a 16-bit word at a time, in the model's order.
- Everything else keeps the engine's own arithmetic, and every section adds its points in the
  model's order, so totals and contributions are bit-identical to evaluating rule by rule (the
  property tests hold the engine to a plain rule-by-rule reference).

`ScoringModel.compiled` builds it on first use and keeps it on the (immutable) model.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from leadscore.domain import AttributeValue
from leadscore.scoring.model import (
    AttributeRule,
    Category,
    PairRule,
    Rule,
    ScoringModel,
    Section,
    SegmentCondition,
    SegmentRule,
)

# (missing, trimmed case-folded text, number (None: not a number, or NaN), NaN)
Reading = tuple[bool, str, float | None, bool]
# (missing, the listed key it is or None, its interval among the listed bounds or None, NaN)
ValueClass = tuple[bool, str | None, int | None, bool]
MISSING_CLASS: ValueClass = (True, None, None, False)
# Segment bit sets are read a word at a time: 16 bits where words can be read off the bytes.
_BITS = 16 if sys.byteorder == "little" else 8
# Word values remembered, over all words of a model (tree leaves exclude each other: few per word);
# past that, a word's points are worked out each time (the same points, more slowly).
_WORDS_KEPT = 1 << 16


def condition_holds(condition: SegmentCondition, reading: Reading) -> bool:
    """Values: case-folded match (or, for `not_values`, no match); bounds: a number in
    [lower, upper). A missing value (or, for bounds, one that is not a number) meets the condition
    only when it says `missing: true`."""
    missing, key, number, _ = reading
    if missing:
        return condition.missing
    if condition.values:
        return key in condition.keys
    if condition.not_values is not None:
        return key not in condition.keys
    lower, upper = condition.lower, condition.upper
    if lower is None and upper is None:
        return False  # a "missing" condition on a present value
    if number is None:
        return condition.missing
    return (lower is None or number >= lower) and (upper is None or number < upper)


def is_missing(value: AttributeValue | None) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_number(value: AttributeValue) -> float | None:
    """A present value as a number: None when it is not one (or an integer too large for a float);
    NaN (a missing number) stays NaN."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class Classing:
    """Every key and bound the model tests one attribute against: what its value classes are."""

    keys: frozenset[str]
    edges: tuple[float, ...]

    def of(self, reading: Reading) -> ValueClass:
        missing, key, number, nan = reading
        if missing:
            return MISSING_CLASS
        interval = None if number is None else bisect_right(self.edges, number)
        return (False, key if key in self.keys else None, interval, nan)


class Readings(dict[str, Reading]):
    """What one score works out once, however many rules need it: each attribute's reading, its
    value class for a compiled model (`classes`), and each half-life's decay factor (`decay`)."""

    def __init__(self, attrs: Mapping[str, AttributeValue], compiled: CompiledModel | None = None) -> None:
        super().__init__()
        self.raw = attrs
        self.classes = _Classes(self, compiled)
        self.decay: dict[float, float] = {}  # half-life -> decay factor at the score's moment

    def __missing__(self, name: str) -> Reading:
        value = self.raw.get(name)
        if is_missing(value):
            reading: Reading = (True, "", None, False)
        else:
            assert value is not None
            number = as_number(value)
            nan = number is not None and math.isnan(number)
            reading = (False, str(value).strip().casefold(), None if nan else number, nan)
        self[name] = reading
        return reading


class _Classes(dict[str, ValueClass]):
    def __init__(self, readings: Readings, compiled: CompiledModel | None) -> None:
        super().__init__()
        self.readings = readings
        self.compiled = compiled

    def __missing__(self, name: str) -> ValueClass:
        assert self.compiled is not None, "value classes need a compiled model"
        found = self[name] = self.compiled.classing[name].of(self.readings[name])
        return found


def _identity(condition: SegmentCondition) -> tuple[object, ...]:
    """What a condition tests (its label is only how it reads)."""
    return (
        condition.attribute,
        tuple(sorted(condition.keys)) if condition.values else None,
        tuple(sorted(condition.keys)) if condition.not_values is not None else None,
        condition.lower,
        condition.upper,
        condition.missing,
    )


@dataclass
class AttributeConditions:
    """The distinct segment conditions on one attribute, and the rules each one belongs to."""

    conditions: list[tuple[SegmentCondition, int]] = field(default_factory=list)  # (condition, rule bits)
    ruled_out: dict[ValueClass, int] = field(default_factory=dict)  # value class -> rules it fails

    def failing(self, value_class: ValueClass, reading: Reading) -> int:
        """The bits of the segment rules a value (of that class) rules out: every value of a class
        meets the same conditions, so this is computed once per class."""
        bits = self.ruled_out.get(value_class)
        if bits is None:
            bits = 0
            for condition, rules in self.conditions:
                if not condition_holds(condition, reading):
                    bits |= rules
            self.ruled_out[value_class] = bits
        return bits


@dataclass(frozen=True)
class CompiledSection:
    """One section: its other rules in order (with their positions) and its segment rules' bits."""

    category: Category
    section: Section
    others: tuple[tuple[int, Rule], ...]  # (position in the section, rule) for non-segment rules
    segment_bits: int  # the model-wide bits of this section's segment rules
    segments_last: bool  # every segment rule comes after every other rule of the section


class CompiledModel:
    """A model's segment rules as bit sets over attribute value classes, and its sections' order."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        segments: list[tuple[int, SegmentRule]] = []  # (position in its section, rule), model order
        sections: list[CompiledSection] = []
        named: tuple[tuple[Category, Section], ...] = (
            ("fit", model.fit),
            ("engagement", model.engagement),
            ("negative", model.negative),
        )
        for category, section in named:
            first_bit = len(segments)
            others: list[tuple[int, Rule]] = []
            for position, rule in enumerate(section.rules):
                if isinstance(rule, SegmentRule):
                    segments.append((position, rule))
                else:
                    others.append((position, rule))
            mine = segments[first_bit:]
            bits = ((1 << len(mine)) - 1) << first_bit
            last = not mine or not others or others[-1][0] < mine[0][0]
            sections.append(CompiledSection(category, section, tuple(others), bits, last))
        self.sections: tuple[CompiledSection, ...] = tuple(sections)
        self.segment_rules: tuple[SegmentRule, ...] = tuple(rule for _, rule in segments)
        self.segment_positions: tuple[int, ...] = tuple(position for position, _ in segments)
        self.all_segments = (1 << len(segments)) - 1
        # Each distinct condition once, with the bits of every rule that uses it.
        distinct: dict[tuple[object, ...], SegmentCondition] = {}
        users: dict[tuple[object, ...], int] = {}
        for bit, (_, rule) in enumerate(segments):
            for condition in rule.conditions:
                identity = _identity(condition)
                distinct.setdefault(identity, condition)
                users[identity] = users.get(identity, 0) | 1 << bit
        self.attributes: dict[str, AttributeConditions] = {}
        for identity, condition in distinct.items():
            on = self.attributes.setdefault(condition.attribute, AttributeConditions())
            on.conditions.append((condition, users[identity]))
        self.distinct_conditions = len(distinct)
        self._attribute_list = tuple(self.attributes.items())
        self.classing = _classing(model)
        # What attribute rules and pair rules are worth per value class (pairs: per pair of classes).
        self.points: dict[str, dict[ValueClass, float]] = {}
        self.levels: dict[tuple[str, int], dict[ValueClass, str]] = {}  # (pair rule, side) -> class -> level
        for _, rule in model.all_rules():
            if isinstance(rule, AttributeRule):
                self.points[rule.id] = {}
            elif isinstance(rule, PairRule):
                self.levels[(rule.id, 0)], self.levels[(rule.id, 1)] = {}, {}
        self._bytes = (len(segments) + _BITS - 1) // _BITS * (_BITS // 8)
        # Per word of a segment bit set: word value -> the points it holds (filled on first sight).
        self._word_points: list[dict[int, tuple[float, ...]]] = [{} for _ in range(self._bytes * 8 // _BITS)]
        self._words_kept = 0

    def holding(self, readings: Readings) -> int:
        """The bits of the segment rules a lead's attributes meet."""
        failing = 0
        classes = readings.classes
        for name, conditions in self._attribute_list:
            value_class = classes[name]
            ruled_out = conditions.ruled_out.get(value_class)
            failing |= conditions.failing(value_class, readings[name]) if ruled_out is None else ruled_out
        return self.all_segments & ~failing

    def segment_points(self, bits: int) -> list[float]:
        """The non-zero points of the segment rules in `bits`, in the model's order."""
        points: list[float] = []
        if bits:
            tables = self._word_points
            data = memoryview(bits.to_bytes(self._bytes, "little"))
            for index, word in enumerate(data.cast("H") if _BITS == 16 else data):
                if word:
                    found = tables[index].get(word)
                    points += self._word(index, word) if found is None else found
        return points

    def _word(self, index: int, word: int) -> tuple[float, ...]:
        """The non-zero points of the rules one word of a bit set holds, in order (remembered)."""
        base = index * _BITS
        chosen = (self.segment_rules[base + offset] for offset in range(_BITS) if word >> offset & 1)
        found = tuple(rule.points for rule in chosen if rule.points)
        if self._words_kept < _WORDS_KEPT:
            self._word_points[index][word] = found
            self._words_kept += 1
        return found

    def segment_indexes(self, bits: int) -> list[int]:
        """The indexes (into `segment_rules`) of the rules in `bits`, in the model's order."""
        indexes: list[int] = []
        while bits:
            lowest = bits & -bits
            indexes.append(lowest.bit_length() - 1)
            bits ^= lowest
        return indexes


def _classing(model: ScoringModel) -> dict[str, Classing]:
    """Per attribute the model reads: every key and bound any of its rules tests it against."""
    keys: dict[str, set[str]] = {}
    edges: dict[str, set[float]] = {}

    def add(name: str, listed: Iterable[str], bounds: Iterable[float | None]) -> None:
        keys.setdefault(name, set()).update(listed)
        edges.setdefault(name, set()).update(b for b in bounds if b is not None)

    for _, rule in model.all_rules():
        if isinstance(rule, AttributeRule):
            add(rule.attribute, rule.values, (b for band in rule.bins for b in (band.lower, band.upper)))
        elif isinstance(rule, PairRule):
            for side in rule.attributes:
                add(side.attribute, side.values, (b for band in side.bins for b in (band.lower, band.upper)))
        elif isinstance(rule, SegmentRule):
            for condition in rule.conditions:
                add(condition.attribute, condition.keys, (condition.lower, condition.upper))
    return {name: Classing(frozenset(keys[name]), tuple(sorted(edges[name]))) for name in keys}
