"""`GET /v1/track.js`: the tracking snippet, served by the stack (and pasted from the README).

`script_response(if_none_match)` is the whole route: the script with a strong ETag and a cache
lifetime, or 304 when the browser already holds this version.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response

CACHE_CONTROL = "public, max-age=3600"


@cache
def script() -> tuple[bytes, str]:
    """The script's bytes and their strong ETag (read once per container)."""
    body = resources.files("leadscore.tracking").joinpath("snippet.js").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def script_response(if_none_match: str | None) -> Response:
    body, etag = script()
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(
        status_code=200, content_type="text/javascript; charset=utf-8", body=body.decode(), headers=headers
    )
