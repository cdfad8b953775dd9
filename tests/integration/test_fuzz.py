"""Property-based fuzzing of every provider through the real `ingest_webhook` against moto.

Each example is a correctly SIGNED mutation of a real sample (so it reaches the parser past the
signature check), with mutated headers. Whatever arrives, the answer is either 2xx with every
returned event id in the ledger (and of a type the provider may assert), or a 4xx with nothing new
in the ledger: never a 5xx, never an exception, never half-recorded. Reproducible (derandomize).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore import pipeline
from leadscore.adapters import get_adapter
from leadscore.adapters.base import WebhookRequest
from leadscore.config import Settings
from leadscore.errors import LeadScoreError
from leadscore.local import signing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "providers"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"fuzz-generic-key-0123456789abcdef").decode()
TYPEFORM_SECRET = "tf-fuzz-secret"
SITE, TOKEN = "www-leadscore", "st_7Qm2xK9pLr4v"
HTML_SEED = (SAMPLES / "html/contact.urlencoded").read_bytes()
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
# Byte strings that break naive parsers: unstorable numbers, lone surrogates, deep nesting, ReDoS
# emails, forbidden event types, non-text charsets, multipart structure.
INTERESTING = [
    b"1e-140",
    b"5e-324",
    b"1e400",
    b"-1e-400",
    b"9" * 4301,
    b"1" + b"0" * 45,
    b"NaN",
    b'"\\ud800"',
    b"[" * 3000,
    b'{"a":' * 500,
    b'"email_unsubscribed"',
    b'"email_complained"',
    b'"email_resubscribed"',
    b'"email_bounced_hard"',
    b'"a@' + b"." * 3000 + b'@x"',
    b"\xff\xfe",
    b"\x00",
    b"%ff%fe",
    b"%00",
    b"_event=email_unsubscribed&",
    b"_page=https://x.example/pricing&",
    b"=?idna?q?x?=",
    b"; charset=idna",
    b"; charset=undefined",
    b"; charset=punycode",
    b"name*=idna''%ff%fe",
    b"\r\n--",
    b"\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n",
    b"\r\nContent-Transfer-Encoding: base64\r\n",
    b"{}",
    b"[]",
    b"null",
    b'""',
    b"-0",
    b"1.5e125",
]
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["email_unsubscribed", "email_complained", "page_viewed", "a@b.c", "x" * 600]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=70), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def byte_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "truncate", "repeat"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        elif op == "splice":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            chunk = data[pos : pos + draw(st.integers(1, 16))]
            data[pos:pos] = chunk * draw(st.integers(2, 200))
    return bytes(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


RAW_LITERALS = [
    b"1e-140",
    b"5e-324",
    b"-2.5e-131",
    b"1e400",
    b"1e-400",
    b"9" * 4301,
    b"1" + b"0" * 45,
    b"1.5e125",
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',
    b"[" * 2000 + b"]" * 2000,
    b'"a@' + b"." * 3000 + b'@x"',
    b'"' + b"a" * 70 + b'@acme.example"',
    b'"email_unsubscribed"',
    b'"email_complained"',
    b'"email_resubscribed"',
    b'"email_bounced_hard"',
    b'"page_viewed"',
]
_HOLE = "\x00hole\x00"


@st.composite
def json_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """Replace one value (or add one key) anywhere in the seed document with a hostile raw literal
    or a generated JSON value: structure-aware, so it reaches deep, typed and free-form fields."""
    document = json.loads(seed)
    path = draw(st.sampled_from(list(_paths(document))))
    literal = draw(
        st.one_of(st.sampled_from(RAW_LITERALS), JSON_VALUES.map(lambda v: json.dumps(v).encode()))
    )
    if not path:
        return literal
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        parent[draw(st.sampled_from(["x", "Job Title", "名前", "a" * 300, "event", "url"]))] = _HOLE
    else:
        parent[path[-1]] = _HOLE
    return json.dumps(document).encode().replace(json.dumps(_HOLE).encode(), literal)


def bodies(seeds: list[bytes], structured: bool) -> st.SearchStrategy[bytes]:
    seed = st.sampled_from(seeds)
    if not structured:
        return st.one_of(seed, seed.flatmap(byte_mutation))
    mutated = seed.flatmap(json_mutation)
    return st.one_of(
        mutated, mutated, mutated.map(bytes).flatmap(json_mutation_or_same), mutated.flatmap(byte_mutation)
    )


def json_mutation_or_same(body: bytes) -> st.SearchStrategy[bytes]:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return st.just(body)
    return json_mutation(body)


FORM_KEYS = ["_event", "event", "intent", "_page", "email", "company_size", "Job Title", "名前", "a" * 300]
FORM_VALUES = [
    "email_unsubscribed",
    "email_complained",
    "email_resubscribed",
    "email_bounced_hard",
    "page_viewed",
    "https://www.leadscore.example/pricing",
    "a@" + "." * 3000 + "@x",
    "a" * 70 + "@acme.example",
    "9" * 4301,
    "1e-140",
    "51-200",
]


@st.composite
def form_fields(draw: st.DrawFn) -> list[tuple[str, str]]:
    fields = parse_qsl(HTML_SEED.decode(), keep_blank_values=True)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.one_of(st.sampled_from(FORM_KEYS), st.text(max_size=20)))
        value = draw(st.one_of(st.sampled_from(FORM_VALUES), st.text(max_size=40)))
        fields.insert(draw(st.integers(0, len(fields))), (key, value))
    return fields


PART_HEADERS = [
    f"Content-Type: text/plain; charset={charset}"
    for charset in ["idna", "undefined", "punycode", "utf-7", "utf-16", "utf-8", "latin-1", "x-nope"]
] + [
    "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable",
    "Content-Type: multipart/mixed; boundary=inner",
    "Content-Type: message/rfc822",
]


@st.composite
def multipart_forms(draw: st.DrawFn) -> bytes:
    chunks = []
    for key, value in draw(form_fields()):
        disposition = draw(
            st.sampled_from(
                [
                    f'form-data; name="{key}"',
                    f'form-data; name="{key}"',
                    f"form-data; name*=idna''%ff%fe{key}",
                    f"form-data; name*=punycode''{key}",
                    f"form-data; name*=utf-8''{key}",
                    f'form-data; name="{key}"; filename="x.txt"',
                    f"form-data; name==?idna?q?{key}?=",
                ]
            )
        )
        extra = draw(st.lists(st.sampled_from(PART_HEADERS), max_size=2))
        head = "\r\n".join([f"Content-Disposition: {disposition}", *extra])
        text = f"--fuzzb\r\n{head}\r\n\r\n{value}\r\n"
        chunks.append(text.encode("utf-8", "surrogatepass"))
    return b"".join(chunks) + b"--fuzzb--\r\n"


def headers(content_type: str) -> st.SearchStrategy[dict[str, str]]:
    """Mostly the right content type (so bodies reach the parser), sometimes a hostile one, plus
    junk headers."""
    odd_types = [
        "",
        "text/plain",
        f"{content_type}; charset=idna",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="\\"',
        "application/x-www-form-urlencoded",
        "application/json",
        f"{content_type}\r\nX-Injected: 1",
    ]
    chosen = st.one_of(
        st.just(content_type), st.just(content_type), st.just(content_type), st.sampled_from(odd_types)
    )
    junk = st.dictionaries(
        st.sampled_from(["referer", "x-forwarded-for", "content-length", "user-agent", "origin"]),
        st.text(max_size=60),
        max_size=3,
    )
    return st.builds(lambda ct, extra: {**extra, "content-type": ct}, chosen, junk)


@dataclass
class Harness:
    settings: Settings
    table: Any
    sendgrid_private_key: str

    def event_ids(self) -> dict[str, str]:
        items: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ProjectionExpression": "event_id, event_type"}
        while True:
            page = self.table.scan(**kwargs)
            items.update({item["event_id"]: item["event_type"] for item in page["Items"]})
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def check(self, request: WebhookRequest, channel: str, *, from_queue: bool = False) -> None:
        before = self.event_ids()
        try:
            result = pipeline.ingest_webhook(request, channel, self.settings, from_queue=from_queue)  # type: ignore[arg-type]
        except LeadScoreError as error:
            refused = error
        else:
            refused = None
        if refused is not None:
            assert refused.status < 500, f"{refused.status} {refused.code}: {refused.message}"
            assert self.event_ids() == before, "a refused request recorded something"
            return
        after = self.event_ids()
        adapter = get_adapter(request.provider, channel, from_queue=from_queue)  # type: ignore[arg-type]
        allowed = {event_type.value for event_type in adapter.event_types}
        for event_id in result.event_ids:
            assert event_id in after, "an accepted event is missing from the ledger"
            assert after[event_id] in allowed, f"{request.provider} recorded {after[event_id]}"


@pytest.fixture
def harness(
    tables: dict[str, str], lead_key_secret: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    private_pem, public_b64 = signing.new_sendgrid_key()
    secret = {
        "generic": {"secret": GENERIC_SECRET},
        "html": {"sites": {SITE: TOKEN}},
        "typeform": {"secret": TYPEFORM_SECRET, "field_refs": {"role": "job_title"}},
        "sendgrid": {"public_key": public_b64},
    }
    boto3.client("secretsmanager").create_secret(Name="fuzz-webhooks", SecretString=json.dumps(secret))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    environment = {
        "LEDGER_TABLE": tables["EventLedgerTable"],
        "PROFILES_TABLE": tables["LeadProfilesTable"],
        "WEBHOOK_SECRET_NAME": "fuzz-webhooks",
        "LEAD_KEY_SECRET": lead_key_secret,
    }
    pipeline.reset()
    parameters.clear_caches()
    table = boto3.resource("dynamodb").Table(tables["EventLedgerTable"])
    yield Harness(Settings.from_env(environment), table, private_pem)
    pipeline.reset()
    parameters.clear_caches()


def _request(
    provider: str, body: bytes, header_map: dict[str, str], query: dict[str, str] | None = None
) -> WebhookRequest:
    return WebhookRequest(
        provider=provider,
        body=body,
        headers={k.lower(): v for k, v in header_map.items()},
        query=query or {},
        received_at=datetime.now(UTC),
        source_ip="203.0.113.7",
    )


def _samples(*names: str) -> list[bytes]:
    return [(SAMPLES / name).read_bytes() for name in names]


def _sign_then(
    signer: Callable[[bytes], dict[str, str]],
) -> Callable[[bytes, dict[str, str]], dict[str, str]]:
    return lambda body, extra: {**extra, **{k: v for k, v in signer(body).items() if k != "content-type"}}


# --- one fuzz test per provider ---------------------------------------------------------------------
@FUZZ
@given(
    body=bodies(_samples("generic/demo_request.json", "generic/batch.json"), structured=True),
    header_map=headers("application/json"),
)
def test_fuzz_generic(harness: Harness, body: bytes, header_map: dict[str, str]) -> None:
    msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]  # a new message per body, not a retry
    signed = signing.standard_webhook_headers(body, GENERIC_SECRET, msg_id, int(time.time()))
    harness.check(_request("generic", body, {**header_map, **signed}), "form")


def _multipart_seed() -> bytes:
    parts = [
        f'--fuzzb\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in parse_qsl(HTML_SEED.decode(), keep_blank_values=True)
    ]
    return b"".join(parts) + b"--fuzzb--\r\n"


@FUZZ
@given(
    body=st.one_of(
        bodies([HTML_SEED], structured=False),
        form_fields().map(lambda fields: urlencode(fields).encode()),
        form_fields().map(lambda fields: urlencode(fields).encode()).flatmap(byte_mutation),
    ),
    header_map=headers("application/x-www-form-urlencoded"),
    token_in_url=st.booleans(),
)
def test_fuzz_html_urlencoded(
    harness: Harness, body: bytes, header_map: dict[str, str], token_in_url: bool
) -> None:
    query = {"site": SITE, "token": TOKEN} if token_in_url else {}
    harness.check(_request("html", body.replace(b"www-leadscore", SITE.encode()), header_map, query), "form")


@FUZZ
@given(
    body=st.one_of(
        bodies([_multipart_seed()], structured=False),
        multipart_forms(),
        multipart_forms(),
        multipart_forms().flatmap(byte_mutation),
    ),
    header_map=headers("multipart/form-data; boundary=fuzzb"),
)
def test_fuzz_html_multipart(harness: Harness, body: bytes, header_map: dict[str, str]) -> None:
    harness.check(_request("html", body, header_map), "form")


@FUZZ
@given(
    body=bodies(_samples("typeform/form_response.json"), structured=True),
    header_map=headers("application/json"),
)
def test_fuzz_typeform(harness: Harness, body: bytes, header_map: dict[str, str]) -> None:
    signed = signing.typeform_headers(body, TYPEFORM_SECRET)
    harness.check(
        _request("typeform", body, {**header_map, "typeform-signature": signed["typeform-signature"]}), "form"
    )


@FUZZ
@given(body=bodies(_samples("sendgrid/batch.json"), structured=True), header_map=headers("application/json"))
def test_fuzz_sendgrid(harness: Harness, body: bytes, header_map: dict[str, str]) -> None:
    signed = signing.sendgrid_headers(body, harness.sendgrid_private_key, int(time.time()))
    signed.pop("content-type", None)
    harness.check(_request("sendgrid", body, {**header_map, **signed}), "email")


SES_SAMPLES = sorted(str(p.relative_to(SAMPLES)) for p in (SAMPLES / "ses").glob("*.json"))


@FUZZ
@given(body=bodies(_samples(*SES_SAMPLES), structured=True))
def test_fuzz_ses_queue_messages(harness: Harness, body: bytes) -> None:
    harness.check(_request("ses", body, {}), "email", from_queue=True)
