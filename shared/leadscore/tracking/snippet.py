"""`GET /v1/track.js`: the tracking snippet, served by the stack (and pasted from the README).

`script_response(if_none_match)` is the whole route: the script with an ETag and a cache
lifetime (gzipped for a browser that accepts it), or 304 when the browser already holds this version.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response

CACHE_CONTROL = "public, max-age=3600"


@cache
def script() -> tuple[bytes, str]:
    """The script's bytes and their ETag (read once per container)."""
    body = resources.files("leadscore.tracking").joinpath("snippet.js").read_bytes()
    # weak: the gzipped and the plain bytes are the same script (RFC 9110 8.8.1)
    return body, 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def script_response(if_none_match: str | None) -> Response:
    body, etag = script()
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    # gzip when the browser accepts it (Powertools compresses per the request's Accept-Encoding):
    # the script's privacy notes stay in it, and a page loads about a third of its size
    return Response(
        status_code=200,
        content_type="text/javascript; charset=utf-8",
        body=body.decode(),
        headers=headers,
        compress=True,
    )
