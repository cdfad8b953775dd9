"""The visitor token (issue 14): AES-GCM under a sub-key of the lead-id key, bound to its site and
browser, valid for its lifetime; anything else a browser sends back is simply absent."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadscore.errors import LeadKeyUnavailable
from leadscore.keys import LeadKeys
from leadscore.tracking.tokens import TOKEN_KEY_LABEL, VisitorTokens

pytestmark = pytest.mark.unit

KEYS = LeadKeys.keyed(b"unit-test-lead-id-key-0123456789abcdef")
SITE = "www-acme"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_sub_keys_are_labelled_and_never_the_lead_id_key() -> None:
    token_key = KEYS.derive(TOKEN_KEY_LABEL)
    assert len(token_key) == 32
    assert token_key == KEYS.derive(TOKEN_KEY_LABEL)  # deterministic: every container agrees
    assert token_key != KEYS.derive("another purpose")
    assert token_key != LeadKeys.keyed(b"another-deployment-key-0123456789abcdef").derive(TOKEN_KEY_LABEL)
    assert KEYS.key is not None and KEYS.key[:32] != token_key
    with pytest.raises(LeadKeyUnavailable):
        LeadKeys.legacy().derive(TOKEN_KEY_LABEL)
    assert VisitorTokens.for_keys(LeadKeys.legacy(), 180) is None  # no tokens: the slow path
    assert "unit-test" not in repr(VisitorTokens.for_keys(KEYS, 180))


def test_a_token_opens_only_for_its_site_and_visitor_and_within_its_lifetime() -> None:
    tokens = VisitorTokens.for_keys(KEYS, lifetime_days=180)
    assert tokens is not None
    token = tokens.seal(SITE, "visitor-a", "ann@acme.example", NOW)
    assert token.startswith("vt1.") and "ann" not in token
    assert tokens.open(token, SITE, "visitor-a", NOW + timedelta(days=179)) == "ann@acme.example"
    assert tokens.open(token, SITE, "visitor-b", NOW) is None  # another browser
    assert tokens.open(token, "www-other", "visitor-a", NOW) is None  # another site
    assert tokens.open(token, SITE, "visitor-a", NOW + timedelta(days=181)) is None  # too old
    assert tokens.open(token, SITE, "visitor-a", NOW - timedelta(days=1)) is None  # issued "later"
    assert VisitorTokens(bytes(32), 180 * 86_400).open(token, SITE, "visitor-a", NOW) is None


@pytest.mark.parametrize(
    "bad", ["", "vt1.", "vt1.!!!", "vt1." + "A" * 40, "vt2.AAAA", "x" * 2000, "vt1.%%%%====", "vt1.AA=A"]
)
def test_anything_else_is_absent_never_an_error(bad: str) -> None:
    tokens = VisitorTokens.for_keys(KEYS, lifetime_days=180)
    assert tokens is not None and tokens.open(bad, SITE, "visitor-a", NOW) is None


def test_a_tampered_or_unexpected_plaintext_is_absent() -> None:
    tokens = VisitorTokens.for_keys(KEYS, lifetime_days=180)
    assert tokens is not None
    token = tokens.seal(SITE, "visitor-a", "ann@acme.example", NOW)
    raw = bytearray(base64.urlsafe_b64decode(token[4:] + "=" * (-len(token[4:]) % 4)))
    raw[-1] ^= 1
    assert tokens.open("vt1." + base64.urlsafe_b64encode(bytes(raw)).decode(), SITE, "visitor-a", NOW) is None
    # A plaintext sealed with the right key but the wrong shape (no issued time, not JSON)
    aead, nonce = AESGCM(KEYS.derive(TOKEN_KEY_LABEL)), b"\x00" * 12
    for plaintext in (
        json.dumps({"email": "ann@acme.example"}).encode(),
        b"not json",
        b'{"email": 1, "issued": 2}',
    ):
        sealed = nonce + aead.encrypt(nonce, plaintext, f"{SITE}\x1fvisitor-a".encode())
        forged = "vt1." + base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        assert tokens.open(forged, SITE, "visitor-a", NOW) is None
