"""The I/O adapters may do themselves (see `leadscore.adapters.base.Ports`)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import IO

from leadscore.errors import SignatureInvalid, VerifierUnavailable

FETCH_TIMEOUT_SECONDS = 5.0
MAX_CERTIFICATE_BYTES = 16 * 1024  # an SNS signing certificate is about 2 KB
MAX_CACHED = 64
# A URL the signing service says does not exist is a forgery, not an outage.
_ABSENT = frozenset({400, 403, 404, 410})

Opener = Callable[[str, float], IO[bytes]]


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    if not url.startswith("https://"):  # the adapter checked already; never fetch anything else
        raise SignatureInvalid("signing certificates are fetched over https only")
    response: IO[bytes] = urllib.request.urlopen(url, timeout=timeout)
    return response


class NetworkPorts:
    """Fetches what a provider's signature is checked against (SNS signing certificates): over
    https, with a timeout and a size bound, each URL once (kept in memory for the container's life:
    a certificate at a given URL never changes, and the caller checks its validity on every use)."""

    def __init__(
        self,
        opener: Opener = _urlopen,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_CERTIFICATE_BYTES,
    ) -> None:
        self._open = opener
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def certificate(self, url: str) -> bytes:
        with self._lock:
            if url in self._cache:
                return self._cache[url]
        body = self._fetch(url)
        with self._lock:
            self._cache[url] = body
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return body

    def _fetch(self, url: str) -> bytes:
        shown = url[:200]
        try:
            with self._open(url, self._timeout) as response:
                body = response.read(self._max_bytes + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in _ABSENT:
                raise SignatureInvalid(f"no signing certificate at {shown} (HTTP {exc.code})") from None
            raise VerifierUnavailable(f"could not fetch the signing certificate {shown}; retry") from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, TLS and connection errors
            raise VerifierUnavailable(
                f"could not fetch the signing certificate {shown} ({type(exc).__name__}); retry"
            ) from None
        if len(body) > self._max_bytes:
            raise SignatureInvalid(f"the signing certificate at {shown} is over {self._max_bytes} bytes")
        return body


@cache
def network_ports() -> NetworkPorts:
    """The container's one `NetworkPorts`, so its certificate cache outlives a request."""
    return NetworkPorts()
