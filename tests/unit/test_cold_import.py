"""A cold start builds only the models its requests use: importing a handler defines every model of
the modules it imports, but builds none of their validators (`leadscore.schema.Model` defers them
to first use: a model of ours on pydantic's BaseModel directly fails here), and a request builds what
it validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/handler.py"))
# Built at import on purpose: a module-level default instance (adapters.base.DEFAULT_RETRY_RULES).
BUILT_AT_IMPORT = {"leadscore.adapters.base.RetryRules"}
REPORT = """
import json, sys
sys.path.insert(0, {function!r})
import handler
from pydantic import BaseModel

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

models = [m for m in subclasses(BaseModel) if m.__module__.startswith("leadscore")]
built = sorted(f"{{m.__module__}}.{{m.__qualname__}}" for m in models if m.__pydantic_complete__)
print(json.dumps({{"defined": len(models), "built": built}}))
"""


def _report(function: str) -> dict[str, object]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "shared"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    code = REPORT.format(function=str(ROOT / "functions" / function))
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True, timeout=120
    )
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("function", HANDLERS)
def test_importing_a_handler_builds_no_model(function: str) -> None:
    assert set(_report(function)["built"]) <= BUILT_AT_IMPORT  # type: ignore[call-overload]


def test_the_check_sees_the_models_a_handler_defines() -> None:
    assert _report("lead_api")["defined"] > 50  # type: ignore[operator]
