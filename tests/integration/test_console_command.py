"""`leadscore console`: the lead API client's signing and sources (--api-url, --stack), and the
demo hand-off (`make demo` saves, `leadscore console --demo` serves it after the demo exited)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from leadscore.cli import CommandError
from leadscore.console import api, snapshot
from leadscore.local.replay import Client, console_command
from leadscore.local.server import LocalOptions, LocalStack

from .local.test_local_stack import post_generic

pytestmark = pytest.mark.integration


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    answer: tuple[int, dict[str, Any]] = (200, {"ok": True})
    location: str | None = None  # a redirect's target

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, body = type(self).answer
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if type(self).location:
            self.send_header("Location", str(type(self).location))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, type[_Recorder]]]:
    yield from _recording_server()


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    yield from _recording_server()


def _recording_server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def test_requests_are_signed_for_execute_api_with_the_users_credentials(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, recorder: tuple[str, type[_Recorder]]
) -> None:
    # Given the user's own credentials (a session: access key, secret and token)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUSER")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "user-session-token")
    monkeypatch.delenv("AWS_SECURITY_TOKEN")
    url, handler = recorder

    # When the console reads the API
    lead_api = api.LeadApi(api.target_for_url(url, "eu-west-1"))
    answer = lead_api.get("/v1/leads", {"stage": "SQL", "cursor": None})

    # Then the request is SigV4-signed with them, for execute-api in that region
    (request,) = handler.seen
    assert answer == {"ok": True}
    assert request["path"] == "/v1/leads?stage=SQL"
    assert request["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDUSER/")
    assert "/eu-west-1/execute-api/aws4_request" in request["authorization"]
    assert request["x-amz-security-token"] == "user-session-token"


def test_a_redirect_is_never_followed_with_the_signed_headers(
    aws_env: None, recorder: tuple[str, type[_Recorder]], elsewhere: tuple[str, type[_Recorder]]
) -> None:
    # Given an API that answers with a redirect to another host
    url, handler = recorder
    other_url, other = elsewhere
    handler.answer, handler.location = (302, {}), other_url + "v1/models"
    # When the console reads it
    with pytest.raises(api.ApiError) as raised:
        api.LeadApi(api.target_for_url(url, "us-east-1")).get("/v1/models")
    # Then the redirect is the answer: nothing (no signature, no session token) went elsewhere
    assert raised.value.status == 302
    assert other.seen == []


@pytest.mark.parametrize("url", ["http://api.example.com/", "http://10.0.0.5/"])
def test_a_remote_api_must_be_https(aws_env: None, url: str) -> None:
    with pytest.raises(CommandError, match="must be https"):
        api.target_for_url(url, "us-east-1")


def test_the_region_is_read_from_an_execute_api_url(aws_env: None) -> None:
    target = api.target_for_url("https://abc123.execute-api.ap-south-1.amazonaws.com/", None)

    assert target.region == "ap-south-1"


def test_an_api_refusal_keeps_its_status_and_message(aws_env: None, recorder: tuple[str, Any]) -> None:
    url, handler = recorder
    handler.answer = (403, {"message": "User is not authorized to access this resource"})

    with pytest.raises(api.ApiError) as raised:
        api.LeadApi(api.target_for_url(url, "us-east-1")).get("/v1/leads/ld_x")

    assert raised.value.status == 403
    assert "not authorized" in raised.value.message


def test_an_unreachable_api_is_a_502_naming_it(aws_env: None) -> None:
    with pytest.raises(api.ApiError) as raised:
        api.LeadApi(api.target_for_url("http://127.0.0.1:9/", "us-east-1")).get("/v1/models")

    assert raised.value.status == 502 and "127.0.0.1:9" in raised.value.message


def test_a_stack_name_gives_its_api_url_output(aws: None) -> None:
    # Given a deployed stack with the ApiUrl output
    url = "https://abc123.execute-api.us-east-1.amazonaws.com/"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"ApiUrl": {"Value": url}},
    }
    boto3.client("cloudformation").create_stack(StackName="leads-prod", TemplateBody=json.dumps(template))

    target = api.target_for_stack("leads-prod", None)

    assert (target.url, target.region) == (url, "us-east-1")


def test_a_stack_without_the_output_is_named_in_the_error(aws: None) -> None:
    from leadscore.cli import CommandError

    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    boto3.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(template))

    with pytest.raises(CommandError, match="no ApiUrl output"):
        api.target_for_stack("other", None)


def test_the_demo_prints_a_console_command_for_its_saved_state() -> None:
    assert console_command(None) == ".venv/bin/leadscore console --demo"
    assert (
        console_command(Path("/tmp/my state.json"))
        == ".venv/bin/leadscore console --demo '/tmp/my state.json'"
    )


@pytest.mark.loopback
def test_console_demo_serves_what_a_finished_demo_saved(tmp_path: Path) -> None:
    # Given a local stack that recorded a lead, saved, then stopped (the demo's process ended)
    state = tmp_path / "state.json"
    options = LocalOptions(port=0, background=False, log=None, say=lambda _: None, emulator="process")
    with LocalStack(options) as stack:
        client = Client(stack.url)
        email = "saved-lead@initech.example"
        status, _ = post_generic(client, {"email": email, "event": "demo_requested"})
        client.close()
        stack.settle()
        saved = snapshot.save(stack, state)
    assert status == 202 and saved.items > 0

    # When `leadscore console --demo STATE` runs in its own process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "console", "--demo", str(state), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output = _Output(process)
    try:
        url = output.url()
        with urllib.request.urlopen(f"{url}leads?stage=lead", timeout=60) as response:
            page = response.read().decode()
        with urllib.request.urlopen(f"{url}leads?email={email}", timeout=60) as response:
            lead_page = response.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    # Then it shows the saved lead at the plain URL it printed (demo data on fake credentials: no
    # token), and stops cleanly on SIGTERM
    assert "?token=" not in url
    assert email in lead_page and "Requested a demo" in lead_page
    assert "<h1>Leads in " in page
    printed = output.rest()
    assert process.returncode == 0, printed
    assert "leadscore console: stopped" in printed


class _Output:
    """A process's output read on a thread, so a console that never prints its URL fails the test
    at a deadline instead of hanging it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def url(self, timeout: float = 120.0) -> str:
        while True:
            line = self._lines.get(timeout=timeout)
            self._seen.append(line)
            if line.startswith("leadscore console: http"):
                return line.split()[2]
            assert line, f"the console exited without serving: {''.join(self._seen)}"

    def rest(self, timeout: float = 30.0) -> str:
        while (line := self._lines.get(timeout=timeout)) != "":
            self._seen.append(line)
        return "".join(self._seen)


def test_a_console_signing_with_the_users_credentials_opens_only_with_its_token(
    aws_env: None, recorder: tuple[str, type[_Recorder]]
) -> None:
    # Given `leadscore console --api-url` (a deployed API, signed with the user's credentials)
    api_url, _ = recorder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "leadscore.cli", "console", "--api-url", api_url, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = _Output(process)
    try:
        printed = output.url()
        plain = printed.split("?")[0]
        # When another local program asks it without the token
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{plain}backtest", timeout=60)
        # And the user's browser opens a page with the printed token (this fake API has no leads
        # page to land on), then again with the cookie it got
        token = printed.split("?token=")[1]
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        browser.open(f"{plain}backtest?token={token}", timeout=60).close()
        with browser.open(f"{plain}backtest", timeout=60) as response:
            status = response.status
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    # Then only the browser holding the token gets in
    assert "?token=" in printed
    assert refused.value.code == 401
    assert status == 200
