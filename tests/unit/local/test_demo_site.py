"""The local stack's demo website (`leadscore.local.site`): only the files of its folder, by name."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from leadscore.local import site

PAGES = ["index", "pricing", "product", "docs", "careers", "contact", "thanks"]
TAG = '<script async src="/v1/track.js" data-site="www-leadscore" data-key="tk_local_test_key"></script>'


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[tuple[int, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append(dict(attrs))
        elif tag == "input":
            self.inputs.append((len(self.forms) - 1, dict(attrs)))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_is_html_and_carries_the_snippet_tag(page: str) -> None:
    found = site.lookup("" if page == "index" else page)

    assert found is not None
    body, content_type = found
    assert content_type == "text/html; charset=utf-8"
    assert body.decode().count(TAG) == 1


def test_the_stylesheet_is_served_as_css() -> None:
    found = site.lookup("site.css")

    assert found is not None and found[1] == "text/css; charset=utf-8"


def test_the_contact_page_has_our_html_form_and_a_tagged_third_party_form() -> None:
    found = site.lookup("contact")
    assert found is not None
    parser = _Forms()
    parser.feed(found[0].decode())

    ours, tagged = parser.forms
    assert (ours["method"], ours["action"]) == ("post", "/v1/forms/html")
    hidden = {a["name"]: a["value"] for i, a in parser.inputs if i == 0 and a.get("type") == "hidden"}
    assert hidden == {"_site": "www-leadscore", "_token": "st_local_test_token", "_event": "contact"}
    assert "data-leadscore" in tagged and tagged["action"] != "/v1/forms/html"
    assert any(a.get("type") == "email" for i, a in parser.inputs if i == 1)


@pytest.mark.parametrize(
    "path",
    [
        "../site.py",
        "../server.py",
        "..",
        "../../tracking/snippet.js",
        "%2e%2e/server.py",
        "/etc/passwd",
        "site/../pricing",
        "pricing/",
        "pricing.html/x",
        "..%2fserver.py",
        "__init__",
        "pricing.htm",
        "PRICING",
        "index.html\x00",
    ],
)
def test_nothing_outside_the_folders_own_files_is_served(path: str) -> None:
    assert site.lookup(path) is None


def test_the_pages_listing_starts_with_the_index() -> None:
    listed = site.pages()

    assert listed[0] == "/_local/site/"
    assert sorted(p.rsplit("/", 1)[1] for p in listed[1:]) == sorted(p for p in PAGES if p != "index")
    assert all(re.fullmatch(r"/_local/site/[a-z]*", p) for p in listed)
