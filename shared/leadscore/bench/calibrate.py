"""Issue 12's calibrate row: `leadscore calibrate` on the X Education export at 1x, 4x and 16x its
size (rows replicated with fresh ids) and on a generated history of 1M leads, each in its own
process, timed with the wall clock and its peak memory read from the kernel (`ru_maxrss` of that
process, via `os.wait4`).

Target: 1M leads in at most 10 minutes within 8 GB on 2 cores; the X Education sizes are held to
the same memory ceiling and their rows/s printed beside it. `--quick`: 1x and a small generated
history only (a smoke run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from leadscore.bench.generated import HEADER, ID_COLUMN, TARGET_COLUMN, write_history
from leadscore.bench.pipeline import X_EDUCATION, X_EDUCATION_IGNORED, X_EDUCATION_MAPPING, _replicated
from leadscore.bench.table import Row

TARGET_LEADS = 1_000_000
TARGET_SECONDS = 600.0
MEMORY_CEILING_GB = 8.0
SCALES = (1, 4, 16)
QUICK_GENERATED = 3_000
TARGET = f"1M leads <= {TARGET_SECONDS / 60:.0f} min within {MEMORY_CEILING_GB:g} GB on 2 cores"


@dataclass
class Run:
    leads: int
    seconds: float
    peak_gb: float
    code: int
    said: str
    metadata: dict[str, object]

    @property
    def rows_per_second(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0


def _package_root() -> str:
    import leadscore

    return str(Path(leadscore.__file__).resolve().parents[1])


_PEAK_LINE = "leadscore-bench-peak-kb"
# `leadscore calibrate` that says its peak memory (VmHWM, Linux) as it exits.
_PEAK_REPORTING_CLI = f"""
import atexit, sys
def _peak():
    try:
        with open("/proc/self/status") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return
    print("{_PEAK_LINE}", kb, flush=True)
atexit.register(_peak)
from leadscore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def calibrate_process(argv: list[str], leads: int, model: Path) -> Run:
    """`leadscore calibrate ARGV` in a child process: wall time and the child's own peak RSS."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _PEAK_REPORTING_CLI, "calibrate", *argv, "--out", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert child.stdout is not None
    said = child.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    metadata: dict[str, object] = {}
    if child.returncode == 0:
        import yaml

        loaded = yaml.load(
            model.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
        metadata = loaded.get("metadata", {})
    reported = [line.split()[1] for line in said.splitlines() if line.startswith(_PEAK_LINE)]
    # VmHWM: the child's own high-water mark since its exec. ru_maxrss keeps the larger of it and
    # what the process held before exec, a fork of this one (gigabytes after other measurements).
    peak_kb = int(reported[-1]) if reported else usage.ru_maxrss  # both in kilobytes
    return Run(
        leads=leads,
        seconds=seconds,
        peak_gb=peak_kb * 1024 / 1e9,
        code=child.returncode,
        said=said,
        metadata=metadata,
    )


def _row(path: str, run: Run, *, full_target: bool) -> Row:
    if run.code != 0:
        return Row(
            path, f"not measured: calibrate exited with {run.code}", TARGET, None, detail=run.said[-300:]
        )
    memory_ok = run.peak_gb <= MEMORY_CEILING_GB
    met = memory_ok and (run.seconds <= TARGET_SECONDS if full_target else True)
    fitted = run.metadata.get("fitted_on")
    fitted_rows = fitted.get("rows") if isinstance(fitted, dict) else run.metadata.get("rows")
    return Row(
        path=path,
        measured=f"{run.seconds:.0f} s, {run.rows_per_second:,.0f} rows/s, peak {run.peak_gb:.2f} GB",
        target=TARGET
        if full_target
        else f"peak <= {MEMORY_CEILING_GB:g} GB (the time target is for 1M leads)",
        met=met,
        detail=(
            f"{run.leads:,} leads, the fits learned from {fitted_rows:,} of them; "
            f"cross-validated AUC {run.metadata.get('cv_auc')}"
            if isinstance(fitted_rows, int)
            else ""
        ),
    )


def x_education_argv(history: Path) -> list[str]:
    argv = [str(history), "--target", "Converted", "--id-column", "Prospect ID"]
    argv += [arg for column in X_EDUCATION_IGNORED for arg in ("--ignore-column", column)]
    return [*argv, "--mapping", str(X_EDUCATION_MAPPING)]


def generated_mapping(folder: Path) -> Path:
    """The X Education mapping without the columns a generated history does not have."""
    import yaml

    document = yaml.safe_load(X_EDUCATION_MAPPING.read_text(encoding="utf-8"))
    document["columns"] = {k: v for k, v in document["columns"].items() if k in HEADER}
    path = folder / "generated-mapping.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def generated_argv(history: Path, mapping: Path) -> list[str]:
    return [
        str(history),
        "--target",
        TARGET_COLUMN,
        "--id-column",
        ID_COLUMN,
        "--mapping",
        str(mapping),
    ]


def rows(quick: bool) -> list[Row]:
    out: list[Row] = []
    scales = SCALES[:1] if quick else SCALES
    generated = QUICK_GENERATED if quick else TARGET_LEADS
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-calibrate-") as folder:
        work = Path(folder)
        for scale in scales:
            path = f"calibrate, X Education x{scale}"
            if not X_EDUCATION.is_file():
                out.append(Row(path, f"not measured: no X Education data at {X_EDUCATION}", TARGET, None))
                continue
            history = work / f"leads-{scale}x.csv"
            leads = _replicated(X_EDUCATION, scale, history)
            out.append(
                _row(
                    path,
                    calibrate_process(x_education_argv(history), leads, work / "m.yaml"),
                    full_target=False,
                )
            )
            history.unlink()
        history = work / "generated.csv"
        leads = write_history(history, generated)
        argv = generated_argv(history, generated_mapping(work))
        run = calibrate_process(argv, leads, work / "m.yaml")
        out.append(_row(f"calibrate, generated history of {leads:,} leads", run, full_target=not quick))
    return out
