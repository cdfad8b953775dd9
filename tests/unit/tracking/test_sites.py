"""The `track` entry of the webhook secret: keys, origin patterns and the Origin header."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.config import ConfigurationError
from leadscore.errors import OriginNotAllowed, UnknownSite
from leadscore.tracking.sites import (
    OriginPattern,
    TrackSecret,
    check_origin,
    parse_origin,
    read_sites,
    request_origin,
)

pytestmark = pytest.mark.unit

ACME = {
    "key": "tk_acme_public",
    "origins": ["https://www.acme.com", "https://*.acme.com", "http://localhost:*"],
}


def _sites(**site: Any) -> TrackSecret:
    return read_sites({"sites": {"www-acme": {**ACME, **site}}})


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.acme.com", True),
        ("https://WWW.ACME.COM", True),  # hosts compare lower-case
        ("https://www.acme.com:443", True),  # the default port is the same origin
        ("https://www.acme.com:8443", False),
        ("http://www.acme.com", False),  # another scheme is another origin
        ("https://shop.acme.com", True),
        ("https://a.b.acme.com", True),
        ("https://acme.com", False),  # the apex is not a subdomain: list it separately
        ("https://evilacme.com", False),
        ("https://acme.com.evil.com", False),
        ("http://localhost:3000", True),
        ("http://localhost", True),
        ("https://localhost:3000", False),
        ("http://127.0.0.1:3000", False),
    ],
)
def test_a_site_allows_exactly_its_origin_patterns(origin: str, allowed: bool) -> None:
    parsed = parse_origin(origin)
    assert parsed is not None
    assert _sites().sites["www-acme"].allows(parsed) is allowed


@pytest.mark.parametrize(
    "pattern",
    [
        "https://www.acme.com/",  # a path, even a trailing slash
        "https://www.acme.com/shop",
        "www.acme.com",  # no scheme
        "ftp://www.acme.com",
        "https://www.*.com",  # '*' elsewhere than before the domain
        "https://*acme.com",
        "https://*.com",  # every .com site
        "https://www.acme.com:99999",
        "https://www.acme.com?x=1",
        "https://user@www.acme.com",
        "*",
    ],
)
def test_a_bad_origin_pattern_is_a_configuration_error_when_the_secret_is_read(pattern: str) -> None:
    with pytest.raises(ConfigurationError, match="origins"):
        _sites(origins=["https://ok.acme.com", pattern])


@pytest.mark.parametrize(
    "site",
    [{"key": "short"}, {"origins": []}, {"colour": "blue"}, {"identify": "sometimes"}],
    ids=["key-under-8", "no-origin", "unknown-setting", "identify-not-bool"],
)
def test_a_malformed_site_is_a_configuration_error(site: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="track entry is invalid"):
        _sites(**site)


def test_sites_identify_by_default_and_may_opt_out() -> None:
    assert _sites().sites["www-acme"].identify is True
    assert _sites(identify=False).sites["www-acme"].identify is False


@pytest.mark.parametrize("pattern", ["https://bücher.example", "https://*.bücher.example:8443"])
def test_a_unicode_host_is_its_idna_form_as_browsers_send_it(pattern: str) -> None:
    # An operator writes the shop's name as it reads; the Origin header carries its punycode
    sites = _sites(origins=[pattern])
    host = "xn--bcher-kva.example"
    origin = parse_origin(f"https://{host}" if "*" not in pattern else f"https://shop.{host}:8443")
    assert origin is not None and sites.sites["www-acme"].allows(origin)


def test_ports_wildcard_and_ipv6_loopback_parse() -> None:
    pattern = OriginPattern.parse("http://[::1]:*")
    origin = parse_origin("http://[::1]:5173")
    assert origin is not None and pattern.matches(origin)


@pytest.mark.parametrize(("site_id", "key"), [("www-acme", "tk_acme_wrong"), ("www-other", "tk_acme_public")])
def test_an_unknown_site_or_a_wrong_key_is_one_401(site_id: str, key: str) -> None:
    with pytest.raises(UnknownSite, match="unknown site or wrong key") as raised:
        _sites().site(site_id, key)
    assert raised.value.status == 401


def test_the_right_key_names_the_site() -> None:
    assert _sites().site("www-acme", "tk_acme_public").key == "tk_acme_public"


@pytest.mark.parametrize(
    ("headers", "named"),
    [({}, "missing"), ({"origin": "null"}, "null"), ({"origin": "https://www.acme.com/path"}, "not scheme")],
)
def test_a_missing_null_or_malformed_origin_is_403_naming_it(headers: dict[str, str], named: str) -> None:
    with pytest.raises(OriginNotAllowed, match=named) as raised:
        request_origin(headers)
    assert raised.value.status == 403


def test_an_origin_of_another_site_is_403_naming_the_site() -> None:
    origin = request_origin({"origin": "https://www.other.com"})
    with pytest.raises(OriginNotAllowed, match="www-acme"):
        check_origin(_sites().sites["www-acme"], "www-acme", origin)
