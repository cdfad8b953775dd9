"""The local stack's demo website: `GET /_local/site/` and `/_local/site/<page>`, a few static
pages that carry the tracking snippet (`/v1/track.js`) and the forms it links to a visitor.

Only the files of the `site/` folder next to this module are served, looked up by name in that
folder's listing: a path that is not exactly one of those names (`..`, `%2e%2e`, a sub-folder,
another suffix) is a 404, never a read outside the folder. Pages are addressed without `.html`
(`/_local/site/pricing`); `/_local/site/` is the index.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

PREFIX = "/_local/site"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@cache
def files() -> dict[str, tuple[bytes, str]]:
    """Every servable file of the folder: name -> (bytes, content type); read once."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("leadscore.local").joinpath("site").iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            found[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return found


def lookup(page: str) -> tuple[bytes, str] | None:
    """The file for the path after `/_local/site/` ("" is the index, "pricing" is pricing.html);
    None when the folder holds no such file."""
    name = page or "index"
    served = files()
    return served.get(name) or served.get(name + ".html")


def pages() -> list[str]:
    """The pages' paths, index first (what the stack's banner and `GET /_local` list)."""
    names = sorted(n.removesuffix(".html") for n in files() if n.endswith(".html") and n != "index.html")
    return [f"{PREFIX}/"] + [f"{PREFIX}/{name}" for name in names]
