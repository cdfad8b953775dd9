"""The Lambda layer (`leadscore.layer`, built by `sam build` through shared/Makefile): only runtime
code ships, every handler imports with nothing but the layer's code (first on the path), and the
ingest handlers stay lean (no scoring engine, YAML or notifications at import).

The layer's dependencies come from the registry, which tests do not reach: the runtime code part
is built exactly as `sam build` builds it, and the dependencies are the test environment's (the
same pins: `test_layer_requirements_*`)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from leadscore import layer

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/handler.py"))
INGEST_HANDLERS = ("ingest_email", "ingest_form")
# Functions that only read or answer messages: no engine, model files or publisher either.
LEAN_HANDLERS = (*INGEST_HANDLERS, "chat_alerts", "method_not_allowed")
STREAM_HANDLERS = ("score_events", "evaluate_thresholds", "evaluate_accounts", "decay_scores")
# What the python3.12 Lambda runtime provides (boto3 and its dependencies).
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
# Loads one handler the way Lambda does (its folder is the task root) and reports where every
# leadscore module came from, and which heavy modules were imported.
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({
    name: getattr(mod, "__file__", None) or ""
    for name, mod in sorted(sys.modules.items())
    if name.split(".")[0] in ("leadscore", "yaml")
}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer's runtime code, built as `sam build` does, compiled for this Python."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    return layer.build(tmp_path_factory.mktemp("layer"), code_only=True, python_version=running) / "python"


def _imported_by(handler: str, layer_python: Path) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON"))},
        "PYTHONPATH": str(layer_python),  # the layer first: Lambda's /opt/python
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "leadscore",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScore",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / handler),  # as in Lambda: tracing on, patched
        "AWS_LAMBDA_FUNCTION_NAME": handler,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / handler / "handler.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    modules: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_the_layer_holds_runtime_code_only(built: Path) -> None:
    names = set(layer.module_names(built))
    # Then what functions run is there, with its data (bundled models, message contracts)
    assert {
        "leadscore.ingest",
        "leadscore.pipeline",
        "leadscore.scoring.engine",
        "leadscore.rescore",
    } <= names
    assert list((built / "leadscore" / "models").glob("*.yaml"))
    assert list((built / "leadscore" / "contracts").glob("*.json"))
    # And the local stack, demo, console, learning, bench, the CLI and this builder are not
    for left_out in (
        "local",
        "local.demo",
        "console",
        "console.app",
        "learn",
        "bench",
        "commands",
        "cli",
        "replay",
        "layer",
    ):
        assert f"leadscore.{left_out}" not in names
    # And its bytecode is there, checked by hash only (a zip does not keep exact mtimes)
    compiled = list((built / "leadscore" / "__pycache__").glob("ingest.*.pyc"))
    assert compiled
    assert int.from_bytes(compiled[0].read_bytes()[4:8], "little") == 0b01  # hash-based, unchecked


@pytest.mark.parametrize("handler", HANDLERS)
def test_every_handler_imports_from_the_layer_alone(built: Path, handler: str) -> None:
    # When a handler is imported with the layer's code first on the path (as on Lambda)
    modules = _imported_by(handler, built)
    # Then every leadscore module it loads comes from the layer
    outside = {name: file for name, file in modules.items() if name.startswith("leadscore")}
    outside = {name: file for name, file in outside.items() if not file.startswith(str(built))}
    assert outside == {}


@pytest.mark.parametrize("handler", LEAN_HANDLERS)
def test_lean_handlers_import_no_scoring_yaml_or_notifications(built: Path, handler: str) -> None:
    modules = _imported_by(handler, built)
    heavy = sorted(
        name
        for name in modules
        if name.startswith(("leadscore.scoring", "yaml", "leadscore.notifications", "leadscore.model_store"))
        or name in {"leadscore.accounts", "leadscore.account_notifications", "leadscore.pipeline"}
    )
    assert heavy == []


@pytest.mark.parametrize("handler", STREAM_HANDLERS)
def test_stream_and_schedule_handlers_import_no_ingest_code(built: Path, handler: str) -> None:
    # The ledger's and profiles' streams and the schedule never receive a webhook
    modules = _imported_by(handler, built)
    ingest_side = sorted(
        name
        for name in modules
        if name.startswith(("leadscore.ingest", "leadscore.adapters", "leadscore.antispam"))
    )
    assert ingest_side == []


def _leadscore_imports(path: Path, module: str) -> set[str]:
    """Every leadscore module a file imports, at the top or inside a function."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "leadscore"}


def test_no_shipped_module_imports_one_the_layer_lacks(built: Path) -> None:
    # Lazy imports inside functions included: they would fail on Lambda at the first call.
    names = set(layer.module_names(built))
    source_names = set(layer.module_names(ROOT / "shared"))
    missing = {}
    for name in sorted(names):
        parts = name.split(".")
        path = built.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = built.joinpath(*parts, "__init__.py")
        # A name that is a module in the source must be one in the layer (others are attributes)
        lacking = {imp for imp in _leadscore_imports(path, name) if imp in source_names and imp not in names}
        if lacking:
            missing[name] = sorted(lacking)
    assert missing == {}


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            pins[requirement.name.lower().replace("_", "-")] = str(requirement.specifier)
    return pins


def test_layer_requirements_pin_pyprojects_runtime_dependencies_but_no_sdk() -> None:
    # Given pyproject's runtime dependencies and the layer's requirements file
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    direct = _pins(project["dependencies"])
    shipped = _pins((ROOT / "shared" / "requirements.txt").read_text(encoding="utf-8").splitlines())
    # Then every direct dependency ships with the same pin, boto3 aside (the runtime's)
    assert {name: shipped.get(name) for name in direct if name != "boto3"} == {
        name: pin for name, pin in direct.items() if name != "boto3"
    }
    # And no SDK ships: one botocore (the runtime's), matching the runtime's boto3
    assert RUNTIME_PROVIDED.isdisjoint(shipped)


def test_layer_requirements_are_complete_and_pinned_as_tested() -> None:
    # Installed with --no-deps: each shipped package's own requirements must be shipped too (or be
    # the runtime's), each at the version the tests run with.
    shipped = _pins((ROOT / "shared" / "requirements.txt").read_text(encoding="utf-8").splitlines())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {r.name.lower(): r.extras for r in map(Requirement, project["dependencies"])}
    unmet, versions = [], {}
    for name, pin in shipped.items():
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            unmet.append(f"{name} is not installed")
            continue
        versions[name] = f"=={dist.version}"
        assert pin.startswith("=="), f"{name} is not pinned exactly"
        for text in dist.requires or []:
            needed = Requirement(text)
            wanted = extras.get(name, set()) or {""}
            environment = {"python_version": "3.12", "sys_platform": "linux", "platform_machine": "aarch64"}
            if needed.marker and not any(needed.marker.evaluate({**environment, "extra": e}) for e in wanted):
                continue
            key = needed.name.lower().replace("_", "-")
            if key not in shipped and key not in RUNTIME_PROVIDED:
                unmet.append(f"{name} needs {key}")
    assert unmet == []
    assert versions == shipped
