"""The local stack's demo website: `GET /_local/site/` and `/_local/site/<page>`, a few static
pages that carry the tracking snippet (`/v1/track.js`) and the forms it links to a visitor.

Only the pages of `PAGES` (each `site/pages/<name>.html` inside `site/layout.html`) and the
folder's stylesheet are served, looked up by name in that listing: a path that is not exactly one
of those names (`..`, `%2e%2e`, a sub-folder, `layout`, another suffix) is a 404, never a read
outside the folder. Pages are addressed without `.html` (`/_local/site/pricing`); `/_local/site/`
is the index.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

PREFIX = "/_local/site"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
# The pages (`site/pages/<name>.html`: each one's <main>), in the order the menu lists them, with
# their titles; `layout.html` wraps each one with the head (the snippet tag), menu and footer.
PAGES = {
    "index": "Home",
    "product": "Product",
    "pricing": "Pricing",
    "docs": "Docs",
    "careers": "Careers",
    "contact": "Contact",
    "thanks": "Thank you",
}
MENU = ("index", "product", "pricing", "docs", "careers", "contact")


def _href(name: str) -> str:
    return f"{PREFIX}/" if name == "index" else f"{PREFIX}/{name}"


def _render(folder: resources.abc.Traversable, name: str) -> bytes:
    current = ' aria-current="page"'
    nav = "\n".join(
        f'      <a href="{_href(item)}"{current if item == name else ""}>{PAGES[item]}</a>' for item in MENU
    )
    layout = Template(folder.joinpath("layout.html").read_text(encoding="utf-8"))
    main = folder.joinpath("pages", f"{name}.html").read_text(encoding="utf-8")
    return layout.substitute(title=PAGES[name], nav=nav, main=main).encode()


@cache
def files() -> dict[str, tuple[bytes, str]]:
    """Every servable file: name -> (bytes, content type); the pages rendered, all read once."""
    folder = resources.files("leadscore.local").joinpath("site")
    found = {f"{name}.html": (_render(folder, name), CONTENT_TYPES[".html"]) for name in PAGES}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES and suffix != ".html":
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
