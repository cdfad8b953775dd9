"""`python -m leadscore.bench` (`make bench`): the pipeline's request counts and calibrate times,
then every path of the speed table beside its target.

`--areas` picks what runs (default: all); `--quick` asks each area for a smaller workload (a smoke
run: the figures print, the targets are not the point). Other options go to the pipeline part.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import subprocess
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
    parser.add_argument("--one-area", choices=sorted(AREAS), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.one_area:
        return _one_area(args.one_area, args.quick)
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
        rows.extend(_measured_apart(area, args.quick))
        print(f"[{area}: measured in {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    if rows:
        print()
        print("Speed targets (issue 12), measured in this run:")
        print(render(rows))
    return 0


def _measured_apart(area: str, quick: bool) -> list[Row]:
    """One area's rows, measured in a fresh process of its own: what an area before it left in
    memory (the pipeline part's synthetic histories take gigabytes) slows nothing after it, and
    its children's peak memory is theirs alone."""
    command = [sys.executable, "-m", "leadscore.bench", "--one-area", area, *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]
        return [Row(area, f"not measured: {why}", "", None)]
    return [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]


def _one_area(area: str, quick: bool) -> int:
    """`--one-area AREA`: that area's rows, as one line of JSON (what `_measured_apart` reads)."""
    module = importlib.import_module(AREAS[area])
    with contextlib.redirect_stdout(sys.stderr):  # an area's own output is commentary
        rows = module.rows(quick=quick)
    print(json.dumps([dataclasses.asdict(row) for row in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
