"""The visitor token: who an identified browser is, sealed so the collector needs no read for its views.

`vt1.<base64url(nonce || AES-256-GCM ciphertext+tag)>`, no padding. The key is a sub-key of the
deployment's lead-id key (`LeadKeys.derive(TOKEN_KEY_LABEL)`), the nonce 12 random bytes, the
associated data the site id and visitor id (a token copied to another site or browser does not
open), the plaintext compact JSON `{"email": ..., "issued": <unix seconds>}`.

`open` never raises for what a browser sends: a token that is malformed, does not decrypt, names
another site or visitor, or is older than its lifetime is ABSENT (None), and the beacon goes the
slow path (parked, or the browser's link read once). Only the primitives of `cryptography` are used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadscore.keys import LeadKeys

TOKEN_PREFIX = "vt1."
TOKEN_KEY_LABEL = "leadscore/track/visitor-token/v1"
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_TOKEN_CHARS = 1024  # the wire format's bound (`Beacon.token`)


class VisitorTokens:
    """Seals and opens visitor tokens with one deployment's key. `repr` never shows the key."""

    def __init__(self, key: bytes, lifetime_seconds: int) -> None:
        self._aead = AESGCM(key)
        self.lifetime_seconds = lifetime_seconds

    def __repr__(self) -> str:
        return f"VisitorTokens(lifetime_seconds={self.lifetime_seconds})"

    @classmethod
    def for_keys(cls, keys: LeadKeys, lifetime_days: int) -> VisitorTokens | None:
        """The deployment's tokens; None for a legacy (unkeyed) deployment: no token is ever issued,
        and every view of an identified browser goes the slow path."""
        if keys.key is None:
            return None
        return cls(keys.derive(TOKEN_KEY_LABEL), lifetime_days * 86_400)

    def seal(self, site: str, visitor: str, email: str, issued: datetime) -> str:
        plaintext = json.dumps(
            {"email": email, "issued": int(issued.timestamp())}, separators=(",", ":")
        ).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, _associated(site, visitor))
        return TOKEN_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, token: str | None, site: str, visitor: str, now: datetime) -> str | None:
        """The email the token names, when it is this deployment's, for this site and visitor, and
        younger than its lifetime; None otherwise (never an error)."""
        if not token or len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
            return None
        text = token[len(TOKEN_PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            return None
        try:
            plaintext = self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated(site, visitor)
            )
            claims = json.loads(plaintext)
            email, issued = claims["email"], claims["issued"]
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None
        if not isinstance(email, str) or not isinstance(issued, int):
            return None
        age = now.timestamp() - issued
        if age > self.lifetime_seconds or age < -300:  # from the future (beyond clock skew): not ours
            return None
        return email


def _associated(site: str, visitor: str) -> bytes:
    return f"{site}\x1f{visitor}".encode()
