"""Builds the Lambda layer (template.yaml `SharedLayer`): the runtime code of `leadscore` and the
pinned dependencies of `shared/requirements.txt`, precompiled, under `<dest>/python/`.

`sam build` runs it through `shared/Makefile` (`BuildMethod: makefile`); `make layer` runs it
without SAM or Docker. Standard library only: it runs before anything is installed.

- Only what a function runs ships: the local stack, the demo, learning, bench and the CLI's
  commands stay out (`EXCLUDED`), and so does this builder.
- One SDK: boto3 and botocore come from the Lambda runtime. `requirements.txt` is the complete
  list of what ships (transitive dependencies included, each pinned) and is installed with
  `--no-deps`, so nothing (aws-xray-sdk's botocore requirement, say) can pull a second botocore
  into the layer that would shadow the runtime's and leave it mismatched with the runtime's boto3.
- Bytecode is compiled for the layer's Python (`--invalidation-mode unchecked-hash`: /opt is
  read-only and a zip does not keep exact mtimes, so timestamp-checked .pyc would be ignored and
  every cold start would compile again). The builder must therefore run on that Python.

    python -m leadscore.layer DEST [--code-only] [--python-version 3.12] [--platform ...]
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "leadscore"
# Paths inside the package that never run in a Lambda function.
EXCLUDED = (
    "local",  # the local stack and the demo
    "console",  # `leadscore console`, the local web app
    "learn",  # calibrate, backtest, audit
    "bench",  # make bench
    "commands",  # the CLI's operator commands
    "cli.py",
    "replay.py",  # `leadscore replay` (dead-letter queues)
    "migrate_ids.py",  # `leadscore migrate-lead-ids`
    "outcome_import.py",  # `leadscore outcomes import`
    "history_export.py",  # `leadscore export-history`
    "repository/history.py",  # the history commands' reads
    "layer.py",  # this builder
)
RUNTIME_PYTHON = "3.12"  # template.yaml: Runtime: python3.12
RUNTIME_PLATFORM = "manylinux2014_aarch64"  # template.yaml: Architectures: [arm64]
SHARED = Path(__file__).resolve().parents[1]  # the layer's ContentUri (shared/)


def _ignored(source: Path) -> set[str]:
    return {str(source / path) for path in EXCLUDED}


def copy_runtime_code(dest: Path, source: Path = SHARED) -> list[str]:
    """Copy the package's runtime modules and data (models, contracts) to `dest/python/leadscore`.
    Returns the module names copied."""
    package = source / PACKAGE
    excluded = _ignored(package)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {
            name
            for name in names
            if name == "__pycache__" or name.endswith(".pyc") or str(Path(folder) / name) in excluded
        }

    target = dest / "python" / PACKAGE
    shutil.copytree(package, target, ignore=ignore, dirs_exist_ok=True)
    return sorted(module_names(dest / "python"))


def module_names(python_dir: Path) -> list[str]:
    """The `leadscore` modules under a layer's `python/` folder."""
    names = []
    for path in (python_dir / PACKAGE).rglob("*.py"):
        parts = path.relative_to(python_dir).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def install_dependencies(
    dest: Path, requirements: Path, python_version: str = RUNTIME_PYTHON, platform: str = RUNTIME_PLATFORM
) -> None:
    """Install the pinned wheels for the runtime's Python and architecture (never compiled here:
    `compile_bytecode` does it for the runtime's Python)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", python_version, "--platform", platform, "--upgrade"]
    command += ["--target", str(dest / "python"), "-r", str(requirements)]
    subprocess.run(command, check=True)
    for leftover in (dest / "python").glob("bin"):  # console scripts: nothing runs them in Lambda
        shutil.rmtree(leftover)


def compile_bytecode(dest: Path, python_version: str = RUNTIME_PYTHON) -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != python_version:
        raise SystemExit(
            f"the layer's bytecode is for Python {python_version}, but this is Python {running}: "
            f"run the build with python{python_version} (make layer LAYER_PYTHON=...)"
        )
    ok = compileall.compile_dir(
        dest / "python",
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit("compiling the layer's bytecode failed")


def size_bytes(dest: Path) -> int:
    """The unzipped size of a built layer (what counts against Lambda's 250 MB)."""
    return sum(path.stat().st_size for path in dest.rglob("*") if path.is_file())


def build(
    dest: Path,
    *,
    code_only: bool = False,
    compile: bool = True,
    python_version: str = RUNTIME_PYTHON,
    platform: str = RUNTIME_PLATFORM,
    source: Path = SHARED,
) -> Path:
    """Build the layer's content in `dest/python` (emptied first); returns `dest`."""
    shutil.rmtree(dest / "python", ignore_errors=True)
    (dest / "python").mkdir(parents=True)
    if not code_only:
        install_dependencies(dest, source / "requirements.txt", python_version, platform)
    copy_runtime_code(dest, source)
    if compile:
        compile_bytecode(dest, python_version)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Lambda layer's content in DEST/python.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--code-only", action="store_true", help="leadscore's runtime code, no dependencies")
    parser.add_argument("--no-compile", action="store_true", help="no bytecode (any Python can run it)")
    parser.add_argument("--python-version", default=RUNTIME_PYTHON)
    parser.add_argument("--platform", default=RUNTIME_PLATFORM)
    args = parser.parse_args(argv)
    dest = build(
        args.dest,
        code_only=args.code_only,
        compile=not args.no_compile,
        python_version=args.python_version,
        platform=args.platform,
    )
    print(f"layer built in {dest}: {size_bytes(dest) / 1e6:.1f} MB unzipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
