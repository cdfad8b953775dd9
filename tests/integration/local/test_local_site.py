"""The demo website over the local stack's HTTP port: `GET /_local/site/...` serves its pages (each
inside the layout) and stylesheet with their content types, and nothing else (raw, unnormalized
paths sent as they are)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from leadscore.local import site
from leadscore.local.glue import repo_root
from leadscore.local.server import LocalOptions, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
SITE = repo_root() / "shared/leadscore/local/site"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process", background=False)
    with LocalStack(options) as running:
        yield running


def _get(stack: LocalStack, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", int(stack.url.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)  # the path goes out as written
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/_local/site/", "index.html", "text/html; charset=utf-8"),
        ("/_local/site", "index.html", "text/html; charset=utf-8"),
        ("/_local/site/pricing", "pricing.html", "text/html; charset=utf-8"),
        ("/_local/site/contact?utm_source=x", "contact.html", "text/html; charset=utf-8"),
        ("/_local/site/site.css", "site.css", "text/css; charset=utf-8"),
    ],
)
def test_the_demo_site_serves_its_pages(stack: LocalStack, path: str, file: str, content_type: str) -> None:
    status, headers, body = _get(stack, path)

    assert status == 200
    assert headers["content-type"] == content_type
    assert headers["x-content-type-options"] == "nosniff"
    assert body == site.files()[file][0]
    if file.endswith(".html"):  # the page's own content, inside the layout with the snippet tag
        assert (SITE / "pages" / file).read_bytes() in body
        assert b'<script async src="/v1/track.js" data-site="www-leadscore"' in body
    else:
        assert body == (SITE / file).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/_local/site/../server.py",
        "/_local/site/layout",  # the layout is a template, not a page
        "/_local/site/layout.html",
        "/_local/site/pages/pricing.html",
        "/_local/site/../../tracking/snippet.js",
        "/_local/site/%2e%2e/server.py",
        "/_local/site/..%2fserver.py",
        "/_local/site/./../site.py",
        "/_local/site//etc/passwd",
        "/_local/site/pricing/../../server.py",
        "/_local/site/nope",
    ],
)
def test_nothing_outside_the_site_folder_is_served(stack: LocalStack, path: str) -> None:
    status, headers, body = _get(stack, path)

    assert status == 404
    assert headers["content-type"] == "application/json"
    assert b"import" not in body and b"root:" not in body


def test_only_get_serves_the_site(stack: LocalStack) -> None:
    status, _, _ = _get(stack, "/_local/site/pricing", method="POST")

    assert status == 404


def test_the_banner_and_the_description_name_the_demo_site(stack: LocalStack) -> None:
    assert f"{stack.url}/_local/site/" in "\n".join(stack.banner())
    assert f"{stack.url}/_local/site/pricing" in stack.describe()["demo_site"]
