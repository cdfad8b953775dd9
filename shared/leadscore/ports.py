"""The I/O adapters may do themselves (see `leadscore.adapters.base.Ports`)."""

from __future__ import annotations

from leadscore.errors import VerifierUnavailable


class NetworkPorts:
    """Fetches what a provider's signature is checked against. Only SNS needs it today."""

    def certificate(self, url: str) -> bytes:
        raise VerifierUnavailable(f"signing certificates cannot be fetched yet ({url[:100]})")
