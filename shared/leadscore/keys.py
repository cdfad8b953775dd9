"""Lead ids: which scheme a deployment uses, and its key. The one place that turns an email into a
lead id outside the pure domain function (`leadscore.domain.lead_id_for`).

A lead id is `ld_` + 24 hex of HMAC-SHA256(key, normalized email). The key is a Secrets Manager
secret the stack generates (`LeadKeySecret` in template.yaml, retained when the stack is deleted);
functions that compute ids get its name in `LEAD_KEY_SECRET` and read it once per container
through Powertools parameters. The key never rotates: another key gives every person another id,
which splits each lead in two (history under the old id, new events under the new). Losing it has
the same effect, hence the secret's Retain policies.

`LEAD_ID_SCHEME=legacy-sha256` (template parameter `LeadIdScheme`) keeps the unkeyed ids of
deployments made before keyed ids, until `leadscore migrate-lead-ids` has moved their tables
(README "Upgrading").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.config import Settings
from leadscore.domain import MIN_LEAD_KEY_BYTES, LeadEvent, lead_id_for, legacy_lead_id_for
from leadscore.errors import LeadKeyUnavailable
from leadscore.secrets import secret_value

LeadIdScheme = Literal["keyed", "legacy-sha256"]
KEYED: LeadIdScheme = "keyed"
LEGACY: LeadIdScheme = "legacy-sha256"
# "Once per container": the key never changes, so a cached copy never goes stale.
KEY_CACHE_SECONDS = 10 * 365 * 24 * 3600


@dataclass(frozen=True, repr=False)
class LeadKeys:
    """How this deployment names leads. `repr` never shows the key."""

    scheme: LeadIdScheme
    key: bytes | None = None

    def __post_init__(self) -> None:
        if self.scheme == KEYED and (self.key is None or len(self.key) < MIN_LEAD_KEY_BYTES):
            raise LeadKeyUnavailable(
                f"the lead-id key must be at least {MIN_LEAD_KEY_BYTES} bytes (see LeadKeySecret)"
            )

    def __repr__(self) -> str:
        return f"LeadKeys(scheme={self.scheme!r})"

    @classmethod
    def keyed(cls, key: bytes | str) -> LeadKeys:
        return cls(KEYED, key.encode() if isinstance(key, str) else key)

    @classmethod
    def legacy(cls) -> LeadKeys:
        return cls(LEGACY)

    @classmethod
    def from_settings(cls, settings: Settings) -> LeadKeys:
        """The deployment's scheme and key (the secret named by LEAD_KEY_SECRET, read once and
        cached). A keyed deployment without a readable key is a 503: nothing can be attributed."""
        if settings.lead_id_scheme == LEGACY:
            return cls.legacy()
        return cls.keyed(read_key(settings.lead_key_secret))

    def lead_id_for(self, email: str) -> str:
        """The id of the lead with this address (ValueError when it is not an address)."""
        if self.scheme == LEGACY:
            return legacy_lead_id_for(email)
        assert self.key is not None  # __post_init__
        return lead_id_for(email, self.key)

    def derive(self, label: str, length: int = 32) -> bytes:
        """A sub-key for one purpose (`label`), derived from the lead-id key with HKDF-SHA256: the
        lead-id key itself never leaves this object, and sub-keys of other labels are unrelated.
        LeadKeyUnavailable for a legacy deployment (its ids have no key to derive from)."""
        if self.key is None:
            raise LeadKeyUnavailable(f"a {LEGACY} deployment has no lead-id key to derive {label!r} from")
        # imported here: most functions that name leads never derive a sub-key (cold starts)
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(self.key)

    def assign(self, events: Iterable[LeadEvent]) -> list[LeadEvent]:
        """The events, each attributed to its lead (what the pipeline does before recording)."""
        return [
            event.with_lead_id(
                self.lead_id_for(event.email),
                None if event.previous_email is None else self.lead_id_for(event.previous_email),
            )
            for event in events
        ]


def read_key(secret_name: str | None) -> bytes:
    if not secret_name:
        raise LeadKeyUnavailable("LEAD_KEY_SECRET is not set: lead ids cannot be computed")
    try:
        value = secret_value(secret_name, max_age=KEY_CACHE_SECONDS)
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as exc:
        raise LeadKeyUnavailable("could not read the lead-id key; please retry") from exc
    key = value.encode() if isinstance(value, str) else bytes(value)
    if len(key) < MIN_LEAD_KEY_BYTES:
        raise LeadKeyUnavailable(f"the lead-id key secret holds fewer than {MIN_LEAD_KEY_BYTES} bytes")
    return key
