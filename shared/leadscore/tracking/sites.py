"""Which sites may send beacons: the `track` entry of the webhook secret, its keys and origins.

    {"track": {"sites": {"www-acme": {"key": "tk_...", "origins": ["https://www.acme.com",
               "https://*.acme.com", "http://localhost:*"], "identify": true,
               "keep_params": ["plan"]}}}}

A site's key is public (it is in every page of the site): it says which site a beacon claims to
be from, it proves nothing. What keeps other pages out is the browser's `Origin` header, which a
page's script cannot forge (a script outside a browser can: bots and rates are `bots.py`'s job),
and the check that each event's page is on one of the site's origins.

Origin patterns, checked when the secret is read (a bad one is a configuration error):
- `scheme://host[:port]`: exactly that origin (`https://www.acme.com` is also `...:443`);
- `https://*.acme.com`: any subdomain of acme.com, at any depth, but NOT acme.com itself (list
  the apex separately); the base must have at least two labels (`https://*.com` is refused);
- `http://localhost:*`: that host on any port.
Only http and https; no path (not even a trailing `/`), query, fragment, user or `*` elsewhere.
A host written in Unicode is taken as its IDNA form (what browsers send).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, field_validator

from leadscore.config import ConfigurationError, Settings
from leadscore.errors import OriginNotAllowed, UnknownSite, describe_validation
from leadscore.schema import Model
from leadscore.secrets import provider_secret
from leadscore.tracking.wire import SITE_ID

TRACK_PROVIDER = "track"  # the entry of the webhook secret
MAX_ORIGIN_CHARS = 300
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"  # browsers allow "_" in host names
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]{{2,45}}\])"
# A browser's Origin header: scheme://host[:port], nothing else.
_ORIGIN = re.compile(rf"(?P<scheme>https?)://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?")
_PATTERN = re.compile(
    rf"(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}|\*))?"
)


class Origin(Model):
    """A parsed origin, its port explicit (a default port is the scheme's)."""

    model_config = ConfigDict(frozen=True)

    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` of an Origin header, lower-cased; None when it is anything else."""
    if len(value) > MAX_ORIGIN_CHARS:
        return None
    match = _ORIGIN.fullmatch(value.strip().lower())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS[match["scheme"]]
    return Origin(scheme=match["scheme"], host=match["host"], port=port) if 0 < port < 65536 else None


def _ascii_host(pattern: str) -> str:
    """A pattern whose host is written in Unicode (`https://bücher.example`), with the host as
    browsers send it in an Origin header: IDNA (`xn--bcher-kva.example`). Others are unchanged."""
    if pattern.isascii():
        return pattern
    scheme, separator, rest = pattern.partition("://")
    host, colon, port = rest.partition(":")
    wild = host.startswith("*.")
    try:
        ascii_host = host.removeprefix("*.").encode("idna").decode("ascii")
    except UnicodeError:
        return pattern  # refused by the pattern check, naming it
    return f"{scheme}{separator}{'*.' if wild else ''}{ascii_host}{colon}{port}"


class OriginPattern(Model):
    """One configured origin: exact, any subdomain of `host` (`subdomains`), or any port."""

    model_config = ConfigDict(frozen=True)

    scheme: str
    host: str
    subdomains: bool = False
    port: int | None = None  # None: any port

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        value = _ascii_host(text.strip().lower())
        match = _PATTERN.fullmatch(value) if len(value) <= MAX_ORIGIN_CHARS else None
        if match is None:
            raise ValueError(
                f"origin {text[:80]!r} is not scheme://host[:port] (http or https; '*.' only before "
                "the domain, ':*' only as the port; no path, not even a trailing '/')"
            )
        if match["wild"] and (match["host"].startswith("[") or match["host"].count(".") < 1):
            raise ValueError(f"origin {text[:80]!r}: '*.' needs a domain of two labels or more")
        if match["port"] is None:
            port: int | None = DEFAULT_PORTS[match["scheme"]]
        elif match["port"] == "*":
            port = None
        else:
            port = int(match["port"])
            if not 0 < port < 65536:
                raise ValueError(f"origin {text[:80]!r}: port out of range")
        return cls(scheme=match["scheme"], host=match["host"], subdomains=bool(match["wild"]), port=port)

    def matches(self, origin: Origin) -> bool:
        if origin.scheme != self.scheme or (self.port is not None and origin.port != self.port):
            return False
        if self.subdomains:
            return origin.host.endswith("." + self.host)
        return origin.host == self.host


class TrackSite(Model):
    """One site of the `track` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Annotated[str, StringConstraints(min_length=8, max_length=128)]
    origins: list[str] = Field(min_length=1, max_length=50)
    identify: bool = True  # may a tagged form's email identify this site's visitors?
    # Query parameters kept in recorded URLs besides utm_* (the snippet's data-keep-params asks
    # for them; only these are kept): never ones that can carry a secret or personal data.
    keep_params: frozenset[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]] = Field(
        default=frozenset(), max_length=20
    )
    _patterns: tuple[OriginPattern, ...] = PrivateAttr(default=())

    @field_validator("origins")
    @classmethod
    def _check(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            OriginPattern.parse(origin)
        return origins

    def model_post_init(self, context: Any) -> None:
        self._patterns = tuple(OriginPattern.parse(origin) for origin in self.origins)

    def allows(self, origin: Origin) -> bool:
        return any(pattern.matches(origin) for pattern in self._patterns)

    def key_matches(self, key: str) -> bool:
        return hmac.compare_digest(self.key.encode(), key.encode())


class TrackSecret(Model):
    """The `track` entry: the sites that may send beacons."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sites: dict[SITE_ID, TrackSite] = Field(min_length=1, max_length=200)

    def site(self, site_id: str, key: str) -> TrackSite:
        """The site this beacon names, when its key is the site's; 401 otherwise (unknown site and
        wrong key are one answer, and the comparison takes the same time either way)."""
        site = self.sites.get(site_id)
        expected = site.key if site is not None else "\x00" * len(key)
        if not hmac.compare_digest(expected.encode(), key.encode()) or site is None:
            raise UnknownSite("unknown site or wrong key")
        return site

    def any_allows(self, origin: Origin) -> bool:
        return any(site.allows(origin) for site in self.sites.values())


def request_origin(headers: Mapping[str, str]) -> Origin:
    """The request's Origin header, parsed; 403 naming it when missing, `null` or malformed."""
    value = headers.get("origin")
    if value is None or not value.strip():
        raise OriginNotAllowed("the Origin header is missing: beacons are accepted from browsers only")
    if value.strip() == "null":
        raise OriginNotAllowed("the Origin header is null (a sandboxed or file page): not allowed")
    origin = parse_origin(value)
    if origin is None:
        raise OriginNotAllowed("the Origin header is not scheme://host[:port]")
    return origin


def check_origin(site: TrackSite, site_id: str, origin: Origin) -> None:
    if not site.allows(origin):
        raise OriginNotAllowed(
            f"origin {origin.scheme}://{origin.host} is not one of site {site_id!r}'s origins"
        )


def read_sites(entry: Mapping[str, Any]) -> TrackSecret:
    """The `track` entry as `TrackSecret`; a malformed one is the operator's error (500, logged)."""
    try:
        return TrackSecret.model_validate(entry)
    except ValidationError as exc:
        raise ConfigurationError(
            f"the webhook secret's track entry is invalid: {describe_validation(exc, 'track')}"
        ) from exc


_last: list[tuple[Mapping[str, Any], TrackSecret]] = []  # the last document read, and its sites


def load_sites(settings: Settings) -> TrackSecret:
    """The deployment's sites. The secret's document is cached by Powertools for five minutes (the
    same object): it is validated once per document, not once per beacon."""
    entry = provider_secret(settings.webhook_secret_name, TRACK_PROVIDER)
    if _last and _last[0][0] is entry:
        return _last[0][1]
    sites = read_sites(entry)
    _last[:] = [(entry, sites)]
    return sites
