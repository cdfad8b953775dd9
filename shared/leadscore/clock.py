"""The current time, in one place, so the pipeline's notion of "now" can be set in tests and in
simulations (the demo replays two months of activity)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
