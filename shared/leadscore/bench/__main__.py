"""`python -m leadscore.bench` (`make bench`): the pipeline's request counts and calibrate times,
then every path of the speed table beside its target.

`--areas` picks what runs (default: all); `--quick` asks each area for a smaller workload (a smoke
run: the figures print, the targets are not the point). Other options go to the pipeline part.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from leadscore.bench.table import Row, render

# Area name -> module with `rows(quick: bool) -> list[Row]`, in the order the table prints them.
AREAS: dict[str, str] = {
    "engine": "leadscore.bench.engine",
    "startup": "leadscore.bench.startup",
    "latency": "leadscore.bench.latency",
    "rescore": "leadscore.bench.rescore",
    "calibrate": "leadscore.bench.calibrate",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the product: request counts and speed targets.")
    parser.add_argument(
        "--areas",
        default="pipeline," + ",".join(AREAS),
        metavar="A,B,...",
        help=f"what to measure (default: all of pipeline,{','.join(AREAS)})",
    )
    parser.add_argument("--quick", action="store_true", help="small workloads: a smoke run, not the targets")
    args, rest = parser.parse_known_args(argv)
    chosen = [area for area in args.areas.split(",") if area]
    unknown = [area for area in chosen if area != "pipeline" and area not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; choose from pipeline,{','.join(AREAS)}")
    if "pipeline" in chosen:
        from leadscore.bench import pipeline

        code = pipeline.main(rest)
        if code:
            return code
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    rows: list[Row] = []
    for area in chosen:
        if area == "pipeline":
            continue
        started = time.perf_counter()
        module = importlib.import_module(AREAS[area])
        rows.extend(module.rows(quick=args.quick))
        print(f"[{area}: measured in {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    if rows:
        print()
        print("Speed targets (issue 12), measured in this run:")
        print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
