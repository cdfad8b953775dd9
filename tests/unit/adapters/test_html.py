from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.html import ADAPTER, MAX_FIELDS
from leadscore.domain import EventType, Provider
from leadscore.errors import (
    EventTypeNotAllowed,
    MalformedPayload,
    MissingEmail,
    PayloadTooLarge,
    ProviderNotConfigured,
    SignatureInvalid,
    UnsupportedMediaType,
)

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
SECRET: dict[str, Any] = {"sites": {"www-leadscore": "st_7Qm2xK9pLr4v", "docs": "st_docs_2026"}}
AUTH = {"_site": "www-leadscore", "_token": "st_7Qm2xK9pLr4v"}


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def multipart(fields: list[tuple[str, str]], boundary: str, file: bytes | None = None) -> tuple[bytes, dict]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    ]
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_contact_form_becomes_one_contact_request(
    make_request: MakeRequest, load_sample: Callable[[str], bytes]
) -> None:
    # Given the urlencoded contact form sample
    request = make_request("html", load_sample("html/contact.urlencoded"), URLENCODED)
    # When parsing it
    [event] = ADAPTER.parse(request, SECRET)
    # Then it is a contact request dated at receipt, control and captcha fields dropped
    assert event.provider is Provider.HTML
    assert event.event_type is EventType.CONTACT_REQUESTED
    assert event.email == "bob.stone@globex.example"
    assert event.occurred_at == request.received_at
    assert event.url is None  # `_page` is typed by the visitor: it earns no page rule
    assert event.attributes.present() == {
        "first_name": "Bob",
        "last_name": "Stone",
        "company": "Globex",
        "company_size": 51,
        "job_title": "Head of Marketing",
        "country": "GB",
        "message": "We need pricing for 20 seats",
        "interests": "scoring, crm-sync",
    }


def test_double_submit_is_one_event_even_with_new_multipart_boundary(make_request: MakeRequest) -> None:
    # Given the same multipart form submitted twice (browsers pick a new boundary each time)
    fields = [*AUTH.items(), ("email", "ann@acme.example"), ("company", "Acme")]
    first = make_request("html", *multipart(fields, "----WebKitFormBoundaryA1"))
    second = make_request("html", *multipart(fields, "----WebKitFormBoundaryZ9"))
    # When parsing both
    # Then they carry the same event id
    assert ADAPTER.parse(first, SECRET)[0].event_id == ADAPTER.parse(second, SECRET)[0].event_id


def test_same_form_on_another_day_is_a_new_event(make_request: MakeRequest) -> None:
    # Given one form body received today and again tomorrow
    body = form({**AUTH, "email": "ann@acme.example"})
    today = make_request("html", body, URLENCODED)
    tomorrow = make_request("html", body, URLENCODED, received_at=today.received_at + timedelta(days=1))
    # Then renewed interest counts again
    assert ADAPTER.parse(today, SECRET)[0].event_id != ADAPTER.parse(tomorrow, SECRET)[0].event_id


def test_multipart_file_parts_are_ignored(make_request: MakeRequest) -> None:
    # Given a multipart form with a file upload
    fields = [*AUTH.items(), ("email", "ann@acme.example"), ("First Name", "Ann")]
    request = make_request("html", *multipart(fields, "b0undary", file=b"%PDF-1.7 binary\x00\xff"))
    # When parsing it
    [event] = ADAPTER.parse(request, SECRET)
    # Then text fields are read and the file is not an attribute
    assert event.attributes.present() == {"first_name": "Ann"}


def test_filled_honeypot_is_accepted_but_records_nothing(make_request: MakeRequest) -> None:
    # Given a bot that filled the hidden honeypot field
    body = form({**AUTH, "email": "bot@spam.example", "website_url": "http://spam.example"})
    # When parsing
    # Then nothing is recorded and no error tells the bot it was caught
    assert ADAPTER.parse(make_request("html", body, URLENCODED), SECRET) == []


def test_honeypot_field_name_comes_from_the_secret(make_request: MakeRequest) -> None:
    # Given a site whose honeypot is called "fax"
    secret = {**SECRET, "honeypot_field": "fax"}
    trap = form({**AUTH, "email": "bot@spam.example", "fax": "555"})
    human = form({**AUTH, "email": "ann@acme.example", "website_url": "https://acme.example"})
    # Then "fax" traps the bot and "website_url" is an ordinary field
    assert ADAPTER.parse(make_request("html", trap, URLENCODED), secret) == []
    [event] = ADAPTER.parse(make_request("html", human, URLENCODED), secret)
    assert event.attributes.present() == {"website_url": "https://acme.example"}


@pytest.mark.parametrize(
    "auth",
    [
        {"_site": "unknown-site", "_token": "st_7Qm2xK9pLr4v"},
        {"_site": "www-leadscore", "_token": "st_docs_2026"},
        {"_site": "www-leadscore"},
        {},
    ],
)
def test_unknown_site_or_wrong_token_is_rejected(auth: dict[str, str], make_request: MakeRequest) -> None:
    # Given a post without a matching site id and token
    body = form({**auth, "email": "ann@acme.example"})
    # Then it is a 401
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(make_request("html", body, URLENCODED), SECRET)


def test_site_and_token_may_come_from_the_query_string(make_request: MakeRequest) -> None:
    # Given a form whose action URL carries ?site=docs&token=st_docs
    request = make_request(
        "html",
        form({"email": "ann@acme.example"}),
        URLENCODED,
        query={"site": "docs", "token": "st_docs_2026"},
    )
    # Then it is accepted
    assert [event.email for event in ADAPTER.parse(request, SECRET)] == ["ann@acme.example"]


def test_json_body_is_unsupported(make_request: MakeRequest) -> None:
    # Given a JSON post to the HTML form endpoint
    request = make_request("html", b'{"email": "a@b.example"}', {"content-type": "application/json"})
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType, match="application/x-www-form-urlencoded"):
        ADAPTER.parse(request, SECRET)


def test_form_without_email_is_rejected(make_request: MakeRequest) -> None:
    # Given an authentic form that has no email field filled in
    body = form({**AUTH, "email": "", "first_name": "Ann"})
    # Then it cannot be tied to a lead
    with pytest.raises(MissingEmail):
        ADAPTER.parse(make_request("html", body, URLENCODED), SECRET)


def test_multipart_without_boundary_is_malformed(make_request: MakeRequest) -> None:
    # Given a multipart post whose content-type lost its boundary parameter
    request = make_request("html", b"email=a@b.example", {"content-type": "multipart/form-data"})
    # Then it is a 400
    with pytest.raises(MalformedPayload, match="multipart"):
        ADAPTER.parse(request, SECRET)


def test_event_hint_picks_the_type_and_no_page_or_referer_becomes_a_url(make_request: MakeRequest) -> None:
    # Given a form with a free-text event hint, page fields and a Referer, all claiming the pricing page
    body = form(
        {
            **AUTH,
            "_event": "Book a demo",
            "_page": "https://www.leadscore.example/pricing",
            "page_url": "https://www.leadscore.example/pricing",
            "email": "ann@acme.example",
        }
    )
    headers = URLENCODED | {"referer": "https://www.leadscore.example/pricing"}
    # When parsing it
    [event] = ADAPTER.parse(make_request("html", body, headers), SECRET)
    # Then the hint picks the type, and nothing a visitor can type earns a page/URL rule
    assert event.event_type is EventType.DEMO_REQUESTED
    assert event.url is None
    assert "page_url" not in event.attributes.present()


def test_plain_form_defaults_to_form_submitted_and_drops_secret_fields(make_request: MakeRequest) -> None:
    # Given a form with no hint, a CSRF token and a password-looking field
    fields = {**AUTH, "email": "ann@acme.example", "csrf_token": "x1", "password": "hunter2", "_gotcha": ""}
    # When parsing it
    [event] = ADAPTER.parse(make_request("html", form(fields), URLENCODED), SECRET)
    # Then it is a plain submission and nothing secret-looking is kept
    assert event.event_type is EventType.FORM_SUBMITTED
    assert event.url is None
    assert event.attributes.present() == {}


@pytest.mark.parametrize("charset", ["no-such-charset", "idna", "undefined", "punycode", "utf-7", "utf-16"])
def test_a_part_in_an_unknown_or_non_text_charset_is_a_400_naming_it(
    make_request: MakeRequest, charset: str
) -> None:
    body, headers = multipart(
        [("_site", "www-leadscore"), ("_token", "st_7Qm2xK9pLr4v"), ("email", "ann@acme.example")], "b0undary"
    )
    body = body.replace(
        b'name="email"\r\n', f'name="email"\r\nContent-Type: text/plain; charset={charset}\r\n'.encode()
    )

    with pytest.raises(MalformedPayload, match=charset):
        ADAPTER.parse(make_request("html", body, headers), SECRET)


def test_a_site_token_shorter_than_eight_characters_is_a_configuration_error(
    make_request: MakeRequest,
) -> None:
    request = make_request(
        "html", form({"_site": "x", "_token": "", "email": "ann@acme.example"}), URLENCODED
    )

    with pytest.raises(ProviderNotConfigured):
        ADAPTER.parse(request, {"sites": {"x": ""}})


# --- cheap checks first, every decoding error a 4xx -------------------------------------------------
def test_a_body_over_64_kb_is_413_before_parsing(make_request: MakeRequest) -> None:
    body = form({**AUTH, "email": "ann@acme.example", "message": "x" * 70_000})
    with pytest.raises(PayloadTooLarge, match="65536"):
        ADAPTER.parse(make_request("html", body, URLENCODED), SECRET)


def test_a_wrong_token_in_the_url_is_401_before_the_body_is_parsed(make_request: MakeRequest) -> None:
    # Given a wrong token in the action URL and a body that could not be parsed anyway
    request = make_request(
        "html", b"\xff\xfe not a form", URLENCODED, query={"site": "docs", "token": "nope-nope"}
    )
    # Then the token is what is refused (the body is never looked at)
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(request, SECRET)


def test_the_url_token_authenticates_the_site_the_body_cannot_override_it(make_request: MakeRequest) -> None:
    body = form({"_site": "www-leadscore", "_token": "wrong-token", "email": "ann@acme.example"})
    request = make_request("html", body, URLENCODED, query={"site": "docs", "token": "st_docs_2026"})
    [event] = ADAPTER.parse(request, SECRET)
    assert event.email == "ann@acme.example"


@pytest.mark.parametrize("body", [b"email=%ff%fe", b"\xff\xfe=1", b"&".join([b"a=1"] * 201)])
def test_undecodable_or_oversized_urlencoded_forms_are_400(make_request: MakeRequest, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        ADAPTER.parse(make_request("html", form(AUTH) + b"&" + body, URLENCODED), SECRET)


def test_nested_multipart_is_400(make_request: MakeRequest) -> None:
    inner = b'--in\r\nContent-Disposition: form-data; name="email"\r\n\r\nann@acme.example\r\n--in--\r\n'
    outer, headers = multipart(list(AUTH.items()), "out")
    nested = (
        b'--out\r\nContent-Disposition: form-data; name="files"\r\n'
        b"Content-Type: multipart/mixed; boundary=in\r\n\r\n" + inner + b"\r\n"
    )
    with pytest.raises(MalformedPayload, match="nested"):
        ADAPTER.parse(make_request("html", nested + outer, headers), SECRET)


def test_deeply_nested_multipart_is_400_not_a_crash(make_request: MakeRequest) -> None:
    depth = 400
    body = b""
    for level in range(depth):
        body += f"--b{level}\r\nContent-Type: multipart/mixed; boundary=b{level + 1}\r\n\r\n".encode()
    body += b"x\r\n" + b"".join(f"--b{level}--\r\n".encode() for level in reversed(range(depth)))
    with pytest.raises(MalformedPayload):
        ADAPTER.parse(
            make_request(
                "html",
                body,
                {"content-type": "multipart/form-data; boundary=b0"},
                query={"site": "www-leadscore", "token": "st_7Qm2xK9pLr4v"},
            ),
            SECRET,
        )


def test_too_many_multipart_parts_is_400(make_request: MakeRequest) -> None:
    body, headers = multipart([*AUTH.items(), *((f"f{i}", "x") for i in range(MAX_FIELDS))], "b")
    with pytest.raises(MalformedPayload, match="more than"):
        ADAPTER.parse(make_request("html", body, headers), SECRET)


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode"])
def test_an_rfc2231_field_name_in_a_non_text_charset_is_400(make_request: MakeRequest, charset: str) -> None:
    body, headers = multipart([*AUTH.items(), ("email", "ann@acme.example")], "b")
    body = body.replace(b'name="email"', f"name*={charset}''%ff%fe".encode())
    with pytest.raises(MalformedPayload):
        ADAPTER.parse(make_request("html", body, headers), SECRET)


def test_a_forged_suppression_is_400_even_when_the_honeypot_is_filled(make_request: MakeRequest) -> None:
    body = form({**AUTH, "email": "ann@acme.example", "_event": "email_unsubscribed", "website_url": "x"})
    with pytest.raises(EventTypeNotAllowed, match="email_unsubscribed"):
        ADAPTER.parse(make_request("html", body, URLENCODED), SECRET)


# --- the tracking snippet's visitor field -------------------------------------------------------------
VISITOR = "Vq3x9LmN2pQrS7tUvW1yZa"  # wire.RANDOM_ID: base64url, 22..43 characters


def test_a_visitor_field_links_that_browser_to_the_forms_email(make_request: MakeRequest) -> None:
    from leadscore.adapters import read_delivery
    from leadscore.domain import WEB_VISITOR_NAMESPACE

    # Given a form carrying the snippet's hidden `_visitor` field
    request = make_request(
        "html", form({**AUTH, "email": "Ann@Acme.example", "_visitor": VISITOR}), URLENCODED
    )
    # When the pipeline reads the delivery
    delivery = read_delivery(ADAPTER, request, SECRET)
    # Then it records the form and links the browser to its email at the time received
    [event] = delivery.events
    [link] = delivery.links
    assert (link.external.namespace, link.external.value) == (WEB_VISITOR_NAMESPACE, VISITOR)
    assert link.external.is_browser
    assert (link.email, link.occurred_at) == ("ann@acme.example", request.received_at)
    # And the field is neither an attribute nor part of the dedup key
    assert "_visitor" not in event.attributes.present() and "visitor" not in event.attributes.present()
    [plain] = ADAPTER.parse(
        make_request("html", form({**AUTH, "email": "Ann@Acme.example"}), URLENCODED), SECRET
    )
    assert plain.event_id == event.event_id


@pytest.mark.parametrize("value", ["short", "x" * 44, "has space in it 12345678", "a/b+c=" * 5, ""])
def test_a_malformed_visitor_field_is_ignored_and_the_form_still_counts(
    make_request: MakeRequest, value: str
) -> None:
    from leadscore.adapters import read_delivery

    request = make_request("html", form({**AUTH, "email": "ann@acme.example", "_visitor": value}), URLENCODED)
    delivery = read_delivery(ADAPTER, request, SECRET)
    assert len(delivery.events) == 1
    assert delivery.links == []


def test_a_honeypot_form_links_no_browser(make_request: MakeRequest) -> None:
    from leadscore.adapters import read_delivery

    fields = {**AUTH, "email": "bot@spam.example", "website_url": "http://x", "_visitor": VISITOR}
    delivery = read_delivery(ADAPTER, make_request("html", form(fields), URLENCODED), SECRET)
    assert (delivery.events, delivery.links) == ([], [])
