"""The lead API as the console reads it: GET requests signed with SigV4 (service `execute-api`)
using the caller's own AWS credentials, so the console can see exactly what its user's IAM
permissions allow and nothing is exposed in the cloud for it.

Answers are parsed into the API's own answer models (`leadscore.leads`, `leadscore.score_history`)
where the console relies on their fields, so a change of contract fails loudly here."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from leadscore.errors import LeadScoreError

TIMEOUT_SECONDS = 35  # API Gateway gives up at 30 s
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, never followed: following it would send the signed headers (the
    session token among them) to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


class ApiError(LeadScoreError):
    """The lead API answered with an error, or could not be reached; `status` is its HTTP status
    (502 when it could not be reached)."""

    code = "lead_api_error"

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiTarget:
    """Where the lead API is and how to sign for it."""

    url: str  # base URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/
    region: str
    credentials: Credentials | ReadOnlyCredentials
    label: str  # what the console shows as its source: "stack prod (eu-west-1)", "local stack ..."


class LeadApi:
    def __init__(self, target: ApiTarget) -> None:
        self.target = target
        self._base = target.url.rstrip("/")

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET `path` (with `query`, None values left out) signed; the JSON answer, or ApiError."""
        params = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        url = self._base + path + (f"?{urlencode(params)}" if params else "")
        request = AWSRequest(method="GET", url=url, headers={"accept": "application/json"})
        SigV4Auth(self.target.credentials, "execute-api", self.target.region).add_auth(request)
        prepared = urllib.request.Request(url, headers=dict(request.headers.items()), method="GET")
        try:
            with _OPENER.open(prepared, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(_message(exc.read(), exc.code), exc.code) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"the lead API at {self._base} cannot be reached ({reason})") from exc
        except json.JSONDecodeError as exc:
            raise ApiError(f"the lead API at {self._base} did not answer JSON") from exc


def _message(raw: bytes, status: int) -> str:
    try:
        answer = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        answer = None
    if isinstance(answer, dict):
        return str(answer.get("message") or answer.get("error") or answer)
    return f"HTTP {status}"


def _session_credentials(session: Any, who: str) -> Credentials:
    from leadscore.cli import CommandError

    credentials = session.get_credentials()
    if credentials is None:
        raise CommandError(
            f"no AWS credentials for {who}: configure them (aws configure, AWS_PROFILE, "
            "or environment variables) — the console signs every request with them"
        )
    return credentials


def target_for_url(url: str, region: str | None, profile: str | None = None) -> ApiTarget:
    """A deployed API by URL, signed with the user's credentials (region from the URL if not given)."""
    import boto3

    from leadscore.cli import CommandError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"--api-url {url!r}: expected an http(s) URL such as the stack's ApiUrl output")
    host = parts.hostname or ""
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise CommandError(
            f"--api-url {url!r}: requests are signed with your AWS credentials, so a remote API must "
            "be https (plain http is for a stack on this machine)"
        )
    inferred = host.split(".")[2] if ".execute-api." in host and host.count(".") >= 3 else None
    session = boto3.Session(profile_name=profile, region_name=region or inferred)
    chosen = region or inferred or session.region_name
    if not chosen:
        raise CommandError("no AWS region: pass --region (or set AWS_REGION)")
    return ApiTarget(url, chosen, _session_credentials(session, url), f"{url} ({chosen})")


def target_for_stack(stack: str, region: str | None, profile: str | None = None) -> ApiTarget:
    """A deployed stack's API: its `ApiUrl` output, signed with the user's credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from leadscore.cli import CommandError

    session = boto3.Session(profile_name=profile, region_name=region)
    if not session.region_name:
        raise CommandError("no AWS region: pass --region (or set AWS_REGION)")
    try:
        (found,) = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"cannot read stack {stack}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise CommandError(f"stack {stack} has no ApiUrl output: is it a leadscore stack?")
    return ApiTarget(
        outputs["ApiUrl"],
        session.region_name,
        _session_credentials(session, f"stack {stack}"),
        f"stack {stack} ({session.region_name})",
    )


def target_for_local(url: str, label: str | None = None) -> ApiTarget:
    """The local stack (`make local`, or the console's own for `--demo`): it accepts any signed
    request, so it is signed with the emulator's fake credentials, never the user's."""
    from leadscore.local.stack import REGION

    return ApiTarget(url, REGION, Credentials("testing", "testing"), label or f"local stack {url}")
