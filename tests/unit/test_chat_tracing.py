"""The chat webhook's URL is a credential (whoever has it posts to the channel): it lives in
Secrets Manager, and must not be copied into X-Ray, where trace readers would find it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import aws_xray_sdk.core
import pytest
from aws_lambda_powertools import Tracer
from aws_xray_sdk.core import xray_recorder

from leadscore.local.glue import repo_root

pytestmark = pytest.mark.unit


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Tracing enabled as in Lambda; the modules X-Ray would instrument recorded, none patched."""
    recorded: list[str] = []

    def patch(modules: tuple[str, ...] | list[str], *args: object, **kwargs: object) -> None:
        recorded.extend(modules)

    def patch_all(*args: object, **kwargs: object) -> None:
        recorded.append("*every supported module, httplib included*")

    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    for name in ("AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(aws_xray_sdk.core, "patch", patch)
    monkeypatch.setattr(aws_xray_sdk.core, "patch_all", patch_all)
    monkeypatch.setattr(xray_recorder, "patch", patch, raising=False)
    monkeypatch.setattr(xray_recorder, "patch_all", patch_all, raising=False)
    Tracer._reset_config()
    yield recorded
    Tracer._reset_config()


def test_the_chat_function_does_not_trace_its_http_calls(patched: list[str]) -> None:
    """X-Ray's httplib patch records each request's URL (less its query) in the trace: a Slack
    webhook's secret is its path (/services/T…/B…/<secret>)."""
    path = repo_root() / "functions/chat_alerts/handler.py"
    spec = importlib.util.spec_from_file_location("chat_alerts_handler_traced", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("chat_alerts_handler_traced", None)

    assert patched, "tracing was not enabled: the test proves nothing"
    assert "botocore" in patched  # AWS calls are still traced
    assert [m for m in patched if "httplib" in m or m.startswith(("*", "requests", "httpx"))] == []
