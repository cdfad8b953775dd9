"""The rows `make bench` ends with: each path of issue 12's table, what this run measured, and the
target beside it (as a ratio to a baseline measured in the same run, where one applies).

An area module (`leadscore.bench.<area>`) measures its paths and returns `Row`s; `__main__` runs
the areas and prints them here. A row that could not be measured says why, never a made-up figure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured path.

    `measured`: the figure as a person reads it ("24.3k leads/s per core", "1.12x of the baseline");
    `target`: the goal in the same unit ("≥ 20k leads/s per core"); `met`: whether the figure meets
    it (None: not measured, `measured` says why); `baseline`: what the ratio was taken against in
    this run, if anything; `detail`: one more line (a breakdown, the method) or "".
    """

    path: str
    measured: str
    target: str
    met: bool | None
    baseline: str = ""
    detail: str = ""


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]


def render(rows: list[Row]) -> str:
    """The rows as a table a person reads: path, measured, target, verdict (then baseline, detail)."""
    width = max((len(row.path) for row in rows), default=4)
    figure = max((len(row.measured) for row in rows), default=8)
    lines = [f"{'path':<{width}}  {'measured':<{figure}}  target  -> verdict", "-" * (width + figure + 30)]
    for row in rows:
        lines.append(f"{row.path:<{width}}  {row.measured:<{figure}}  {row.target}  -> {verdict(row.met)}")
        if row.baseline:
            lines.append(f"{'':<{width}}    baseline: {row.baseline}")
        if row.detail:
            lines.append(f"{'':<{width}}    {row.detail}")
    return "\n".join(lines)
