"""ANY on every API path: a method the path does not serve answers 405 with `Allow` (not API
Gateway's 404). The served methods have routes of their own, which API Gateway prefers."""

from __future__ import annotations

import os
from typing import Any

from leadscore.method_not_allowed import answer


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return answer(event, os.environ["ALLOWED_METHODS"])
