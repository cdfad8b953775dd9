"""The shared replay-window check every signed provider uses (`check_timestamp`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadscore.adapters._common import check_timestamp
from leadscore.errors import StaleTimestamp

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
TOLERANCE = 300


@pytest.mark.parametrize("skew", [TOLERANCE, -TOLERANCE, 0])
def test_a_skew_up_to_and_including_the_tolerance_is_accepted(skew: int) -> None:
    # Given a timestamp `skew` seconds before (positive) or after (negative) the receipt
    sent = int(NOW.timestamp()) - skew
    # Then it is accepted and returned as the time the sender signed
    assert check_timestamp(str(sent), NOW, TOLERANCE, "x-timestamp") == NOW - timedelta(seconds=skew)


@pytest.mark.parametrize(
    ("skew", "says"), [(TOLERANCE + 1, "301s old"), (-TOLERANCE - 1, "301s in the future")]
)
def test_one_second_beyond_the_tolerance_is_stale(skew: int, says: str) -> None:
    sent = int(NOW.timestamp()) - skew
    with pytest.raises(StaleTimestamp, match=says):
        check_timestamp(str(sent), NOW, TOLERANCE, "x-timestamp")
